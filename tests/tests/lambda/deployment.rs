//! A deployment on moto made from `template.yaml`, and the function binaries run against it
//! under the Runtime API emulator: shared by the Lambda-level tests.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use tidings_core::ports::EventQuery;

use crate::common;
use crate::runtime_api::Function;
use tidings_core::ports::EventStore;

pub const WORKSPACE: &str = "ws_default";

/// The workspace's binaries, built once per test run with the profile this test was built with
/// (a no-op when `cargo test --workspace` already built them).
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let output = Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--locked"])
            .current_dir(&root)
            .output()
            .expect("cannot run cargo");
        assert!(output.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&output.stderr));
        // This test runs from <target>/<profile>/deps; the binaries sit in <target>/<profile>.
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    })
}

pub fn moto() -> String {
    std::env::var("TIDINGS_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!("TIDINGS_MOTO_ENDPOINT is not set: run ./scripts/test.sh, which installs and starts moto")
    })
}

/// The template as SAM deploys it: `infra/transform.py` expands `template.yaml` with the SAM
/// translator (Globals merged into each function, policy templates into IAM statements); the
/// test command writes it and exports its path.
pub fn deployed_template() -> Value {
    let path = std::env::var("TIDINGS_TRANSFORMED_TEMPLATE").unwrap_or_else(|_| {
        panic!("TIDINGS_TRANSFORMED_TEMPLATE is not set: run ./scripts/test.sh, which translates template.yaml")
    });
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

/// The stack name the deployment stands in for (`${AWS::StackName}`).
pub const STACK: &str = "tidings-e2e";

/// A deployment on moto made from the template: every queue with its redrive policy, the table
/// with its keys and indexes, and each function's environment as the template sets it. The
/// functions run with their own access key ids, so the calls each makes can be told apart.
pub struct Deployment {
    pub template: Value,
    pub sqs: aws_sdk_sqs::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub store: tidings_aws::DynamoStore,
    pub table: String,
    /// The table's logical id in the template.
    pub table_id: String,
    /// Logical id → queue URL, and back.
    pub queues: BTreeMap<String, String>,
}

impl Deployment {
    pub async fn new() -> Deployment {
        let template = deployed_template();
        let config = tidings_aws::sdk_config_for_endpoint(&moto()).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        // Unique per deployment: tests in one binary run side by side on one moto.
        static DEPLOYMENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run =
            format!("e2e-{}-{}", std::process::id(), DEPLOYMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let resources = template["Resources"].as_object().unwrap();

        // Queues: dead-letter queues first, so the others can name them.
        let mut queues = BTreeMap::new();
        let mut arns = BTreeMap::new();
        let mut ordered: Vec<(&String, &Value)> =
            resources.iter().filter(|(_, r)| r["Type"] == "AWS::SQS::Queue").collect();
        ordered.sort_by_key(|(_, r)| !r["Properties"]["RedrivePolicy"].is_null());
        for (id, queue) in ordered {
            let properties = &queue["Properties"];
            let mut create = sqs.create_queue().queue_name(format!("{run}-{id}"));
            if let Some(seconds) = properties["VisibilityTimeout"].as_u64() {
                create = create.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
            }
            let policy = &properties["RedrivePolicy"];
            if !policy.is_null() {
                let target = policy["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap();
                let count = policy["maxReceiveCount"].to_string().trim_matches('"').to_owned();
                let redrive = json!({"deadLetterTargetArn": arns[target], "maxReceiveCount": count}).to_string();
                create = create.attributes(QueueAttributeName::RedrivePolicy, redrive);
            }
            let url = create.send().await.unwrap().queue_url.unwrap();
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&QueueAttributeName::QueueArn]
                .clone();
            arns.insert(id.clone(), arn);
            queues.insert(id.clone(), url);
        }

        // The table, exactly as declared: if the code needed a key or index the template lacks,
        // the functions below would fail.
        let (table_id, declared) =
            resources.iter().find(|(_, r)| r["Type"] == "AWS::DynamoDB::Table").expect("a table in the template");
        let table = format!("{run}-{table_id}");
        // With the template's defaults the table is on demand (TableBilling=on-demand).
        let billing = if_with_defaults(&template, &declared["Properties"]["BillingMode"]);
        assert_eq!(billing, "PAY_PER_REQUEST");
        create_table(&dynamo, &table, &declared["Properties"]).await;

        let store = tidings_aws::DynamoStore::new(dynamo, table.clone());
        let ssm = aws_sdk_ssm::Client::new(&config);
        let table_id = table_id.clone();
        Deployment { template, sqs, ssm, store, table, table_id, queues }
    }

    /// The function resource with logical id `id`.
    pub fn function(&self, id: &str) -> &Value {
        let function = &self.template["Resources"][id];
        assert_eq!(function["Type"], "AWS::Lambda::Function", "template.yaml has no function {id}");
        function
    }

    /// A value in the template's environment, resolved against this deployment.
    pub fn resolve(&self, name: &str, value: &Value) -> String {
        if let Some(text) = value.as_str() {
            return text.to_owned();
        }
        if let Some(target) = value["Ref"].as_str() {
            if let Some(url) = self.queues.get(target) {
                return url.clone();
            }
            if target == self.table_id {
                return self.table.clone();
            }
            let default = &self.template["Parameters"][target]["Default"];
            if !default.is_null() {
                return default.as_str().map_or_else(|| default.to_string(), str::to_owned);
            }
        }
        if value["Fn::Sub"].is_string() {
            return self.substitute(value);
        }
        panic!("{name}: cannot resolve {value} from the template")
    }

    /// A string of the template with its `${…}` filled in: pseudo parameters as moto has them,
    /// parameters by their defaults, `Fn::Sub`'s own variables; resources stay `${Name}`.
    pub fn substitute(&self, value: &Value) -> String {
        let (text, vars) = match &value["Fn::Sub"] {
            Value::String(text) => (text.as_str(), Value::Null),
            Value::Array(pair) => (pair[0].as_str().unwrap(), pair[1].clone()),
            _ => return value.as_str().map_or_else(|| value.to_string(), str::to_owned),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').unwrap();
            let name = &rest[start + 2..end];
            let parameter = &self.template["Parameters"][name]["Default"];
            let filled = match name {
                "AWS::StackName" => STACK.to_owned(),
                "AWS::Region" => "us-east-1".to_owned(),
                "AWS::AccountId" => "123456789012".to_owned(),
                "AWS::Partition" => "aws".to_owned(),
                _ if !vars[name].is_null() => self.substitute(&vars[name]),
                _ if !parameter.is_null() => parameter.as_str().map_or_else(|| parameter.to_string(), str::to_owned),
                _ => format!("${{{name}}}"),
            };
            out.push_str(&filled);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The environment the template gives function `id`.
    pub fn environment(&self, id: &str) -> Vec<(String, String)> {
        let function = self.function(id);
        let variables = function["Properties"]["Environment"]["Variables"].as_object().unwrap();
        variables.iter().map(|(name, value)| (name.clone(), self.resolve(name, value))).collect()
    }

    /// Starts function `id` (its binary, as the template builds it) with its template
    /// environment, `overrides` (values the template leaves to parameters a user sets), and
    /// its own credentials.
    pub async fn start(&self, id: &str, overrides: &[(&str, String)]) -> Function {
        self.start_at(id, overrides, &moto()).await
    }

    /// [`Deployment::start`] with the function's AWS calls sent to `endpoint` (a proxy in
    /// front of moto) instead.
    pub async fn start_at(&self, id: &str, overrides: &[(&str, String)], endpoint: &str) -> Function {
        let binary = self.function(id)["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap().to_owned();
        let mut env: BTreeMap<String, String> = self.environment(id).into_iter().collect();
        for (name, value) in overrides {
            // TIDINGS_ALLOW_NETWORKS is the one setting the template leaves out on purpose: it
            // opens private networks to deliveries, which only this test's loopback needs.
            assert!(
                env.contains_key(*name) || *name == "TIDINGS_ALLOW_NETWORKS",
                "{id}: the template does not set {name}"
            );
            env.insert((*name).to_owned(), value.clone());
        }
        env.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
        env.insert("AWS_REGION".into(), "us-east-1".into());
        env.insert("AWS_ACCESS_KEY_ID".into(), access_key(id));
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        Function::start(&binaries().join(&binary), id, &env).await
    }

    pub fn queue(&self, logical: &str) -> &str {
        self.queues.get(logical).unwrap_or_else(|| panic!("template.yaml has no queue {logical}"))
    }

    /// Takes every message off a queue, as the SQS event source does before invoking.
    pub async fn drain(&self, logical: &str) -> Vec<aws_sdk_sqs::types::Message> {
        common::receive_all(&self.sqs, self.queue(logical)).await
    }

    pub async fn drain_bodies(&self, logical: &str) -> Vec<String> {
        self.drain(logical).await.into_iter().map(|m| m.body.unwrap()).collect()
    }

    pub async fn stored_ids(&self) -> BTreeSet<String> {
        let query = EventQuery { workspace: WORKSPACE.into(), limit: 1000, ..EventQuery::default() };
        let page = self.store.events(&query).await.unwrap();
        assert!(page.next.is_none());
        page.events.iter().map(|e| e.id.to_string()).collect()
    }
}

/// The access key id a function's calls carry (moto records it; nothing checks it).
pub fn access_key(function: &str) -> String {
    format!("AKIA{}", function.to_ascii_uppercase())
}

/// `CreateTable` from the template's table properties.
pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, name: &str, properties: &Value) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
        ScalarAttributeType, TimeToLiveSpecification,
    };
    let keys = |schema: &Value| -> Vec<KeySchemaElement> {
        schema
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap())
                    .key_type(KeyType::from(k["KeyType"].as_str().unwrap()))
                    .build()
                    .unwrap()
            })
            .collect()
    };
    let mut create = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&properties["KeySchema"])));
    for attribute in properties["AttributeDefinitions"].as_array().unwrap() {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute["AttributeName"].as_str().unwrap())
                .attribute_type(ScalarAttributeType::from(attribute["AttributeType"].as_str().unwrap()))
                .build()
                .unwrap(),
        );
    }
    for index in properties["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        let projection = &index["Projection"];
        let non_key: Option<Vec<String>> = projection["NonKeyAttributes"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect());
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index["IndexName"].as_str().unwrap())
                .set_key_schema(Some(keys(&index["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection["ProjectionType"].as_str().unwrap()))
                        .set_non_key_attributes(non_key)
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    create.send().await.unwrap();
    let ttl = &properties["TimeToLiveSpecification"];
    if ttl["Enabled"] == true {
        dynamo
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl["AttributeName"].as_str().unwrap())
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// The first API key, made the way the README says: `tidings keys create`.
pub fn create_key(deployment: &Deployment) -> String {
    let output = Command::new(binaries().join("tidings"))
        .args(["keys", "create", "--table", &deployment.table, "--workspace", WORKSPACE])
        .env_clear()
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(output.status.success(), "tidings keys create: {}", String::from_utf8_lossy(&output.stderr));
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("tdk_"), "unexpected key output {key:?}");
    key
}

pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;

/// A subscriber on loopback that keeps every request it gets.
pub async fn subscriber() -> (String, Received) {
    use axum::routing::post;
    let received: Received = std::sync::Arc::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| async move {
            log.lock().unwrap().push((headers, body));
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), received)
}

/// A template value, its `Fn::If` decided by the parameters' defaults (`Fn::Equals` of a `Ref`,
/// or of a list's `Fn::Join`, and a string; `Fn::Not`: what this template's conditions use).
pub fn if_with_defaults<'a>(template: &Value, value: &'a Value) -> &'a Value {
    fn holds(template: &Value, condition: &Value) -> bool {
        if let Some(name) = condition.as_str() {
            return holds(template, &template["Conditions"][name]);
        }
        if let Some([inner]) = condition["Fn::Not"].as_array().map(Vec::as_slice) {
            return !holds(template, inner);
        }
        // A list parameter is tested joined (`Fn::Join` of its `Ref`); its default is the
        // joined text already.
        let operand = |v: &Value| {
            let v = v["Fn::Join"].get(1).unwrap_or(v);
            match v["Ref"].as_str() {
                Some(parameter) => template["Parameters"][parameter]["Default"].clone(),
                None => v.clone(),
            }
        };
        match condition["Fn::Equals"].as_array().map(Vec::as_slice) {
            Some([a, b]) => operand(a) == operand(b),
            _ => panic!("cannot decide condition {condition}"),
        }
    }
    match value["Fn::If"].as_array().map(Vec::as_slice) {
        Some([condition, then, otherwise]) => {
            if holds(template, condition) {
                then
            } else {
                otherwise
            }
        }
        _ => value,
    }
}
