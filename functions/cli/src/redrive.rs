//! `tidings redrive <queue>`: moves a queue's dead letters back to it (an operator action: the
//! key must belong to an operator workspace), and follows the move until it ends.

use std::time::Duration;

use serde_json::Value;

use crate::Failure;
use crate::client::{ApiArgs, Client};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// The queue whose dead letters go back: events, deliveries or resend.
    queue: String,
    /// Only show what is on the dead-letter queue and how the latest move went.
    #[arg(long)]
    status: bool,
    /// Move the messages with receive/send/delete instead of an SQS move task (for queues or
    /// credentials that cannot start one). At least once: a message may arrive twice, which the
    /// processor stores once.
    #[arg(long)]
    manual: bool,
    /// Return once the move is started instead of following it to the end.
    #[arg(long)]
    no_wait: bool,
}

fn describe(status: &Value) -> String {
    let n = |field: &str| status[field].as_u64().unwrap_or(0);
    let mut line =
        format!("{}: {} waiting on the dead-letter queue", status["queue"].as_str().unwrap_or("?"), n("waiting"));
    if let Some(state) = status["status"].as_str() {
        line.push_str(&format!("; latest move {state}, {} moved", n("moved")));
        if let Some(total) = status["to_move"].as_u64() {
            line.push_str(&format!(" of {total}"));
        }
    }
    if let Some(failure) = status["failure"].as_str() {
        line.push_str(&format!(" (failed: {failure})"));
    }
    line
}

pub async fn run(args: Args) -> Result<(), Failure> {
    if let Err(why) = args.queue.parse::<tidings_core::ports::QueueName>() {
        return Err(Failure::Usage(why.reason));
    }
    let client = Client::new(&args.api)?;
    let status_path = format!("/api/queues/{}/dead-letters", args.queue);
    if args.status {
        crate::out::outln!("{}", describe(&client.get(&status_path, &[]).await?))?;
        return Ok(());
    }
    let method = if args.manual { "manual" } else { "native" };
    let mut status = client.post(&format!("/api/queues/{}/redrive?method={method}", args.queue), &Value::Null).await?;
    crate::out::outln!("{}", describe(&status))?;
    while !args.no_wait && status["status"].as_str() == Some("RUNNING") {
        tokio::time::sleep(Duration::from_secs(2)).await;
        status = client.get(&status_path, &[]).await?;
        crate::out::outln!("{}", describe(&status))?;
    }
    match status["status"].as_str() {
        Some("FAILED") | Some("CANCELLED") => Err(Failure::Input(describe(&status))),
        _ => Ok(()),
    }
}
