//! `tidings subscriptions add|list` and `tidings attempts`.

use serde_json::json;

use crate::Failure;
use crate::client::{ApiArgs, Client};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Deliver matching events to a URL, an EventBridge bus or an SQS queue; prints the signing
    /// secret (shown once).
    Add {
        /// Where events go: an `https://` URL (POSTed, signed), an EventBridge event bus ARN
        /// (`arn:aws:events:REGION:ACCOUNT:event-bus/NAME`) or an SQS queue ARN
        /// (`arn:aws:sqs:REGION:ACCOUNT:NAME`, FIFO when it ends in `.fifo`).
        url: String,
        /// A type pattern (`email.*`, `*.bounced`, `*`); repeatable.
        #[arg(long = "type", required = true)]
        types: Vec<String>,
        /// Only events from this provider (repeatable).
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// Only events whose fields pass this filter, e.g. `data.bounce.kind == "hard"`,
        /// `data.tags.userId exists`, `data.mailbox_provider in ["gmail", "yahoo"]`, joined by
        /// `and`, `or`, `not` and parentheses.
        #[arg(long)]
        filter: Option<String>,
        /// `cloudevents` (default) or `dittofeed`.
        #[arg(long, default_value = "cloudevents")]
        format: String,
        /// Dittofeed format: `recipient` sends events without a `userId` tag with the recipient
        /// as `anonymousId`; `none` (default) skips them, as Dittofeed's own handlers do.
        #[arg(long, default_value = "none")]
        anonymous_id: String,
        /// A request header, `Name: value` (repeatable; never shown again).
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        pacing: PacingArgs,
    },
    /// List the workspace's subscriptions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A new signing secret (printed once); the old ones keep signing for the grace period.
    Rotate {
        id: String,
        /// Seconds the old secrets keep signing.
        #[arg(long, default_value_t = 86_400)]
        grace_seconds: i64,
    },
    /// Deliver to the subscription again (also clears its failure clock).
    Enable { id: String },
    /// Send the subscription a `subscription.test` event.
    Test { id: String },
    /// Stop delivering to the subscription.
    Disable { id: String },
    /// Deliver stored events again, with their original webhook-ids.
    Replay {
        id: String,
        /// Events at or after this time (RFC 3339 or Unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Events at or before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only events of this type pattern.
        #[arg(long = "type")]
        type_pattern: Option<String>,
    },
}

/// Pace and circuit settings of a new subscription; the API checks their bounds.
#[derive(clap::Args)]
struct PacingArgs {
    /// Deliveries started per second at most, across every fan-out instance (1 to 500).
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Deliveries awaiting the subscriber's answer at most (1 to 100).
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Consecutive failed attempts that open the circuit (default 5).
    #[arg(long)]
    circuit_failures: Option<u32>,
    /// Also open the circuit when this percentage of recent attempts failed (1 to 100).
    #[arg(long)]
    circuit_failure_rate: Option<u32>,
    /// The failure-rate window, in seconds (default 300).
    #[arg(long)]
    circuit_window_seconds: Option<u32>,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    match args.command {
        Command::Add { url, types, providers, filter, format, anonymous_id, headers, description, pacing } => {
            let mut body = json!({"url": url, "types": types, "providers": providers, "filter": filter, "format": format, "anonymous_id": anonymous_id, "headers": headers, "description": description});
            let PacingArgs {
                rate_limit,
                max_in_flight,
                circuit_failures,
                circuit_failure_rate,
                circuit_window_seconds,
            } = pacing;
            for (name, value) in [
                ("rate_limit", rate_limit),
                ("max_in_flight", max_in_flight),
                ("circuit_failures", circuit_failures),
                ("circuit_failure_rate", circuit_failure_rate),
                ("circuit_window_seconds", circuit_window_seconds),
            ] {
                if let Some(value) = value {
                    body[name] = json!(value);
                }
            }
            let created = client.post("/api/subscriptions", &body).await?;
            crate::out::outln!("{created:#}")?;
        }
        Command::List { json } => {
            let body = client.get("/api/subscriptions", &[]).await?;
            for s in body["subscriptions"].as_array().cloned().unwrap_or_default() {
                if json {
                    crate::out::outln!("{s}")?;
                } else {
                    let circuit = crate::out::field(&s["circuit"]["state"], "closed");
                    let state = if s["enabled"].as_bool() == Some(true) && circuit != "closed" {
                        format!("circuit {circuit}")
                    } else if s["enabled"].as_bool() == Some(true) {
                        "enabled".to_owned()
                    } else {
                        format!("disabled: {}", crate::out::field(&s["disabled_reason"], ""))
                    };
                    crate::out::outln!(
                        "{:<26} {:<40} {:<24} {state}",
                        crate::out::field(&s["id"], ""),
                        crate::out::field(&s["url"], ""),
                        s["types"].to_string()
                    )?;
                }
            }
        }
        Command::Rotate { id, grace_seconds } => {
            let path = format!("/api/subscriptions/{id}/rotate?grace_seconds={grace_seconds}");
            let rotated = client.post(&path, &json!({})).await?;
            crate::out::outln!("new secret (shown once): {}", crate::out::field(&rotated["secret"], ""))?;
        }
        Command::Enable { id } => {
            client.post(&format!("/api/subscriptions/{id}/enable"), &json!({})).await?;
            crate::out::outln!("enabled {id}")?;
        }
        Command::Test { id } => {
            let sent = client.post(&format!("/api/subscriptions/{id}/test"), &json!({})).await?;
            crate::out::outln!(
                "test event {} queued for {id}; see `tidings attempts {id}`",
                crate::out::field(&sent["event_id"], "")
            )?;
        }
        Command::Disable { id } => {
            client.post(&format!("/api/subscriptions/{id}/disable"), &json!({})).await?;
            crate::out::outln!("disabled {id}")?;
        }
        Command::Replay { id, since, until, type_pattern } => {
            let mut query = Vec::new();
            for (name, value) in [("since", since), ("until", until), ("type", type_pattern)] {
                if let Some(v) = value {
                    query.push(format!("{name}={}", url_encode(&v)));
                }
            }
            // Each call replays a bounded stretch of the range; its `next` goes on from there.
            let mut total = 0;
            let mut cursor: Option<String> = None;
            loop {
                let mut this = query.clone();
                if let Some(cursor) = &cursor {
                    this.push(format!("cursor={}", url_encode(cursor)));
                }
                let path = format!("/api/subscriptions/{id}/replay?{}", this.join("&"));
                let replayed = client.post(&path, &json!({})).await?;
                total += replayed["replayed"].as_u64().unwrap_or(0);
                match replayed["next"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
            crate::out::outln!("{total} events queued for redelivery to {id}")?;
        }
    }
    Ok(())
}

/// Percent-encodes a query value (times carry `:` and `+`).
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(clap::Args)]
pub struct AttemptsArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The subscription.
    subscription: String,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub async fn attempts(args: AttemptsArgs) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    let body = client
        .get(&format!("/api/subscriptions/{}/attempts", args.subscription), &[("limit", args.limit.to_string())])
        .await?;
    for a in body["attempts"].as_array().cloned().unwrap_or_default() {
        if args.json {
            crate::out::outln!("{a}")?;
        } else {
            crate::out::outln!(
                "{}  #{} {:<12} {:>4} {:>6} ms  {}  next {}",
                crate::out::field(&a["at"], ""),
                a["attempt"],
                crate::out::field(&a["outcome"], ""),
                a["status"].as_u64().map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                a["latency_ms"],
                crate::out::field(&a["event_id"], ""),
                crate::out::field(&a["next_attempt_at"], "-")
            )?;
        }
    }
    Ok(())
}
