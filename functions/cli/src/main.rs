//! `tidings`: the command line for the tidings pipeline.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
mod bench;
mod client;
mod deliverability;
mod dev;
mod events;
mod export;
mod keys;
mod local_aws;
mod normalize;
mod out;
mod privacy;
mod providers;
mod redrive;
mod replay;
mod sources;
mod subscriptions;

#[derive(Parser)]
#[command(name = "tidings", version, about = "Messaging delivery events, verified, normalized and delivered")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify and normalize one provider webhook body; print canonical events as NDJSON.
    Normalize(Box<normalize::Args>),
    /// List the providers, how each authenticates, and the event types each maps.
    Providers(providers::Args),
    /// Print the JSON Schema of the canonical event.
    Schema,
    /// Explain an SMTP reply: why the message bounced (reason) and tidings' kind (hard, soft).
    BounceReason(deliverability::BounceReasonArgs),
    /// Counts and rates by mailbox provider, domain, provider or source; thresholds; alarms.
    Deliverability(deliverability::Args),
    /// Run the whole pipeline locally on an SQLite file: ingest, admin API and processor.
    Dev(dev::Args),
    /// Post sample payloads to a tidings server, signed with the dev sources' secrets.
    Replay(replay::Args),
    /// Print stored events, newest last.
    Events(events::Args),
    /// The workspace's administrative actions (who changed what, and how it ended), newest last.
    Audit(audit::Args),
    /// Everything the workspace holds about one recipient, as one JSON document (access requests).
    Export(export::Args),
    /// Erase a recipient: events, provider records, message states and queued copies; their
    /// suppression entry is kept under a keyed hash. Asks to confirm unless --yes.
    Erase(privacy::EraseArgs),
    /// The workspace's retention and redaction settings; flags change them.
    Privacy(privacy::PrivacyArgs),
    /// List, add or remove sources.
    Sources(sources::Args),
    /// Add or list subscriptions (where events are delivered).
    Subscriptions(subscriptions::Args),
    /// A subscription's delivery attempts, newest first.
    Attempts(subscriptions::AttemptsArgs),
    /// Create the API keys of a deployment on AWS (straight in its table).
    Keys(keys::Args),
    /// Make the table, queues and example sources the Lambda functions need on an AWS emulator
    /// (moto), and write their environment to a file (`infra/local-aws.sh` runs it).
    LocalAws(local_aws::Args),
    /// Move a queue's dead letters back to it (operator keys only), and follow the move.
    Redrive(redrive::Args),
    /// Measure the local pipeline end to end (see BENCHMARKS.md).
    Bench(bench::Args),
    /// Write the per-provider parts of template.yaml (ingest functions, webhook URL outputs)
    /// from the provider registry; with --check, only say whether they are current.
    Template {
        /// The SAM template.
        #[arg(long, default_value = "template.yaml")]
        file: std::path::PathBuf,
        /// Change nothing; exit 1 when the file differs from what the registry generates.
        #[arg(long)]
        check: bool,
    },
    /// The emails `tidings dev` resent locally (retryable SES failures), oldest first.
    Outbox {
        /// The dev database.
        #[arg(long, default_value = dev::DEFAULT_DB)]
        db: std::path::PathBuf,
    },
}

fn template(file: &std::path::Path, check: bool) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let generated =
        tidings_aws::template::regenerate(&text).map_err(|e| Failure::Input(format!("{}: {e}", file.display())))?;
    if generated == text {
        return out::outln!("{}: the per-provider parts are current", file.display());
    }
    if check {
        return Err(Failure::Input(format!(
            "{}: the per-provider parts differ from the provider registry; run `tidings template` to write them",
            file.display()
        )));
    }
    std::fs::write(file, generated).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", file.display())))?;
    out::outln!("{}: per-provider parts written from the provider registry", file.display())
}

fn outbox(db: &std::path::Path) -> Result<(), Failure> {
    let db =
        tidings_local::Sqlite::open(db).map_err(|e| Failure::Usage(format!("cannot open {}: {e}", db.display())))?;
    for (id, request) in db.outbox().map_err(|e| Failure::Input(e.to_string()))? {
        out::outln!("{id}\t{request}")?;
    }
    Ok(())
}

/// Runs an async command on a multi-threaded runtime, with logs on stderr (`RUST_LOG` filters;
/// default `info` for tidings, `warn` for the rest).
fn block_on(future: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tidings_core=info,tidings=info"));
    tidings_ingest::install_crypto_provider();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(future)
}

/// How a command failed: bad input (exit 1) or bad usage (exit 2); or its reader closed the
/// pipe (exit 0, nothing more to say).
pub enum Failure {
    Input(String),
    Usage(String),
    Closed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Normalize(args) => normalize::run(*args),
        Command::Providers(args) => providers::run(args),
        Command::Schema => {
            out::outln!("{}", tidings_core::schema::canonical_event_schema().trim_end())
        }
        Command::BounceReason(args) => deliverability::bounce_reason(args),
        Command::Deliverability(args) => block_on(deliverability::run(args)),
        Command::Dev(args) => block_on(dev::run(args)),
        Command::Replay(args) => block_on(replay::run(args)),
        Command::Events(args) => block_on(events::run(args)),
        Command::Audit(args) => block_on(audit::run(args)),
        Command::Export(args) => block_on(export::run(args)),
        Command::Erase(args) => block_on(privacy::erase(args)),
        Command::Privacy(args) => block_on(privacy::privacy(args)),
        Command::Sources(args) => block_on(sources::run(args)),
        Command::Subscriptions(args) => block_on(subscriptions::run(args)),
        Command::Attempts(args) => block_on(subscriptions::attempts(args)),
        Command::Keys(args) => block_on(keys::run(args)),
        Command::LocalAws(args) => block_on(local_aws::run(args)),
        Command::Redrive(args) => block_on(redrive::run(args)),
        Command::Bench(args) => block_on(bench::run(args)),
        Command::Template { file, check } => template(&file, check),
        Command::Outbox { db } => outbox(&db),
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(Failure::Input(line)) => {
            eprintln!("{line}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(line)) => {
            eprintln!("error: {line}");
            ExitCode::from(2)
        }
    }
}
