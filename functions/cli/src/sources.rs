//! `tidings sources list|add|remove`.

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
    /// List the workspace's sources and their webhook URLs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a source; prints its webhook URL and (once) its secret.
    Add {
        /// Provider id.
        provider: String,
        #[arg(long, default_value = "")]
        description: String,
        /// The provider's secret or key (generated where the provider lets you choose).
        #[arg(long, env = "TIDINGS_SOURCE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Providers that sign the URL they post to (Twilio, Plivo): that exact URL, when a proxy
        /// or custom domain stands in front (default: the source's own webhook URL).
        #[arg(long)]
        public_url: Option<String>,
        /// Providers that publish through SNS (SES, AWS SMS): an SNS topic ARN to accept (repeatable).
        #[arg(long = "allow-topic")]
        allowed_topics: Vec<String>,
    },
    /// Remove a source.
    Remove { id: String },
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let client = Client::new(&args.api)?;
    match args.command {
        Command::List { json } => {
            let body = client.get("/api/sources", &[]).await?;
            for source in body["sources"].as_array().cloned().unwrap_or_default() {
                if json {
                    crate::out::outln!("{source}")?;
                } else {
                    // A value the provider's dashboard asks for besides the URL (WhatsApp's
                    // verify token) goes on the same line.
                    let token = match source["verify_token"].as_str() {
                        Some(_) => format!("  verify token {}", crate::out::field(&source["verify_token"], "")),
                        None => String::new(),
                    };
                    crate::out::outln!(
                        "{:<26} {:<12} {}{token}",
                        crate::out::field(&source["id"], ""),
                        crate::out::field(&source["provider"], ""),
                        crate::out::field(&source["url"], "")
                    )?;
                }
            }
        }
        Command::Add { provider, description, secret, public_url, allowed_topics } => {
            let body = json!({"provider": provider, "description": description, "secret": secret, "public_url": public_url, "allowed_topics": allowed_topics});
            let created = client.post("/api/sources", &body).await?;
            crate::out::outln!("{created:#}")?;
        }
        Command::Remove { id } => {
            client.delete(&format!("/api/sources/{id}")).await?;
            crate::out::outln!("removed {id}")?;
        }
    }
    Ok(())
}
