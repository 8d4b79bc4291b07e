//! `tidings local-aws`: what the Lambda functions need, made on an AWS emulator (moto), so the
//! Lambda event envelopes in `events/lambda/` can be sent to the real function binaries on a
//! laptop (`cargo lambda watch` and `cargo lambda invoke`), with no AWS account.
//!
//! It makes the table, the three queues with their dead-letter queues, and one source per
//! provider under the id the envelopes post to (`src_example_<provider>`, workspace
//! `ws_default`), then writes the functions' environment to an env file. Run again, it leaves
//! what exists and writes the file again. `infra/local-aws.sh` starts moto and runs it.

use std::path::PathBuf;

use aws_sdk_sqs::types::QueueAttributeName;
use tidings_core::ProviderId;
use tidings_core::ports::StoreError;

use crate::Failure;
use tidings_core::ports::SourceStore;

/// The source id an envelope of `provider` posts to (`events/lambda/`).
pub fn example_source_id(provider: ProviderId) -> String {
    format!("src_example_{provider}")
}

#[derive(clap::Args)]
pub struct Args {
    /// The emulator's endpoint, e.g. `http://127.0.0.1:5555` (never a real AWS endpoint: this
    /// command makes resources).
    #[arg(long)]
    endpoint: String,
    /// The table's name; the queues are named after it (`<table>-events`, …).
    #[arg(long, default_value = "tidings-local")]
    table: String,
    /// Where to write the functions' environment (`NAME=value` lines).
    #[arg(long, default_value = "target/local-aws.env")]
    env_file: PathBuf,
}

/// The region and credentials the functions and this command use on the emulator.
const ENVIRONMENT: &[(&str, &str)] =
    &[("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")];

pub async fn run(args: Args) -> Result<(), Failure> {
    let endpoint = args.endpoint.trim_end_matches('/').to_owned();
    let host = url::Url::parse(&endpoint).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
        return Err(Failure::Usage(format!(
            "--endpoint {endpoint}: give the emulator's loopback address (this command makes resources)"
        )));
    }
    let config = tidings_aws::sdk_config_at(&endpoint).await;
    // The emulator's dummy credentials, whatever the shell holds: nothing here is meant for AWS.
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "local-aws",
            ))
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "local-aws"))
            .build(),
    );
    let unreachable =
        |e: String| Failure::Input(format!("{endpoint}: {e} (is the emulator running? infra/local-aws.sh starts it)"));

    match tidings_aws::dynamo::create_table(&dynamo, &args.table).await {
        Ok(()) => {}
        Err(error) if error.to_string().contains("ResourceInUse") || error.to_string().contains("already exists") => {}
        Err(error) => return Err(unreachable(error.to_string())),
    }
    let mut environment: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.clone()),
        ("TIDINGS_TABLE".into(), args.table.clone()),
        ("TIDINGS_SES_SOURCE".into(), example_source_id(ProviderId::Ses)),
    ];
    environment.extend(ENVIRONMENT.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())));
    for (queue, url_variable, dlq_variable) in tidings_aws::QUEUE_VARIABLES {
        let name = format!("{}-{}", args.table, queue.as_str());
        let dlq = create_queue(&sqs, &format!("{name}-dlq"), None).await.map_err(unreachable)?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unreachable(format!("{e:?}")))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let policy = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#);
        let url = create_queue(&sqs, &name, Some(policy)).await.map_err(unreachable)?;
        environment.push((url_variable.to_owned(), url));
        environment.push((dlq_variable.to_owned(), dlq));
    }

    let store = tidings_aws::DynamoStore::new(dynamo, args.table.clone());
    let base = "https://tidings.example";
    let existing = store.sources(crate::dev::WORKSPACE).await.map_err(|e: StoreError| unreachable(e.to_string()))?;
    for provider in ProviderId::ALL {
        let id = example_source_id(provider);
        if existing.iter().any(|s| s.id == id) {
            continue;
        }
        let source = crate::dev::example_source(provider, id, base).map_err(Failure::Usage)?;
        store.put_source(&source).await.map_err(|e| unreachable(e.to_string()))?;
    }

    let text: String = environment.iter().map(|(name, value)| format!("{name}={value}\n")).collect();
    if let Some(dir) = args.env_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(&args.env_file, text)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", args.env_file.display())))?;
    eprintln!(
        "local-aws: table {}, its queues and a source per provider (src_example_<provider>) on {endpoint}; the functions' environment is in {}",
        args.table,
        args.env_file.display()
    );
    Ok(())
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str, redrive: Option<String>) -> Result<String, String> {
    let mut request = sqs.create_queue().queue_name(name);
    if let Some(policy) = redrive {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let created = request.send().await.map_err(|e| format!("CreateQueue {name}: {e:?}"))?;
    created.queue_url.ok_or_else(|| format!("CreateQueue {name}: no queue URL in the answer"))
}
