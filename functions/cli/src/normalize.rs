//! `tidings normalize`: one webhook body in, canonical events out (NDJSON on stdout).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidings_core::auth::sns::{CertUrl, CertificateStore, SnsCertificate, SnsError};
use tidings_core::auth::{Authentication, ReplayGuard, Secret, SourceAuth, VerifyContext};
use tidings_core::{Headers, NormalizeContext, ProviderId, Timestamp, Transport, Webhook};

use crate::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Provider id (see `tidings providers`).
    #[arg(long, short)]
    provider: ProviderId,
    /// The webhook body; `-` or nothing reads standard input. A `<name>.headers` file beside
    /// `<name>.<ext>` is read as the request headers.
    file: Option<PathBuf>,
    /// Skip the authenticity check (for bodies you captured yourself).
    #[arg(long)]
    no_verify: bool,
    /// A request header, `Name: value` (repeatable; added to any .headers file).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The source's secret: HMAC secret, signing key, auth token, shared secret, or SendGrid
    /// verification public key.
    #[arg(long, env = "TIDINGS_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The public URL the provider posted to (Twilio signs it; its query string also carries a
    /// `?token=` shared secret).
    #[arg(long)]
    url: Option<String>,
    /// Directory of SNS signing certificates, named by the last path segment of
    /// SigningCertURL, for offline verification.
    #[arg(long)]
    sns_cert_dir: Option<PathBuf>,
    /// An SNS topic ARN to accept (repeatable).
    #[arg(long = "allow-topic", value_name = "ARN")]
    allow_topics: Vec<String>,
    /// Header carrying the HMAC signature, for providers that let you rename it (Active Reach).
    #[arg(long)]
    signature_header: Option<String>,
    /// The clock for timestamp tolerance checks and `received_at`, in Unix seconds.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<i64>,
    /// Treat the body as taken from an SQS queue (SNS raw delivery, EventBridge): unsigned SES
    /// records are accepted.
    #[arg(long)]
    from_queue: bool,
    /// Workspace the events belong to.
    #[arg(long, default_value = "ws_default")]
    workspace: String,
}

/// Certificates read from a directory, by file name.
struct CertDir(Option<PathBuf>);

impl CertificateStore for CertDir {
    fn certificate(&self, url: &CertUrl) -> Result<Arc<SnsCertificate>, SnsError> {
        let Some(dir) = self.0.as_ref() else {
            return Err(SnsError::Unavailable {
                place: url.as_str().to_owned(),
                why: "no --sns-cert-dir given to find the SNS signing certificate in".into(),
            });
        };
        let path = dir.join(url.file_name());
        let unavailable = |why: String| SnsError::Unavailable { place: path.display().to_string(), why };
        let pem = std::fs::read(&path).map_err(|e| unavailable(format!("cannot read the certificate: {e}")))?;
        SnsCertificate::from_pem(&pem).map(Arc::new).map_err(|e| unavailable(e.to_string()))
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let provider = args.provider;
    let body = read_body(args.file.as_deref())?;
    let mut headers = match args.file.as_deref().map(headers_file) {
        Some(Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
            Headers::parse_lines(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        _ => Headers::new(),
    };
    for line in &args.headers {
        headers.push_line(line).map_err(|e| Failure::Usage(e.reason))?;
    }
    let now = match args.now {
        Some(seconds) => Timestamp::from_unix_seconds(seconds)
            .ok_or_else(|| Failure::Usage(format!("--now {seconds} is out of range")))?,
        None => Timestamp::now(),
    };
    let query = args.url.as_deref().and_then(|u| u.split_once('?')).map(|(_, q)| q);
    let transport = if args.from_queue { Transport::Queue } else { Transport::Http };
    let webhook = Webhook { body: &body, headers: &headers, query, transport };
    let implementation = provider.provider();

    if !args.no_verify {
        let scheme = implementation.authentication();
        if args.secret.is_none() && scheme != Authentication::SnsSignature {
            return Err(Failure::Usage(format!(
                "{provider}: --secret <{}> is needed to verify (or pass --no-verify)",
                scheme.secret_name()
            )));
        }
        let auth = SourceAuth {
            secrets: args.secret.iter().map(Secret::new).collect(),
            public_url: args.url.clone(),
            allowed_topics: args.allow_topics.clone(),
            signature_header: args.signature_header.clone(),
            tolerance_seconds: None,
        };
        let certificates = CertDir(args.sns_cert_dir.clone());
        let ctx = VerifyContext { now, certificates: &certificates };
        let verified = implementation.verify(&webhook, &auth, &ctx).map_err(|e| Failure::Input(e.to_string()))?;
        if let Some(claim) = &verified.replay_claim {
            ReplayGuard::new().claim(claim, now).map_err(|e| Failure::Input(e.to_string()))?;
        }
    }

    let ctx = NormalizeContext { workspace: &args.workspace, received_at: now };
    let normalized = implementation.normalize(&webhook, &ctx).map_err(|e| Failure::Input(e.to_string()))?;
    for notice in &normalized.notices {
        eprintln!("{provider}: note: {notice}");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for event in &normalized.events {
        let line = serde_json::to_string(&event.event).map_err(|e| Failure::Input(format!("{provider}: {e}")))?;
        writeln!(out, "{line}").map_err(|e| Failure::Usage(format!("writing output: {e}")))?;
    }
    out.flush().map_err(|e| Failure::Usage(format!("writing output: {e}")))
}

fn read_body(file: Option<&Path>) -> Result<Vec<u8>, Failure> {
    match file {
        None => read_stdin(),
        Some(path) if path == Path::new("-") => read_stdin(),
        Some(path) => std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display()))),
    }
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
    Ok(body)
}

/// `<dir>/<stem>.headers` beside `<dir>/<stem>.<ext>`, when it exists.
fn headers_file(body: &Path) -> Option<PathBuf> {
    if body == Path::new("-") {
        return None;
    }
    let candidate = body.with_extension("headers");
    (candidate != body && candidate.is_file()).then_some(candidate)
}
