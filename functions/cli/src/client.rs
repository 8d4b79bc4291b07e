//! Talking to a tidings admin API: `--api` and `--api-key`, defaulting to what `tidings dev`
//! stored in `.tidings/dev.json`.

use std::path::PathBuf;

use serde_json::Value;

use crate::Failure;
use crate::dev;

#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// The admin API's base URL (default: the local dev server).
    #[arg(long, env = "TIDINGS_API", global = true)]
    pub api: Option<String>,
    /// An API key (default: the dev key `tidings dev` stored).
    #[arg(long, env = "TIDINGS_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// The dev database whose `dev.json` supplies the defaults.
    #[arg(long, default_value = dev::DEFAULT_DB, global = true)]
    pub db: PathBuf,
}

pub struct Client {
    http: reqwest::Client,
    pub base: String,
    key: String,
}

impl Client {
    pub fn new(args: &ApiArgs) -> Result<Client, Failure> {
        // The dev server's `dev.json` beside `--db`; with the default `--db` missing here, the
        // last dev server started (whatever its `--db` and directory).
        let config = dev::read_config(&args.db).or_else(|| {
            (args.db == std::path::Path::new(dev::DEFAULT_DB))
                .then(dev::last_started)
                .flatten()
                .and_then(|db| dev::read_config(&db))
        });
        let base = args
            .api
            .clone()
            .or_else(|| config.as_ref().map(|c| c.api.clone()))
            .unwrap_or_else(|| format!("http://{}", dev::DEFAULT_ADDR));
        let key = args.api_key.clone().or_else(|| config.map(|c| c.api_key)).ok_or_else(|| {
            Failure::Usage(format!(
                "no API key: found no {} nor a dev server started elsewhere: start `tidings dev`, pass the --db it was started with, or --api URL and --api-key KEY",
                dev::config_path(&args.db).display()
            ))
        })?;
        let http = reqwest::Client::builder().build().map_err(|e| Failure::Usage(format!("HTTP client: {e}")))?;
        Ok(Client { http, base: base.trim_end_matches('/').to_owned(), key })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let response = request
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| Failure::Input(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            Ok(body)
        } else {
            let reason =
                body.get("error").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| body.to_string());
            Err(Failure::Input(format!("{status}: {reason}")))
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }
}
