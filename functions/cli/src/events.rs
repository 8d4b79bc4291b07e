//! `tidings events`: stored events, newest last.

use serde_json::Value;

use crate::Failure;
use crate::client::{ApiArgs, Client};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// One message's timeline.
    #[arg(long)]
    message: Option<String>,
    /// One recipient's events.
    #[arg(long)]
    recipient: Option<String>,
    /// A type pattern: `email.bounced`, `email.*`, `*.bounced`.
    #[arg(long = "type")]
    type_pattern: Option<String>,
    /// Only events at or after this time (RFC 3339 or Unix seconds).
    #[arg(long)]
    since: Option<String>,
    /// How many events at most (the newest ones).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// NDJSON: one canonical event per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    let mut events: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < args.limit {
        let mut query = vec![("limit", (args.limit - events.len()).min(1000).to_string())];
        for (name, value) in [
            ("message", &args.message),
            ("recipient", &args.recipient),
            ("type", &args.type_pattern),
            ("since", &args.since),
            ("cursor", &cursor),
        ] {
            if let Some(v) = value {
                query.push((name, v.clone()));
            }
        }
        let page = client.get("/api/events", &query).await?;
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        cursor = page["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    // Said on stderr, so `--json` output stays clean.
    if cursor.is_some() && events.len() >= args.limit {
        eprintln!(
            "showing the newest {} events; more match: raise --limit, or narrow with --since, --type, --message or --recipient",
            events.len()
        );
    }
    // The API pages newest first; print oldest first so the newest is at the bottom.
    for event in events.iter().rev() {
        if args.json {
            crate::out::outln!("{event}")?;
        } else {
            let d = &event["data"];
            crate::out::outln!(
                "{}  {:<20} {:<28} {:<24} {}",
                crate::out::field(&event["time"], ""),
                crate::out::field(&event["type"], ""),
                crate::out::field(&d["recipient"], "-"),
                crate::out::field(&d["message_id"], "-"),
                crate::out::field(&event["id"], "")
            )?;
        }
    }
    Ok(())
}
