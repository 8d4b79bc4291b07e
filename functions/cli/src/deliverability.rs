//! `tidings bounce-reason` (why a reply bounced, offline) and `tidings deliverability` (counts,
//! rates, settings and alarms of a running tidings).

use std::io::BufRead;

use serde_json::{Value, json};
use tidings_core::BounceKind;
use tidings_core::deliverability::{Reply, classify};

use crate::Failure;
use crate::client::{ApiArgs, Client};
use crate::out::{field, outln};

#[derive(clap::Args)]
pub struct BounceReasonArgs {
    /// The SMTP reply or diagnostic text (`550 5.1.1 <a@example.com>: user unknown`).
    reply: Option<String>,
    /// Read NDJSON lines `{"id", "smtp", "status"}` on stdin and write `{"id", "reason", "kind"}`
    /// lines, one for each, in order.
    #[arg(long, conflicts_with = "reply")]
    ndjson: bool,
}

/// The longest line `--ndjson` reads: replies are a few hundred bytes; a runaway line is refused.
const MAX_LINE: usize = 64 * 1024;

pub fn bounce_reason(args: BounceReasonArgs) -> Result<(), Failure> {
    if !args.ndjson {
        let Some(reply) = args.reply else {
            return Err(Failure::Usage("give the reply as an argument, or --ndjson to read lines on stdin".into()));
        };
        let classified = classify(&Reply { text: Some(&reply), ..Reply::default() }, BounceKind::Undetermined);
        return outln!("{}\t{}", classified.reason, classified.kind.as_str());
    }
    let mut failed = 0usize;
    let stdin = std::io::stdin();
    for (number, line) in stdin.lock().lines().enumerate() {
        let line = line.map_err(|e| Failure::Input(format!("stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match classify_line(&line) {
            Ok(answer) => outln!("{answer}")?,
            Err(why) => {
                failed += 1;
                eprintln!("line {}: {why}", number + 1);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Input(format!("{failed} lines could not be read (each named above)")));
    }
    Ok(())
}

/// One `--ndjson` line in, one answer out.
pub fn classify_line(line: &str) -> Result<Value, String> {
    if line.len() > MAX_LINE {
        return Err(format!("longer than {MAX_LINE} bytes"));
    }
    let input: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = input.as_object().ok_or("not a JSON object")?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("{name}: must be a string")),
        }
    };
    let smtp = text("smtp")?;
    let status = text("status")?;
    if smtp.is_none() && status.is_none() {
        return Err("neither smtp nor status is given".into());
    }
    let classified = classify(
        &Reply { text: smtp, code: status.filter(|s| !s.is_empty()), ..Reply::default() },
        BounceKind::Undetermined,
    );
    Ok(json!({
        "id": object.get("id").cloned().unwrap_or(Value::Null),
        "reason": classified.reason,
        "kind": classified.kind,
    }))
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: Option<Command>,
    /// What to group by: mailbox_provider, recipient_domain, provider, sending_domain or source.
    #[arg(long, default_value = "mailbox_provider")]
    by: String,
    /// The window's start: a span back from now (24h, 7d, 30d), RFC 3339 or Unix seconds.
    #[arg(long, default_value = "24h")]
    since: String,
    /// The report as the API gives it (JSON).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show the workspace's thresholds and mappings, or change them.
    Settings(SettingsArgs),
    /// Thresholds crossed and sources gone silent.
    Alarms {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct SettingsArgs {
    /// Hard bounces over messages attempted, per provider (a fraction: 0.05 is 5%).
    #[arg(long)]
    bounce_rate: Option<f64>,
    /// Complaints over messages attempted, per provider.
    #[arg(long)]
    complaint_rate: Option<f64>,
    /// Complaints over messages delivered, per mailbox provider.
    #[arg(long)]
    spam_rate: Option<f64>,
    /// The fewest messages in the window for a rate to be judged.
    #[arg(long)]
    min_volume: Option<u64>,
    /// The rolling window, in hours.
    #[arg(long)]
    window_hours: Option<u32>,
    /// The shortest quiet period, in hours, before a steady source is reported silent.
    #[arg(long)]
    silent_after_hours: Option<u32>,
    /// Map a recipient domain to a mailbox provider: `example.com=microsoft` (repeatable).
    #[arg(long = "map-domain", value_name = "DOMAIN=PROVIDER")]
    map_domain: Vec<String>,
    /// Remove a domain's mapping (repeatable).
    #[arg(long = "unmap-domain", value_name = "DOMAIN")]
    unmap_domain: Vec<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    match args.command {
        None => report(&client, &args.by, &args.since, args.json).await,
        Some(Command::Settings(settings)) => change_settings(&client, settings).await,
        Some(Command::Alarms { json }) => alarms(&client, json).await,
    }
}

fn percent(value: &Value) -> String {
    value.as_f64().map_or_else(|| "-".to_owned(), |rate| format!("{:.2}%", rate * 100.0))
}

async fn report(client: &Client, by: &str, since: &str, as_json: bool) -> Result<(), Failure> {
    let report = client.get("/api/deliverability", &[("by", by.to_owned()), ("since", since.to_owned())]).await?;
    if as_json {
        return outln!("{report}");
    }
    outln!(
        "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  top bounce reasons",
        by,
        "attempted",
        "delivered",
        "bounced",
        "deferred",
        "complnd",
        "bounce%",
        "compl%",
        "spam%"
    )?;
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().chain(std::iter::once(&report["total"])) {
        let name = if std::ptr::eq(row, &report["total"]) { "(all)".into() } else { field(&row["value"], "(none)") };
        let mut reasons: Vec<(String, u64)> = row["by_reason"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
            .unwrap_or_default();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        let reasons: Vec<String> =
            reasons.iter().take(3).map(|(reason, n)| format!("{} {n}", crate::out::text(reason))).collect();
        outln!(
            "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
            name,
            row["attempted"],
            row["delivered"],
            row["bounced"],
            row["deferred"],
            row["complained"],
            percent(&row["bounce_rate"]),
            percent(&row["complaint_rate"]),
            percent(&row["spam_rate"]),
            reasons.join(", ")
        )?;
    }
    if report["rows_left_out"].as_u64().unwrap_or(0) > 0 {
        eprintln!("{} more values left out; they are counted in (all)", report["rows_left_out"]);
    }
    Ok(())
}

async fn change_settings(client: &Client, args: SettingsArgs) -> Result<(), Failure> {
    let mut settings = client.get("/api/deliverability/settings", &[]).await?;
    let changing = args.bounce_rate.is_some()
        || args.complaint_rate.is_some()
        || args.spam_rate.is_some()
        || args.min_volume.is_some()
        || args.window_hours.is_some()
        || args.silent_after_hours.is_some()
        || !args.map_domain.is_empty()
        || !args.unmap_domain.is_empty();
    if changing {
        for (name, value) in [
            ("bounce_rate", args.bounce_rate.map(|v| json!(v))),
            ("complaint_rate", args.complaint_rate.map(|v| json!(v))),
            ("spam_rate", args.spam_rate.map(|v| json!(v))),
            ("min_volume", args.min_volume.map(|v| json!(v))),
            ("window_hours", args.window_hours.map(|v| json!(v))),
            ("silent_after_hours", args.silent_after_hours.map(|v| json!(v))),
        ] {
            if let Some(value) = value {
                settings[name] = value;
            }
        }
        if !settings["mailbox_domains"].is_object() {
            settings["mailbox_domains"] = json!({});
        }
        for mapping in &args.map_domain {
            let (domain, provider) = mapping
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--map-domain {mapping:?}: write it DOMAIN=PROVIDER")))?;
            settings["mailbox_domains"][domain.trim().to_ascii_lowercase()] = json!(provider.trim());
        }
        if let Some(map) = settings["mailbox_domains"].as_object_mut() {
            for domain in &args.unmap_domain {
                map.remove(&domain.trim().to_ascii_lowercase());
            }
        }
        settings = client.put("/api/deliverability/settings", &settings).await?;
    }
    if args.json {
        return outln!("{settings}");
    }
    outln!(
        "bounce rate threshold     {}  (per provider, hard bounces over attempted)",
        percent(&settings["bounce_rate"])
    )?;
    outln!("complaint rate threshold  {}  (per provider)", percent(&settings["complaint_rate"]))?;
    outln!("spam rate threshold       {}  (per mailbox provider, over delivered)", percent(&settings["spam_rate"]))?;
    outln!("minimum volume            {} messages", settings["min_volume"])?;
    outln!("window                    {} h", settings["window_hours"])?;
    outln!("silent after              {} h at least", settings["silent_after_hours"])?;
    for (domain, provider) in settings["mailbox_domains"].as_object().into_iter().flatten() {
        outln!("mapped domain             {} -> {}", crate::out::text(domain), field(provider, ""))?;
    }
    Ok(())
}

async fn alarms(client: &Client, as_json: bool) -> Result<(), Failure> {
    let list = client.get("/api/deliverability/alarms", &[]).await?;
    if as_json {
        return outln!("{list}");
    }
    for alarm in list["alarms"].as_array().into_iter().flatten() {
        outln!(
            "{:<8} {}  {}",
            if alarm["active"].as_bool() == Some(true) { "ACTIVE" } else { "clear" },
            field(&alarm["since"], ""),
            field(&alarm["key"], "")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_answer_with_their_id_or_say_what_is_wrong() {
        let answer = classify_line(r#"{"id":"a1","smtp":"550 5.1.1 user unknown","status":"5.1.1"}"#).unwrap();
        assert_eq!(answer, json!({"id":"a1","reason":"mailbox_unknown","kind":"hard"}));
        let answer = classify_line(r#"{"id":7,"status":"4.2.2"}"#).unwrap();
        assert_eq!(answer, json!({"id":7,"reason":"mailbox_full","kind":"soft"}));
        assert!(classify_line("[1]").unwrap_err().contains("object"));
        assert!(classify_line(r#"{"id":1}"#).unwrap_err().contains("neither"));
        assert!(classify_line(r#"{"smtp":5}"#).unwrap_err().contains("smtp"));
    }
}
