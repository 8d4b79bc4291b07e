//! `tidings replay`: posts sample payloads to a tidings server, signed the way their provider
//! signs, with the secret of the dev source for that provider.

use std::path::{Path, PathBuf};

use tidings_core::auth::Authentication;
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::{Headers, ProviderId, Timestamp};
use tidings_local::Sqlite;

use crate::Failure;
use crate::dev;
use tidings_core::ports::SourceStore;

#[derive(clap::Args)]
pub struct Args {
    /// Sample files, or directories of them (`events/`, `events/sendgrid`): `<provider>/<name>.json`
    /// or `.form`, with `<name>.headers` beside it when there is one. `expected/` is skipped.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The server's base URL (default: the local dev server).
    #[arg(long)]
    to: Option<String>,
    /// The dev database whose sources sign the samples.
    #[arg(long, default_value = dev::DEFAULT_DB)]
    db: PathBuf,
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let config = dev::read_config(&args.db).ok_or_else(|| {
        Failure::Usage(format!("no {}: start `tidings dev` first", dev::config_path(&args.db).display()))
    })?;
    let base = args.to.clone().unwrap_or(config.api.clone()).trim_end_matches('/').to_owned();
    let db = Sqlite::open(&args.db).map_err(|e| Failure::Usage(format!("cannot open {}: {e}", args.db.display())))?;
    let sources = db.sources(&config.workspace).await.map_err(|e| Failure::Usage(e.to_string()))?;
    let mut files = Vec::new();
    for path in &args.paths {
        collect(path, &mut files).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    }
    let http = reqwest::Client::new();
    let mut failed = 0;
    for file in &files {
        let provider = provider_of(file).ok_or_else(|| {
            Failure::Usage(format!("{}: put samples under a directory named after their provider", file.display()))
        })?;
        let source = sources
            .iter()
            .find(|s| s.provider == provider)
            .ok_or_else(|| Failure::Usage(format!("no {provider} source in workspace {}", config.workspace)))?;
        let body = std::fs::read(file).map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
        let mut headers = match std::fs::read_to_string(file.with_extension("headers")) {
            Ok(text) => Headers::parse_lines(&text).map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?,
            Err(_) => Headers::new(),
        };
        // Samples signed through SNS (SES's envelopes and raw records) only AWS can sign: they go
        // in the way the SNS→SQS wiring delivers them.
        let (url, body) = if provider.provider().authentication() == Authentication::SnsSignature {
            (format!("{base}/webhooks/{provider}/{}/queued", source.id), body)
        } else {
            let url = format!("{base}/webhooks/{provider}/{}", source.id);
            let secret = source.signing_secret().unwrap_or_default();
            let key = SigningKey { secret, public_url: source.public_url.as_deref() };
            let signed = signer::sign(provider, &body, &mut headers, &key, Timestamp::now())
                .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
            (url, signed)
        };
        let mut request = http.post(&url).body(body);
        for (name, value) in headers.iter() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                crate::out::outln!("{} {} {}", status.as_u16(), file.display(), crate::out::text(text.trim()))?;
                if !status.is_success() {
                    failed += 1;
                }
            }
            Err(error) => {
                crate::out::outln!("--- {} cannot reach {url}: {error}", file.display())?;
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Input(format!("{failed} of {} samples were not accepted", files.len())));
    }
    Ok(())
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        // Not samples: the checked-in expectations, and the Lambda event envelopes.
        if path.file_name().is_some_and(|n| n == "expected" || n == "lambda") {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for entry in entries {
            collect(&entry, files)?;
        }
    } else if matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "form")) {
        files.push(path.to_owned());
    } else if !path.exists() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"));
    }
    Ok(())
}

fn provider_of(file: &Path) -> Option<ProviderId> {
    file.parent()?.file_name()?.to_str()?.parse().ok()
}
