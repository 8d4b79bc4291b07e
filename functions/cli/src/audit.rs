//! `tidings audit`: the workspace's administrative actions, newest last.

use serde_json::Value;

use crate::Failure;
use crate::client::{ApiArgs, Client};
use crate::out::{field, outln};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// How many entries at most (the newest).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    limit: u64,
    /// NDJSON: one entry per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while entries.len() < limit {
        let mut query = vec![("limit", (limit - entries.len()).min(1000).to_string())];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let page = client.get("/api/audit", &query).await?;
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        cursor = page["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    for entry in entries.iter().rev() {
        if args.json {
            outln!("{entry}")?;
        } else {
            outln!(
                "{}  {:<10} {:<14} {:<4} {}  {}",
                field(&entry["at"], ""),
                field(&entry["outcome"], ""),
                field(&entry["key"], ""),
                entry["status"],
                field(&entry["action"], ""),
                field(&entry["target"], "")
            )?;
        }
    }
    Ok(())
}
