//! `tidings erase --recipient …` and `tidings privacy`: erasing a recipient, and the workspace's
//! retention and redaction settings.

use serde_json::{Value, json};

use crate::Failure;
use crate::client::{ApiArgs, Client};
use crate::out::outln;

#[derive(clap::Args)]
pub struct EraseArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The address or phone number.
    #[arg(long)]
    recipient: String,
    /// Erase without asking (scripts; the terminal otherwise asks to type the recipient again).
    #[arg(long)]
    yes: bool,
    /// The report as the API gives it (JSON, one per call).
    #[arg(long)]
    json: bool,
}

/// The most calls one erase makes: each removes up to 1,000 events.
const MAX_CALLS: usize = 1_000;

pub async fn erase(args: EraseArgs) -> Result<(), Failure> {
    if !args.yes {
        confirm(&args.recipient)?;
    }
    let client = Client::new(&args.api)?;
    let path = format!("/api/recipients/{}", crate::export::urlencode(&args.recipient));
    let mut total = json!({"events": 0, "raw_records": 0, "message_states": 0, "suppressions": 0, "queued": 0});
    for _ in 0..MAX_CALLS {
        let erased = client.delete(&path).await?;
        if args.json {
            outln!("{erased}")?;
        }
        for kind in ["events", "raw_records", "message_states", "suppressions", "queued"] {
            let sum = total[kind].as_u64().unwrap_or(0).saturating_add(erased[kind].as_u64().unwrap_or(0));
            total[kind] = json!(sum);
        }
        total["hash"] = erased["hash"].clone();
        if erased["complete"] != false {
            if !args.json {
                report(&total)?;
            }
            return Ok(());
        }
    }
    Err(Failure::Input(format!("the recipient still has events after {MAX_CALLS} calls; run the command again")))
}

fn report(total: &Value) -> Result<(), Failure> {
    outln!("events          {}", total["events"])?;
    outln!("provider records {}", total["raw_records"])?;
    outln!("message states  {}", total["message_states"])?;
    outln!("suppressions    {}  (kept under the hash)", total["suppressions"])?;
    outln!("queued copies   {}", total["queued"])?;
    outln!("known from now on as {}", crate::out::text(total["hash"].as_str().unwrap_or("")))
}

/// Asks on the terminal for the recipient to be typed again; refuses without a terminal.
fn confirm(recipient: &str) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "erasing cannot be undone: pass --yes to erase without a terminal to confirm on".into(),
        ));
    }
    eprint!("Erasing {} cannot be undone. Type the recipient again to go on: ", crate::out::text(recipient));
    std::io::stderr().flush().ok();
    let mut typed = String::new();
    std::io::stdin().lock().read_line(&mut typed).map_err(|e| Failure::Input(format!("stdin: {e}")))?;
    if typed.trim().eq_ignore_ascii_case(recipient.trim()) {
        Ok(())
    } else {
        Err(Failure::Usage("not the same recipient: nothing was erased".into()))
    }
}

#[derive(clap::Args)]
pub struct PrivacyArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Days events, message states and attempts are kept (1 to 3650); `default` for the
    /// deployment's.
    #[arg(long, value_name = "DAYS|default")]
    retention_days: Option<String>,
    /// Days provider records are kept (0: not at all); `default` for as long as the events.
    #[arg(long, value_name = "DAYS|default")]
    raw_retention_days: Option<String>,
    /// Drop IP addresses of opens and clicks as webhooks are received.
    #[arg(long, value_name = "true|false")]
    redact_ip: Option<bool>,
    /// Drop user agents of opens and clicks as webhooks are received.
    #[arg(long, value_name = "true|false")]
    redact_user_agent: Option<bool>,
    #[arg(long)]
    json: bool,
}

fn days(flag: &str, text: &str) -> Result<Value, Failure> {
    if text == "default" {
        return Ok(Value::Null);
    }
    text.parse::<u32>()
        .map(|d| json!(d))
        .map_err(|_| Failure::Usage(format!("--{flag} {text:?}: give a number of days or `default`")))
}

pub async fn privacy(args: PrivacyArgs) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    let mut settings = client.get("/api/privacy/settings", &[]).await?;
    let changing = args.retention_days.is_some()
        || args.raw_retention_days.is_some()
        || args.redact_ip.is_some()
        || args.redact_user_agent.is_some();
    if changing {
        if let Some(text) = &args.retention_days {
            settings["retention_days"] = days("retention-days", text)?;
        }
        if let Some(text) = &args.raw_retention_days {
            settings["raw_retention_days"] = days("raw-retention-days", text)?;
        }
        if let Some(redact) = args.redact_ip {
            settings["redact_ip"] = json!(redact);
        }
        if let Some(redact) = args.redact_user_agent {
            settings["redact_user_agent"] = json!(redact);
        }
        if let Some(map) = settings.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        settings = client.put("/api/privacy/settings", &settings).await?;
    }
    if args.json {
        return outln!("{settings}");
    }
    let or = |value: &Value, default: &str| value.as_u64().map_or_else(|| default.to_owned(), |d| format!("{d} days"));
    outln!("retention            {}", or(&settings["retention_days"], "the deployment's default"))?;
    outln!("provider records     {}", or(&settings["raw_retention_days"], "as long as their events"))?;
    outln!("redact IP addresses  {}", settings["redact_ip"].as_bool().unwrap_or(false))?;
    outln!("redact user agents   {}", settings["redact_user_agent"].as_bool().unwrap_or(false))
}
