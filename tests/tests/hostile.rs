//! The bad-input catalogue: hostile requests to every provider's route, each answered with its
//! documented status and a one-line reason naming the provider, and nothing enqueued. The
//! property tests of `functions/core/tests/no_panic.rs` cover arbitrary bytes; this covers the
//! requests an attacker or a broken sender actually makes, through the real router.

#[path = "hostile/admin_input.rs"]
mod admin_input;
mod common;
#[path = "hostile/contract.rs"]
mod contract;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Fixture, events_dir, fixture};
use serde_json::Value;
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::ports::QueueName;
use tidings_core::{ProviderId, Timestamp};
use tidings_local::Sqlite;

/// Each provider with HTTP delivery signed by a source's key (SES comes through SNS; see below),
/// with its example sample as the catalogue's starting point.
fn samples() -> Vec<(ProviderId, String)> {
    tidings_tests::lambda_events::http_samples().into_iter().map(|(p, name)| (p, format!("{p}/{name}"))).collect()
}

/// What a hostile request should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Refused with this status and nothing enqueued.
    Refused(StatusCode),
    /// Accepted: the events of the untouched sample, no more.
    SameAsSample,
}

struct Case {
    name: &'static str,
    body: Vec<u8>,
    /// Sign the body as the provider would (else send the sample's headers unsigned).
    signed: bool,
    /// Replace the sample's Content-Type.
    content_type: Option<&'static str>,
    expect: Expect,
}

/// How a provider's records are read decides two answers (README, "Bad input"):
/// - Mailgun and Unisender Go sign inside their JSON body, so a body that does not parse carries
///   no signature: 401, where the others answer 400.
/// - A key given twice is refused (400, naming it) where tidings reads records field by field;
///   SendGrid's custom reader, MailGlyph's and Mailgun's JSON maps and Twilio's form take the
///   last value. The signature covers the bytes, so only the provider can send either.
fn cases(provider: ProviderId, sample: &[u8]) -> Vec<Case> {
    use Expect::*;
    let form = provider.provider().example().ends_with(".form");
    let inside = provider.provider().authentication().signs_inside_body();
    let malformed = if inside { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    let duplicates = match provider {
        ProviderId::Sendgrid | ProviderId::Mailglyph | ProviderId::Mailgun | ProviderId::Twilio => SameAsSample,
        _ => Refused(StatusCode::BAD_REQUEST),
    };
    let truncated = sample[..sample.len() / 2].to_vec();
    let mut invalid_utf8 = sample.to_vec();
    invalid_utf8.splice(1..1, [0xff, 0xfe, 0xc3]);
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    // About 3.6 MB: under the 4 MiB limit, so it is parsed, not refused by size.
    let huge_batch = format!("[{}{{}}]", "{},".repeat(1_200_000)).into_bytes();
    let fifty_megabytes = vec![b'['; 50 * 1024 * 1024];
    let wrong_types = wrong_types(sample, form);
    let duplicate_keys = duplicate_keys(sample, form);
    vec![
        Case { name: "empty body", body: Vec::new(), signed: true, content_type: None, expect: Refused(malformed) },
        Case {
            name: "invalid UTF-8",
            body: invalid_utf8,
            signed: true,
            content_type: None,
            expect: Refused(malformed),
        },
        Case { name: "truncated body", body: truncated, signed: true, content_type: None, expect: Refused(malformed) },
        Case { name: "deeply nested JSON", body: nested, signed: true, content_type: None, expect: Refused(malformed) },
        Case {
            name: "huge batch array",
            body: huge_batch,
            signed: true,
            content_type: None,
            expect: Refused(malformed),
        },
        Case {
            name: "50 MB body",
            body: fifty_megabytes,
            signed: false,
            content_type: None,
            expect: Refused(StatusCode::PAYLOAD_TOO_LARGE),
        },
        Case {
            name: "wrong types in known fields",
            body: wrong_types,
            signed: true,
            content_type: None,
            expect: Refused(StatusCode::BAD_REQUEST),
        },
        Case { name: "duplicate keys", body: duplicate_keys, signed: true, content_type: None, expect: duplicates },
        Case {
            name: "missing signature headers",
            body: sample.to_vec(),
            signed: false,
            content_type: None,
            expect: Refused(StatusCode::UNAUTHORIZED),
        },
        // The body is read in the provider's format whatever the header says (SNS posts JSON
        // as text/plain).
        Case {
            name: "wrong content type",
            body: sample.to_vec(),
            signed: true,
            content_type: Some("text/plain"),
            expect: SameAsSample,
        },
    ]
}

/// The sample with every string value of its first record replaced by a number (a form's
/// values cannot have types: its fields are emptied instead).
fn wrong_types(sample: &[u8], form: bool) -> Vec<u8> {
    if form {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(sample).map(|(k, _)| (k.into_owned(), String::new())).collect();
        return form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes();
    }
    let mut value: Value = serde_json::from_slice(sample).unwrap();
    let record = match &mut value {
        Value::Array(items) => items.first_mut().unwrap(),
        other => other,
    };
    fn numbers(value: &mut Value) {
        match value {
            Value::String(_) => *value = Value::from(12345),
            Value::Object(map) => map.values_mut().for_each(numbers),
            Value::Array(items) => items.iter_mut().for_each(numbers),
            _ => {}
        }
    }
    numbers(record);
    serde_json::to_vec(&value).unwrap()
}

/// The sample with its first object's first key repeated, same value.
fn duplicate_keys(sample: &[u8], form: bool) -> Vec<u8> {
    if form {
        let first = sample.split(|b| *b == b'&').next().unwrap().to_vec();
        return [sample, b"&", &first].concat();
    }
    let text = std::str::from_utf8(sample).unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    let object = match &value {
        Value::Array(items) => items[0].as_object().unwrap(),
        other => other.as_object().unwrap(),
    };
    let (key, first) = object.iter().next().unwrap();
    let brace = text.find('{').unwrap();
    format!("{}{{{}: {},{}", &text[..brace], Value::from(key.as_str()), first, &text[brace + 1..]).into_bytes()
}

async fn post(f: &Fixture<Sqlite>, provider: ProviderId, path: &str, case: &Case) -> (StatusCode, Value) {
    let source = f.source(provider);
    let mut headers = common::sample_headers(&events_dir().join(path));
    let body = if case.signed {
        let key = SigningKey { secret: source.signing_secret().unwrap(), public_url: source.public_url.as_deref() };
        match signer::sign(provider, &case.body, &mut headers, &key, Timestamp::now()) {
            Ok(signed) => signed,
            // Mailgun and Unisender sign inside their JSON: a body that is not JSON cannot carry a
            // signature.
            Err(_) if provider.provider().authentication().signs_inside_body() => case.body.clone(),
            Err(error) => panic!("{provider} / {}: cannot sign: {error}", case.name),
        }
    } else {
        case.body.clone()
    };
    let mut request = Request::post(format!("/webhooks/{provider}/{}", source.id));
    for (name, value) in headers.iter() {
        if !(case.content_type.is_some() && name.eq_ignore_ascii_case("content-type")) {
            request = request.header(name, value);
        }
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    f.call(request.body(Body::from(body)).unwrap()).await
}

/// Empties the events queue; returns how many messages it held.
fn take_all(db: &Sqlite) -> usize {
    let mut taken = 0;
    loop {
        let batch = db.receive(QueueName::Events, 10, 30).unwrap();
        if batch.is_empty() {
            return taken;
        }
        let receipts: Vec<&str> = batch.iter().map(|m| m.receipt.as_str()).collect();
        db.delete_all(QueueName::Events, &receipts).unwrap();
        taken += batch.len();
    }
}

#[tokio::test]
async fn every_hostile_request_gets_its_status_and_a_one_line_reason_and_enqueues_nothing() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db).await;
    let mut failures = Vec::new();
    for (provider, path) in samples() {
        let sample = std::fs::read(events_dir().join(&path)).unwrap();
        // What the untouched sample yields, for the cases that should be accepted.
        let (status, _) = post(
            &f,
            provider,
            &path,
            &Case {
                name: "sample",
                body: sample.clone(),
                signed: true,
                content_type: None,
                expect: Expect::SameAsSample,
            },
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{provider}: the untouched sample is accepted");
        let accepted = take_all(&f.store);

        for case in cases(provider, &sample) {
            let (status, body) = post(&f, provider, &path, &case).await;
            let depth = take_all(&f.store);
            let reason = body["error"].as_str().unwrap_or_default();
            let problem = match case.expect {
                Expect::Refused(expected) if status != expected => {
                    Some(format!("got {status}, wanted {expected}: {body}"))
                }
                Expect::Refused(_) if depth != 0 => Some(format!("refused but enqueued {depth}")),
                Expect::Refused(_) if reason.contains('\n') || !reason.starts_with(&format!("{provider}: ")) => {
                    Some(format!("the reason is not one line naming the provider: {reason:?}"))
                }
                Expect::SameAsSample if status != StatusCode::OK || depth != accepted => {
                    Some(format!("got {status} and {depth} events, wanted 200 and {accepted}: {body}"))
                }
                _ => None,
            };
            if let Some(problem) = problem {
                failures.push(format!("{provider} / {}: {problem}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{} hostile requests mishandled:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn an_upload_cut_short_is_a_400_and_one_over_the_limit_a_413() {
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let postmark = f.source(ProviderId::Postmark).id.clone();
    let uri = format!("/webhooks/postmark/{postmark}?token=secret-postmark");
    // The sender's connection breaks after part of the body.
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
        Ok(axum::body::Bytes::from_static(b"{\"RecordType\":\"Deliv")),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset")),
    ];
    let cut = Request::post(uri.as_str()).body(Body::from_stream(futures_util::stream::iter(chunks))).unwrap();
    let (status, body) = f.call(cut).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("truncated"), "{body}");
    // A body over the limit, sent in pieces with no length announced.
    let piece = axum::body::Bytes::from(vec![b' '; 1 << 20]);
    let pieces: Vec<Result<axum::body::Bytes, std::io::Error>> = (0..5).map(|_| Ok(piece.clone())).collect();
    let large = Request::post(uri.as_str()).body(Body::from_stream(futures_util::stream::iter(pieces))).unwrap();
    assert_eq!(f.call(large).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(take_all(&db), 0, "nothing enqueued");
}

/// Providers that publish through SNS (SES, AWS SMS): over HTTPS only a message SNS signed for
/// an allow-listed topic gets through. Their samples carry placeholder signatures, so each is
/// refused over HTTP whatever it holds, and a raw record (which SNS never signs) is forbidden.
#[tokio::test]
async fn unsigned_or_forged_sns_messages_are_refused_over_https_and_enqueue_nothing() {
    use tidings_core::auth::Authentication;
    let db = Sqlite::in_memory().unwrap();
    let f = fixture(db.clone(), db.clone()).await;
    let sns = ProviderId::ALL.into_iter().filter(|p| p.provider().authentication() == Authentication::SnsSignature);
    for provider in sns {
        let source = f.source(provider).id.clone();
        let dir = events_dir().join(provider.as_str());
        let envelope = std::fs::read(dir.join(provider.provider().example())).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
        let raw = record["Message"].as_str().unwrap().as_bytes().to_vec();
        for (body, what) in [(envelope, "envelope with a forged signature"), (raw, "raw record")] {
            let request = Request::post(format!("/webhooks/{provider}/{source}"))
                .header("Content-Type", "text/plain; charset=UTF-8")
                .body(Body::from(body))
                .unwrap();
            let (status, answer) = f.call(request).await;
            assert!(
                matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::SERVICE_UNAVAILABLE),
                "{provider} {what}: {status} {answer}"
            );
            let reason = answer["error"].as_str().unwrap_or_default();
            assert!(reason.starts_with(&format!("{provider}: ")) && !reason.contains('\n'), "{answer}");
        }
    }
    assert_eq!(take_all(&db), 0, "nothing enqueued");
}
