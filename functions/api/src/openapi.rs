//! The admin API's contract. Every route is declared once, as an [`Operation`] holding both its
//! handler and what it takes and answers; the router and the OpenAPI 3.1 document served at
//! `GET /api/openapi.json` are both built from that one list, so the document cannot name a
//! route the router lacks or miss one it serves. Schemas come from the Rust types themselves
//! (`schemars`): request bodies and query strings as they are deserialized, responses as they
//! are serialized.

use std::collections::BTreeMap;

use axum::Router;
use axum::http::Method;
use axum::routing::MethodRouter;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One response an operation documents.
struct Answer {
    status: u16,
    description: &'static str,
    body: Option<SchemaFn>,
    media_type: &'static str,
    /// OpenAPI links: (name, target operationId, target parameter, runtime expression).
    links: Vec<(&'static str, &'static str, &'static str, &'static str)>,
}

impl Answer {
    fn new(status: u16, description: &'static str, body: Option<SchemaFn>, media_type: &'static str) -> Self {
        Answer { status, description, body, media_type, links: Vec::new() }
    }
}

/// One route: method, path, handler, and its documentation.
pub(crate) struct Operation<St> {
    method: Method,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    handler: MethodRouter<St>,
    authenticated: bool,
    path_params: Vec<(&'static str, &'static str, Value)>,
    query: Option<SchemaFn>,
    body: Option<SchemaFn>,
    answers: Vec<Answer>,
}

/// What each error status means on this API; every error body is `{"error": "<one line>"}`,
/// with `field` beside it when validation refused a field.
fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => {
            "The request is malformed; the one-line `error` names the field, and `field` gives its name when validation refused it."
        }
        401 => "No API key, or an unknown one (`Authorization: Bearer <key>`).",
        403 => "The API key's workspace may not do this.",
        404 => "Nothing of that id in the key's workspace.",
        409 => "The deployment is not set up for this (see the one-line `error`).",
        413 => "The request body is over the limit.",
        415 => "The request body is not declared as JSON (`Content-Type: application/json`).",
        503 => "The store is unavailable for now (throttled or timed out); retry later.",
        _ => "An error.",
    }
}

impl<St: Clone + Send + Sync + 'static> Operation<St> {
    /// A route needing an API key; `handler` is the axum method router for `method` alone.
    pub(crate) fn new(
        method: Method,
        path: &'static str,
        id: &'static str,
        summary: &'static str,
        handler: MethodRouter<St>,
    ) -> Self {
        Operation {
            method,
            path,
            id,
            summary,
            handler,
            authenticated: true,
            path_params: Vec::new(),
            query: None,
            body: None,
            answers: Vec::new(),
        }
    }

    /// Answered without an API key.
    pub(crate) fn public(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// A `{name}` segment of the path, and what it holds.
    pub(crate) fn path_param(mut self, name: &'static str, description: &'static str) -> Self {
        self.path_params.push((name, description, json!({"type": "string"})));
        self
    }

    /// A `{name}` segment of the path that takes one of `values`.
    pub(crate) fn path_param_of(mut self, name: &'static str, description: &'static str, values: &[&str]) -> Self {
        self.path_params.push((name, description, json!({"type": "string", "enum": values})));
        self
    }

    /// Says that the last answer added gives `parameter` of operation `target`, at `expression`
    /// (an OpenAPI runtime expression such as `$response.body#/id`): clients and the fuzzer
    /// follow it from one call to the next.
    pub(crate) fn link(
        mut self,
        name: &'static str,
        target: &'static str,
        parameter: &'static str,
        expression: &'static str,
    ) -> Self {
        if let Some(answer) = self.answers.last_mut() {
            answer.links.push((name, target, parameter, expression));
        }
        self
    }

    /// The query string, as the fields of `T`.
    pub(crate) fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    /// A JSON request body of type `T`.
    pub(crate) fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(schema_of::<T>);
        self
    }

    /// A success answer with a JSON body of type `T`.
    pub(crate) fn answers<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer::new(status, description, Some(schema_of::<T>), "application/json"));
        self
    }

    /// A success answer with no body.
    pub(crate) fn answers_empty(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer::new(status, description, None, ""));
        self
    }

    /// A success answer of any JSON document (a provider's own payload).
    pub(crate) fn answers_any_json(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer::new(status, description, Some(|_| Schema::default()), "application/json"));
        self
    }

    /// Error statuses this operation answers besides those every authenticated operation may
    /// (401, 503).
    pub(crate) fn errors(mut self, statuses: &[u16]) -> Self {
        for &status in statuses {
            self.answers.push(Answer::new(
                status,
                error_meaning(status),
                Some(schema_of::<crate::views::ErrorBody>),
                "application/json",
            ));
        }
        self
    }

    /// The OpenAPI operation object.
    fn document(&self, responses: &mut SchemaGenerator, requests: &mut SchemaGenerator) -> Value {
        let mut parameters: Vec<Value> = self
            .path_params
            .iter()
            .map(|(name, description, schema)| {
                json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
            })
            .collect();
        if let Some(query) = self.query {
            parameters.extend(query_parameters(&query(requests)));
        }
        let mut answers = Map::new();
        let mut all: Vec<&Answer> = self.answers.iter().collect();
        let common = self.authenticated.then(|| {
            [401, 503].map(|status| {
                Answer::new(
                    status,
                    error_meaning(status),
                    Some(schema_of::<crate::views::ErrorBody>),
                    "application/json",
                )
            })
        });
        if let Some(common) = &common {
            all.extend(common.iter().filter(|c| !self.answers.iter().any(|a| a.status == c.status)));
        }
        all.sort_by_key(|a| a.status);
        for answer in all {
            let mut object = json!({"description": answer.description});
            if let Some(body) = answer.body {
                object["content"] = json!({answer.media_type: {"schema": body(responses)}});
            }
            if !answer.links.is_empty() {
                let links: Map<String, Value> = answer
                    .links
                    .iter()
                    .map(|(name, target, parameter, expression)| {
                        ((*name).to_owned(), json!({"operationId": target, "parameters": {*parameter: expression}}))
                    })
                    .collect();
                object["links"] = Value::Object(links);
            }
            answers.insert(answer.status.to_string(), object);
        }
        let mut operation = json!({
            "operationId": self.id,
            "summary": self.summary,
            "tags": [self.path.split('/').nth(2).unwrap_or("api")],
            "responses": answers,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = self.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body(requests)}}});
        }
        if !self.authenticated {
            operation["security"] = json!([]);
        }
        operation
    }
}

/// A query string's type as OpenAPI parameters: one per property, required as the type says.
fn query_parameters(schema: &Schema) -> Vec<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            let description = property.as_object_mut().and_then(|p| p.remove("description"));
            // An absent parameter is how a query string says "none": `null` is not a value one
            // can send, so an optional field's `["T", "null"]` is just `T` here.
            if let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if let [only] = types.as_slice() {
                    property["type"] = only.clone();
                }
            }
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let Some(description) = description {
                parameter["description"] = description;
            }
            parameter
        })
        .collect()
}

/// The router serving `operations` and the OpenAPI document describing exactly them.
pub(crate) fn build<St: Clone + Send + Sync + 'static>(operations: Vec<Operation<St>>) -> (Router<St>, Value) {
    // Responses as serialized, shared definitions under components/schemas; requests as
    // deserialized (fields with defaults are optional), inline so the two never share a name.
    let mut responses = SchemaGenerator::new(
        SchemaSettings::draft2020_12().for_serialize().with(|s| s.definitions_path = "/components/schemas".into()),
    );
    let mut requests =
        SchemaGenerator::new(SchemaSettings::draft2020_12().for_deserialize().with(|s| s.inline_subschemas = true));
    let mut paths: BTreeMap<&'static str, Map<String, Value>> = BTreeMap::new();
    let mut routes: BTreeMap<&'static str, MethodRouter<St>> = BTreeMap::new();
    for operation in operations {
        let document = operation.document(&mut responses, &mut requests);
        paths.entry(operation.path).or_default().insert(operation.method.as_str().to_ascii_lowercase(), document);
        let handler = match routes.remove(operation.path) {
            Some(existing) => existing.merge(operation.handler),
            None => operation.handler,
        };
        routes.insert(operation.path, handler);
    }
    let router = routes.into_iter().fold(Router::new(), |router, (path, handler)| router.route(path, handler));
    let document = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "tidings admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sources, events, message timelines, suppressions, subscriptions and dead-letter \
                queues of one workspace: the workspace of the API key each request carries \
                (`Authorization: Bearer <key>`). Errors are `{\"error\": \"<one line>\"}`, with `\"field\"` naming a field validation refused.",
        },
        "paths": paths,
        "components": {
            "schemas": responses.take_definitions(true),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "An API key of the workspace (`tidings keys create`, or the one `tidings dev` prints)."}},
        },
        "security": [{"apiKey": []}],
    });
    (router, document)
}
