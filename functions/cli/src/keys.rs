//! `tidings keys create`: the first API key of a deployment. The admin API only answers to API
//! keys, so the first one is written straight into the deployment's table with your own AWS
//! credentials (the table name is the `TableName` output of the stack). The key is printed
//! once; the table keeps only its SHA-256.

use tidings_core::Timestamp;
use tidings_core::ports::ApiKey;
use tidings_core::source::{new_id, new_secret};

use crate::Failure;
use tidings_core::ports::KeyStore;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create an API key for a workspace and print it (shown once).
    Create {
        /// The deployment's DynamoDB table (stack output `TableName`).
        #[arg(long, env = "TIDINGS_TABLE")]
        table: String,
        /// The workspace the key acts in. Workspaces need no creation: a key names one. An
        /// operator workspace (the stack's `OperatorWorkspaces`) may also redrive dead letters.
        #[arg(long)]
        workspace: String,
        /// Send the DynamoDB call to this endpoint instead of AWS's (a local emulator).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: Option<String>,
    },
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let Command::Create { table, workspace, endpoint_url } = args.command;
    if !valid_workspace(&workspace) {
        return Err(Failure::Usage(format!(
            "workspace {workspace:?}: use 1 to 64 letters, digits, '_' or '-' (for example ws_acme)"
        )));
    }
    let config = match endpoint_url.as_deref().filter(|e| !e.is_empty()) {
        Some(endpoint) => tidings_aws::sdk_config_at(endpoint).await,
        None => tidings_aws::sdk_config().await,
    };
    let store = tidings_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
    let key = format!("tdk_{}", new_secret(false));
    let record =
        ApiKey { id: new_id("key"), workspace, hash: tidings_api::api_key_hash(&key), created_at: Timestamp::now() };
    store
        .put_api_key(&record)
        .await
        .map_err(|e| Failure::Input(format!("cannot store the key in table {table}: {e}")))?;
    // The audit log names the new key by its id; a failure to write it is said, not fatal: the
    // key exists.
    let entry = tidings_core::audit::AuditEntry::new(
        &record.workspace,
        "cli",
        "tidings keys create".into(),
        Some(record.id.clone()),
        0,
        Timestamp::now(),
    );
    if let Err(e) = tidings_core::ports::AuditStore::record_audit(&store, &entry).await {
        eprintln!("warning: the key was created, but the audit log could not record it: {e}");
    }
    eprintln!("API key {} for workspace {} (shown once; the table keeps its hash):", record.id, record.workspace);
    crate::out::outln!("{key}")?;
    Ok(())
}

fn valid_workspace(workspace: &str) -> bool {
    (1..=64).contains(&workspace.len())
        && workspace.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
