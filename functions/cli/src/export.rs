//! `tidings export --recipient …`: everything the workspace holds about one recipient.

use crate::Failure;
use crate::client::{ApiArgs, Client};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    api: ApiArgs,
    /// The address or phone number.
    #[arg(long)]
    recipient: String,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    let path = format!("/api/recipients/{}/export", urlencode(&args.recipient));
    let export = client.get(&path, &[]).await?;
    if export["complete"] == false {
        eprintln!("the recipient has more events than one export holds: the newest are included");
    }
    let text =
        serde_json::to_string_pretty(&export).map_err(|e| Failure::Input(format!("cannot write the export: {e}")))?;
    crate::out::outln!("{text}")
}

/// `text` as one path segment.
pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'+' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
