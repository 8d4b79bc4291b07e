//! `tidings dev`: the whole pipeline in one process on one SQLite file. The ingest router and
//! the admin API serve HTTP; a worker drains the events queue through the processor. On first
//! start it creates a workspace, one source per provider and an API key, prints them, and
//! keeps what the other commands need in `dev.json` beside the database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tidings_core::auth::Authentication;
use tidings_core::auth::signer::generate_key_pair;
use tidings_core::delivery::ATTEMPT_TIMEOUT;
use tidings_core::pipeline::{DEFAULT_RETENTION_DAYS, Fanout, Ingest, Processor, QueuedTask, Watch};
use tidings_core::ports::{ApiKey, QueueName, StoreError};
use tidings_core::resend::Resender;
use tidings_core::source::{Source, new_id, new_secret};
use tidings_core::ssrf::Guard;
use tidings_core::{ProviderId, Timestamp};
use tidings_local::Sqlite;
use tidings_local::worker::{Wake, Waking, drain};

use crate::Failure;
use tidings_core::ports::{KeyStore, SourceStore};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8787";
pub const DEFAULT_DB: &str = ".tidings/dev.db";
pub const WORKSPACE: &str = "ws_default";
/// The SNS topics the dev sources of providers that publish through SNS accept: the topics the
/// samples in `events/` name (SES's events; AWS SMS's events and inbound messages).
pub const DEV_TOPICS: &[&str] = &[
    "arn:aws:sns:eu-west-1:111122223333:ses-events",
    "arn:aws:sns:us-east-1:111122223333:sms-events",
    "arn:aws:sns:us-east-1:111122223333:sms-inbound",
];

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// The SQLite database (created if missing).
    #[arg(long, default_value = DEFAULT_DB)]
    db: PathBuf,
    /// Days events are kept.
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
    retention_days: u64,
    /// How often the deliverability watch runs (thresholds, silent sources), in seconds. On
    /// AWS, EventBridge Scheduler runs it every 15 minutes.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    watch_every: u64,
    /// Resend retryably-failed SES sends through SESv2 at this endpoint (an emulator such as
    /// moto, or `https://email.<region>.amazonaws.com`), with credentials and region from the
    /// usual AWS environment. Without it, resends go to the local outbox (`tidings outbox`).
    #[arg(long, env = "TIDINGS_SES_ENDPOINT")]
    ses_endpoint: Option<String>,
    /// Deliver subscriptions whose url is an EventBridge bus or SQS queue ARN to this endpoint
    /// (an emulator such as moto). Without it they go to AWS itself, with credentials from the
    /// usual AWS environment, loaded when the first such delivery is made.
    #[arg(long, env = "TIDINGS_DESTINATIONS_ENDPOINT")]
    destinations_endpoint: Option<String>,
    /// Deliver under the production SSRF policy: loopback refused like every other private
    /// address (by default `tidings dev` lets subscribers on this machine receive).
    #[arg(long)]
    refuse_loopback: bool,
}

/// Where `tidings dev` resends: SESv2 when an endpoint is given, else the local outbox.
#[derive(Clone)]
enum DevEmailer {
    Outbox(Sqlite),
    Ses(tidings_aws::SesEmailer),
}

impl tidings_core::ports::Emailer for DevEmailer {
    async fn send_email(&self, request: &serde_json::Value) -> Result<String, tidings_core::retryable::SendError> {
        match self {
            DevEmailer::Outbox(db) => db.send_email(request).await,
            DevEmailer::Ses(ses) => ses.send_email(request).await,
        }
    }
}

/// What `tidings dev` leaves for the other commands: `dev.json` beside the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevConfig {
    pub api: String,
    pub api_key: String,
    pub workspace: String,
    pub db: PathBuf,
}

pub fn config_path(db: &Path) -> PathBuf {
    db.with_file_name("dev.json")
}

pub fn read_config(db: &Path) -> Option<DevConfig> {
    let text = std::fs::read_to_string(config_path(db)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Where the last `tidings dev` started records its database, so client commands run from
/// another directory (or after `tidings dev --db elsewhere.db`) find it:
/// `$XDG_STATE_HOME/tidings/dev-db`, else `~/.local/state/tidings/dev-db`.
fn last_started_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".local/state"))
    })?;
    Some(state.join("tidings").join("dev-db"))
}

/// The database of the last `tidings dev` started, if its `dev.json` is still there.
pub fn last_started() -> Option<PathBuf> {
    let db = PathBuf::from(std::fs::read_to_string(last_started_path()?).ok()?.trim_end());
    config_path(&db).is_file().then_some(db)
}

/// Records `db` as the last started dev database (best effort: the client then needs `--db`).
fn remember(db: &Path) {
    let (Some(pointer), Ok(db)) = (last_started_path(), std::path::absolute(db)) else { return };
    if let Some(dir) = pointer.parent()
        && private_dir(dir).is_ok()
    {
        let _ = std::fs::write(&pointer, db.as_os_str().as_encoded_bytes());
    }
}

/// Creates `dir` (and its parents) readable by the owner only; an existing one is left as it is.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes `text` to `path`, readable and writable by the owner only (it holds the API key).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // A file made before this rule keeps its old mode through `open`: set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Makes the database and its SQLite companions (WAL, shared memory, journal) owner-only:
/// they hold every source's and subscription's secret. SQLite gives the companions it creates
/// the database file's mode, so a new database is created 0600 before SQLite opens it.
fn private_database(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(db)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

pub async fn run(args: Args) -> Result<(), Failure> {
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir).map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    private_database(&args.db)
        .map_err(|e| Failure::Usage(format!("cannot make {} private: {e}", args.db.display())))?;
    // Deliveries are retried up to 8 times (the schedule), each a receive of the same message.
    let db = Sqlite::open(&args.db)
        .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", args.db.display())))?
        .with_max_receives(10);
    let base = format!("http://{}", args.addr);
    let config = match read_config(&args.db).filter(|c| c.api == base) {
        Some(config) => {
            println!("tidings dev: resuming {} (workspace {})", args.db.display(), config.workspace);
            config
        }
        None => bootstrap(&db, &args.db, &base).await?,
    };
    print_sources(&db, &base).await;
    remember(&args.db);

    let wake = Arc::new(Wake::default());
    let queue = Waking { db: db.clone(), wake: wake.clone() };
    let fetcher = tidings_ingest::HttpsFetcher::new();
    let ingest = Ingest::new(db.clone(), queue.clone(), fetcher).without_subscription_confirmation();
    let app = tidings_ingest::router(ingest, tidings_ingest::Options { queue_route: true, only: None }).merge(
        tidings_api::router(
            db.clone(),
            queue.clone(),
            // Locally the one workspace is also the operator: its key can redrive dead letters.
            tidings_api::Settings {
                public_base_url: base.clone(),
                operator_workspaces: vec![config.workspace.clone()],
                ses_suppressions: None,
                secret_references: false,
            },
        ),
    );

    // Listen for Ctrl-C (and SIGTERM) before opening the port, so a signal that arrives as soon
    // as the server is reachable still stops it cleanly.
    let stop_signal = stop_signal().map_err(|e| Failure::Usage(format!("cannot handle signals: {e}")))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {}: {e}", args.addr)))?;
    println!(
        "\napi key (workspace {}): {}  (also in {})",
        config.workspace,
        config.api_key,
        config_path(&args.db).display()
    );
    println!("tidings dev: listening on {base}; Ctrl-C stops");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let processor = Processor::with_fanout(db.clone(), queue.clone(), args.retention_days);
    // Locally, subscribers usually run on this machine: loopback is allowed (and only that),
    // unless the production policy is asked for.
    let guard = if args.refuse_loopback {
        Guard::new()
    } else {
        Guard::allowing(vec![
            "127.0.0.0/8".parse().map_err(Failure::Usage)?,
            "::1/128".parse().map_err(Failure::Usage)?,
        ])
    };
    let destinations = match &args.destinations_endpoint {
        Some(endpoint) => tidings_aws::LazyConfig::ready(tidings_aws::sdk_config_at(endpoint).await),
        None => tidings_aws::LazyConfig::from_env(),
    };
    let sender = tidings_fanout::Deliverer::new(guard, ATTEMPT_TIMEOUT)
        .map_err(|e| Failure::Usage(format!("cannot build the delivery client: {e}")))?
        .with_publisher(std::sync::Arc::new(tidings_aws::AwsPublisher::new(destinations)));
    let fanout = Fanout::new(db.clone(), queue.clone(), sender);
    // Resends of SES sends that failed retryably go to SESv2 if an endpoint is given, else to
    // the local outbox (`tidings outbox`).
    let emailer = match &args.ses_endpoint {
        Some(endpoint) => {
            let config = tidings_aws::sdk_config_at(endpoint).await;
            println!("tidings dev: resending failed SES sends through SESv2 at {endpoint}");
            DevEmailer::Ses(tidings_aws::SesEmailer::new(aws_sdk_sesv2::Client::new(&config)))
        }
        None => DevEmailer::Outbox(db.clone()),
    };
    let resender = Resender::new(db.clone(), queue.clone(), emailer);
    let watch = Watch::new(db.clone(), queue.clone());
    let every = std::time::Duration::from_secs(args.watch_every);
    let worker = tokio::spawn(work(processor, fanout, resender, (watch, every), db.clone(), wake, stop_rx.clone()));
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = server_stop.wait_for(|stop| *stop).await;
    });
    let signal = async {
        stop_signal.await;
        println!("\ntidings dev: stopping (queued events stay in {} for the next start)", args.db.display());
        let _ = stop_tx.send(true);
    };
    let (served, _) = tokio::join!(server, signal);
    served.map_err(|e| Failure::Usage(format!("server failed: {e}")))?;
    let _ = worker.await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are in place when this returns.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Drains the events queue through the processor, the deliveries queue through fan-out and the
/// resend queue through the resender, each in its own loop (so slow subscribers do not hold
/// up storing), until told to stop. Deliveries of one batch go out concurrently, as the fan-out
/// Lambda's do. A message whose handling fails retryably is left to reappear after a backoff;
/// one that fails permanently goes to its dead-letter queue with the reason.
async fn work(
    processor: Processor<Sqlite, Waking>,
    fanout: Fanout<Sqlite, Waking, tidings_fanout::Deliverer>,
    resender: Resender<Sqlite, Waking, DevEmailer>,
    (watch, every): (Watch<Sqlite, Waking>, std::time::Duration),
    db: Sqlite,
    wake: Arc<Wake>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let (processor, fanout, resender) = (&processor, &fanout, &resender);
    // The processor takes a received batch together (its deliveries enqueued at once); a
    // batch's deliveries and resends go out concurrently.
    let events = drain(QueueName::Events, &db, &wake, stop.clone(), |batch| async move {
        let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
        processor.process_batch(&bodies).await.into_iter().map(|r| r.map(|_| None)).collect()
    });
    // A batch's deliveries as the fan-out function takes them: each subscription read once, the
    // attempts logged in one transaction.
    let deliveries = drain(QueueName::Deliveries, &db, &wake, stop.clone(), |batch| async move {
        let messages: Vec<QueuedTask<'_>> =
            batch.iter().map(|m| QueuedTask { id: &m.id, body: &m.body, receive_count: m.receive_count }).collect();
        fanout.deliver_batch(&messages, Timestamp::now()).await
    });
    // The deliverability watch, on a timer: what EventBridge Scheduler does on AWS.
    let mut watch_stop = stop.clone();
    let watching = async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = watch.run(Timestamp::now()).await {
                        tracing::error!(%error, "deliverability watch failed");
                    }
                }
                changed = watch_stop.changed() => {
                    if changed.is_err() || *watch_stop.borrow() {
                        break;
                    }
                }
            }
        }
    };
    let resends = drain(QueueName::Resend, &db, &wake, stop, |batch| async move {
        let now = Timestamp::now();
        let resent = futures_util::future::join_all(batch.iter().map(|m| resender.resend(&m.body, now))).await;
        resent.into_iter().map(|r| r.map(|_| None)).collect()
    });
    tokio::join!(events, deliveries, resends, watching);
}

/// The first start: a workspace, an API key, and one source per provider.
async fn bootstrap(db: &Sqlite, path: &Path, base: &str) -> Result<DevConfig, Failure> {
    let fail = |e: StoreError| Failure::Usage(format!("cannot initialise {}: {e}", path.display()));
    let api_key = format!("tdk_{}", new_secret(false));
    db.put_api_key(&ApiKey {
        id: new_id("key"),
        workspace: WORKSPACE.into(),
        hash: tidings_api::api_key_hash(&api_key),
        created_at: Timestamp::now(),
    })
    .await
    .map_err(fail)?;
    let existing = db.sources(WORKSPACE).await.map_err(fail)?;
    for provider in ProviderId::ALL {
        if existing.iter().any(|s| s.provider == provider) {
            continue;
        }
        db.put_source(&dev_source(provider, base).map_err(Failure::Usage)?).await.map_err(fail)?;
    }
    let config = DevConfig { api: base.to_owned(), api_key, workspace: WORKSPACE.into(), db: path.to_owned() };
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| Failure::Usage(format!("cannot write the dev configuration: {e}")))?;
    write_private(&config_path(path), &text)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", config_path(path).display())))?;
    println!(
        "tidings dev: created {} with workspace {WORKSPACE}, an API key and a source per provider",
        path.display()
    );
    Ok(config)
}

fn dev_source(provider: ProviderId, base: &str) -> Result<Source, String> {
    example_source(provider, new_id("src"), base)
}

/// A source of `provider` in the dev workspace with id `id` and a new secret (a key pair for
/// providers that sign with a private key, the dev topic for SES), its webhooks posted under `base`.
pub fn example_source(provider: ProviderId, id: String, base: &str) -> Result<Source, String> {
    let mut source = Source {
        id: id.clone(),
        workspace: WORKSPACE.into(),
        provider,
        description: format!("{provider} (dev)"),
        secrets: Vec::new(),
        public_url: None,
        allowed_topics: Vec::new(),
        signature_header: None,
        tolerance_seconds: None,
        dev_signing_key: None,
        created_at: Timestamp::now(),
    };
    let scheme = provider.provider().authentication();
    if let Some(pair) = generate_key_pair(scheme) {
        let (private, public) = pair?;
        source.secrets = vec![public];
        source.dev_signing_key = Some(private);
        return Ok(source);
    }
    match scheme {
        Authentication::SnsSignature => source.allowed_topics = DEV_TOPICS.iter().map(|t| t.to_string()).collect(),
        Authentication::StandardWebhooks { .. } => source.secrets = vec![new_secret(true)],
        scheme if scheme.signs_url() => {
            source.secrets = vec![new_secret(false)];
            source.public_url = Some(format!("{base}/webhooks/{provider}/{id}"));
        }
        _ => source.secrets = vec![new_secret(false)],
    }
    Ok(source)
}

async fn print_sources(db: &Sqlite, base: &str) {
    let Ok(sources) = db.sources(WORKSPACE).await else { return };
    println!("\n{:<12} {:<62} secret", "provider", "webhook URL");
    for source in sources {
        let url = format!("{base}/webhooks/{}/{}", source.provider, source.id);
        let secret = match source.provider.provider().authentication() {
            Authentication::SnsSignature => format!("topic {}", source.allowed_topics.join(", ")),
            _ => source.secrets.first().cloned().unwrap_or_default(),
        };
        println!("{:<12} {url:<62} {secret}", source.provider.as_str());
    }
}
