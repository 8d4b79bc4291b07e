//! Authenticity against real, published signature vectors (`tests/vectors/`, sources in its
//! README), and against tampered copies of them.

use serde_json::Value;
use tidings_core::auth::signer::{self, SigningKey};
use tidings_core::auth::sns::{CertUrl, CertificateCache, SnsCertificate};
use tidings_core::auth::{NonceCheck, ReplayGuard, SourceAuth, VerifyContext};
use tidings_core::{Headers, ProviderId, Rejection, Timestamp, Transport, Webhook, WebhookError};

fn vector(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&vector(name)).unwrap()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

fn verify(
    provider: ProviderId,
    body: &[u8],
    headers: &Headers,
    auth: &SourceAuth,
    now: Timestamp,
) -> Result<(), WebhookError> {
    let certificates = sns_certificates();
    let webhook = Webhook::http(body, headers);
    provider.provider().verify(&webhook, auth, &VerifyContext { now, certificates: &certificates }).map(|_| ())
}

// ---------------------------------------------------------------- SNS

const SNS_MESSAGES: [&str; 3] = [
    "sns_real_signed_v1_sha1.json",
    "sns_real_signed_v2_sha256.json",
    "sns_real_signed_v1_with_message_attributes.json",
];

/// The two real certificates, keyed by the URLs the messages name, as the pipeline's cache holds
/// them after fetching.
fn sns_certificates() -> CertificateCache {
    let cache = CertificateCache::new();
    for (region, name) in [
        ("us-east-2", "SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"),
        ("us-west-2", "SimpleNotificationService-56e67fcb41f6fec09b0196692625d385.pem"),
    ] {
        let pem = vector(&format!("sns_cert_{name}"));
        let url = CertUrl::parse(&format!("https://sns.{region}.amazonaws.com/{name}")).unwrap();
        cache.insert(url, SnsCertificate::from_pem(pem.as_bytes()).unwrap());
    }
    cache
}

fn topic_of(message: &Value) -> SourceAuth {
    SourceAuth { allowed_topics: vec![message["TopicArn"].as_str().unwrap().to_owned()], ..SourceAuth::default() }
}

fn verify_sns(message: &Value, auth: &SourceAuth) -> Result<(), WebhookError> {
    let body = serde_json::to_vec(message).unwrap();
    verify(ProviderId::Ses, &body, &Headers::new(), auth, at(1_700_000_000))
}

#[test]
fn real_aws_signed_sns_messages_verify_v1_and_v2() {
    for name in SNS_MESSAGES {
        let message = json(name);
        // Verify the exact bytes as published, too (whitespace and key order as AWS sent them).
        let raw = vector(name);
        let certificates = sns_certificates();
        let headers = Headers::new();
        let webhook = Webhook::http(raw.as_bytes(), &headers);
        let ctx = VerifyContext { now: at(1_700_000_000), certificates: &certificates };
        ProviderId::Ses
            .provider()
            .verify(&webhook, &topic_of(&message), &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn changing_any_signed_sns_field_breaks_the_signature() {
    for name in SNS_MESSAGES {
        let original = json(name);
        for field in ["Message", "MessageId", "Timestamp", "Type"] {
            let mut message = original.clone();
            let value = message[field].as_str().unwrap().to_owned();
            let changed = if field == "Type" { "SubscriptionConfirmation".to_owned() } else { format!("{value}x") };
            message[field] = Value::String(changed);
            let err = verify_sns(&message, &topic_of(&original)).unwrap_err();
            assert_eq!(err.kind, Rejection::Unauthenticated, "{name}: {field} changed: {err}");
        }
        // Subject is signed when present: adding one must break the signature.
        let mut message = original.clone();
        message["Subject"] = Value::String("injected".into());
        assert!(verify_sns(&message, &topic_of(&original)).is_err(), "{name}: added Subject");
        // One flipped bit in the signature.
        let mut message = original.clone();
        let signature = message["Signature"].as_str().unwrap().to_owned();
        let flipped =
            if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
        message["Signature"] = Value::String(flipped);
        assert!(verify_sns(&message, &topic_of(&original)).is_err(), "{name}: signature bit flipped");
        // The same signature under the other algorithm.
        let mut message = original.clone();
        let other = if message["SignatureVersion"] == "1" { "2" } else { "1" };
        message["SignatureVersion"] = Value::String(other.into());
        assert!(verify_sns(&message, &topic_of(&original)).is_err(), "{name}: SignatureVersion swapped");
    }
}

#[test]
fn a_changed_topic_is_caught_by_the_signature_even_if_allow_listed() {
    let mut message = json("sns_real_signed_v2_sha256.json");
    message["TopicArn"] = Value::String("arn:aws:sns:us-east-2:999999999999:attacker".into());
    let err = verify_sns(&message, &topic_of(&message)).unwrap_err();
    assert_eq!(err.kind, Rejection::Unauthenticated);
}

#[test]
fn a_certificate_for_another_message_does_not_verify() {
    // Point the v1 message at the other (real, cached) certificate.
    let mut message = json("sns_real_signed_v1_sha1.json");
    message["SigningCertURL"] = Value::String(
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-56e67fcb41f6fec09b0196692625d385.pem".into(),
    );
    let err = verify_sns(&message, &topic_of(&message)).unwrap_err();
    assert!(err.to_string().contains("Signature does not match"), "{err}");
}

#[test]
fn spoofed_certificate_urls_are_refused_before_any_fetch() {
    let original = json("sns_real_signed_v1_sha1.json");
    for url in [
        "http://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
        "https://sns.us-east-2.amazonaws.com.evil.example/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
        "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.txt",
        "https://evil.example/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
        "https://sns.us-east-2.amazonaws.com@evil.example/SimpleNotificationService.pem",
    ] {
        let mut message = original.clone();
        message["SigningCertURL"] = Value::String(url.into());
        let err = verify_sns(&message, &topic_of(&original)).unwrap_err();
        assert!(err.to_string().contains("SigningCertURL"), "{url}: {err}");
    }
}

#[test]
fn topics_must_be_allow_listed_over_http() {
    let message = json("sns_real_signed_v2_sha256.json");
    let other = SourceAuth {
        allowed_topics: vec!["arn:aws:sns:us-east-2:295079676684:another".into()],
        ..SourceAuth::default()
    };
    let err = verify_sns(&message, &other).unwrap_err();
    assert_eq!((err.kind, err.status()), (Rejection::Forbidden, 403));
    assert!(err.to_string().contains("not on this source's topic allow-list"));
    // No allow-list at all refuses everything over HTTP: any AWS account can get SNS to sign.
    assert_eq!(verify_sns(&message, &SourceAuth::default()).unwrap_err().kind, Rejection::Forbidden);
}

#[test]
fn unsigned_ses_records_are_refused_over_http_and_accepted_from_a_queue() {
    let record = br#"{"eventType":"Send","mail":{"messageId":"m","destination":["a@example.com"]},"send":{}}"#;
    let mut headers = Headers::new();
    headers.insert("x-amz-sns-rawdelivery", "true");
    let err = verify(ProviderId::Ses, record, &headers, &SourceAuth::default(), at(1_700_000_000)).unwrap_err();
    assert_eq!(err.status(), 403);
    assert!(err.to_string().contains("raw message delivery"), "{err}");

    let certificates = CertificateCache::new();
    let queued = Webhook { body: record, headers: &headers, query: None, transport: Transport::Queue };
    let ctx = VerifyContext { now: at(1_700_000_000), certificates: &certificates };
    assert!(ProviderId::Ses.provider().verify(&queued, &SourceAuth::default(), &ctx).is_ok());
}

#[test]
fn certificates_must_be_rsa_and_issued_to_sns() {
    assert!(SnsCertificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    assert!(SnsCertificate::from_pem(b"not pem").is_err());
}

// ---------------------------------------------------------------- SendGrid

fn sendgrid(body: &str, signature: &str, timestamp: &str, key: &str, now: i64) -> Result<(), WebhookError> {
    let mut headers = Headers::new();
    headers.insert("X-Twilio-Email-Event-Webhook-Signature", signature);
    headers.insert("X-Twilio-Email-Event-Webhook-Timestamp", timestamp);
    verify(ProviderId::Sendgrid, body.as_bytes(), &headers, &SourceAuth::with_secret(key), at(now))
}

#[test]
fn sendgrid_official_vector_verifies_and_its_negative_cases_fail() {
    let v = json("sg_signature_test_vector_official.json");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let (body, sig, ts, key) = (
        s("raw_body"),
        s("header_X-Twilio-Email-Event-Webhook-Signature"),
        s("header_X-Twilio-Email-Event-Webhook-Timestamp"),
        s("public_key_base64_der_spki"),
    );
    let now: i64 = ts.parse().unwrap();
    sendgrid(&body, &sig, &ts, &key, now + 60).unwrap();
    assert!(sendgrid(&body, &sig, &ts, &s("bad_public_key_must_fail"), now).is_err(), "wrong key");
    assert!(sendgrid(&body, &sig, &s("bad_timestamp_must_fail"), &key, now).is_err(), "wrong timestamp");
    assert!(sendgrid(&body.replace("test_event", "test_evenT"), &sig, &ts, &key, now).is_err(), "tampered body");
    let stale = sendgrid(&body, &sig, &ts, &key, now + 2 * 86_400).unwrap_err();
    assert!(stale.to_string().contains("tolerance"), "{stale}");
    let missing =
        verify(ProviderId::Sendgrid, body.as_bytes(), &Headers::new(), &SourceAuth::with_secret(key), at(now));
    assert!(missing.unwrap_err().to_string().contains("missing header X-Twilio-Email-Event-Webhook-Signature"));
}

// ---------------------------------------------------------------- Standard Webhooks / Resend

fn svix_headers(v: &Value, signature: &str, timestamp: &str) -> Headers {
    let mut headers = Headers::new();
    headers.insert("svix-id", v["svix-id"].as_str().unwrap());
    headers.insert("svix-timestamp", timestamp);
    headers.insert("svix-signature", signature);
    headers
}

#[test]
fn standard_webhooks_vector_verifies_with_rotation_and_tolerance() {
    let v = json("svix_standard_webhooks_test_vector.json");
    let body = v["raw_body"].as_str().unwrap();
    let ts = v["svix-timestamp"].as_str().unwrap();
    let sig = v["svix-signature"].as_str().unwrap();
    let auth = SourceAuth::with_secret(v["secret"].as_str().unwrap());
    let now: i64 = ts.parse().unwrap();
    verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, sig, ts), &auth, at(now)).unwrap();
    // Several signatures during the sender's rotation: any one match is enough.
    let rotated = format!("v1,Zm9yZ2VkIHNpZ25hdHVyZSBmcm9tIGFuIG9sZCBrZXk= {sig}");
    verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, &rotated, ts), &auth, at(now)).unwrap();
    // Our own rotation: the old secret still verifies beside a new one.
    let both = SourceAuth {
        secrets: vec![tidings_core::auth::Secret::new("whsec_bmV3"), auth.secrets[0].clone()],
        ..auth.clone()
    };
    verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, sig, ts), &both, at(now)).unwrap();

    let tampered = verify(ProviderId::Resend, br#"{"test": 2432232315}"#, &svix_headers(&v, sig, ts), &auth, at(now));
    assert_eq!(tampered.unwrap_err().status(), 401);
    let late =
        verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, sig, ts), &auth, at(now + 301)).unwrap_err();
    assert!(late.to_string().contains("outside the 300 s tolerance"), "{late}");
    let early = verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, sig, ts), &auth, at(now - 301));
    assert!(early.is_err(), "a timestamp from the future is refused too");
    let wrong = SourceAuth::with_secret("whsec_d3Jvbmcgc2VjcmV0");
    assert!(verify(ProviderId::Resend, body.as_bytes(), &svix_headers(&v, sig, ts), &wrong, at(now)).is_err());
}

// ---------------------------------------------------------------- Twilio

/// Verifies a Twilio request made to `called` (the URL Twilio requested, query included) on a
/// source whose public URL is `called` without its query.
fn twilio(called: &str, body: &str, signature: &str) -> Result<(), WebhookError> {
    let (public_url, query) = called.split_once('?').map_or((called, None), |(url, q)| (url, Some(q)));
    let mut headers = Headers::new();
    headers.insert("X-Twilio-Signature", signature);
    let auth = SourceAuth { public_url: Some(public_url.into()), ..SourceAuth::with_secret("12345") };
    let certificates = sns_certificates();
    let webhook = Webhook { body: body.as_bytes(), headers: &headers, query, transport: Transport::Http };
    let ctx = VerifyContext { now: at(1_700_000_000), certificates: &certificates };
    ProviderId::Twilio.provider().verify(&webhook, &auth, &ctx).map(|_| ())
}

#[test]
fn twilio_official_vectors_verify_over_the_url_as_called() {
    let v = json("twilio_signature_test_vector_official.json");
    let params = v["params"].as_object().unwrap();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())))
        .finish();
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    twilio(&s("url"), &body, &s("X-Twilio-Signature")).unwrap();
    twilio(&s("mixed_case_host_url"), &body, &s("mixed_case_host_signature")).unwrap();
    twilio(&s("with_port_url"), &body, &s("with_port_signature")).unwrap();
    // The host is signed as configured (its case matters), and so is a port other than the
    // scheme's default.
    assert!(twilio(&s("mixed_case_host_url"), &body, &s("X-Twilio-Signature")).is_err());
    assert!(twilio(&s("url"), &body, &s("with_port_signature")).is_err());
    // A changed parameter, or a changed query, breaks it.
    assert!(twilio(&s("url"), &body.replace("1234", "1235"), &s("X-Twilio-Signature")).is_err());
    assert!(twilio(&s("url").replace("bar=2", "bar=3"), &body, &s("X-Twilio-Signature")).is_err());
    assert!(twilio(&s("url").replace("?foo=1&bar=2", ""), &body, &s("X-Twilio-Signature")).is_err());
}

#[test]
fn twilio_json_bodies_are_bound_by_their_hash_in_the_signed_url() {
    let v = json("twilio_signature_test_vector_official.json");
    let body = v["json_body_example"].as_str().unwrap();
    let hash = tidings_core::auth::twilio::body_sha256(body.as_bytes());
    assert_eq!(hash, v["json_body_sha256_hex (sent as bodySHA256 query param)"].as_str().unwrap());
    let called = format!("https://mycompany.com/myapp.php?bodySHA256={hash}");
    let signature = tidings_core::auth::twilio::sign("12345", &called, &[]);
    twilio(&called, body, &signature).unwrap();
    // The body is not a signed parameter, but its hash is: another body is refused.
    assert!(twilio(&called, &body.replace("true", "false"), &signature).is_err());
}

// ---------------------------------------------------------------- Mailgun

#[test]
fn mailgun_tokens_are_single_use_per_body_and_old_timestamps_fail() {
    let key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    let body =
        br#"{"event-data":{"event":"delivered","id":"abc","timestamp":1700000000.5,"recipient":"a@example.com"}}"#;
    let now = at(1_700_000_000);
    let mut headers = Headers::new();
    let signed =
        signer::sign(ProviderId::Mailgun, body, &mut headers, &SigningKey { secret: key, public_url: None }, now)
            .unwrap();
    let certificates = CertificateCache::new();
    let ctx = VerifyContext { now, certificates: &certificates };
    let auth = SourceAuth::with_secret(key);
    let check = |bytes: &[u8]| ProviderId::Mailgun.provider().verify(&Webhook::http(bytes, &headers), &auth, &ctx);

    let guard = ReplayGuard::new();
    let claim = check(&signed).unwrap().replay_claim.unwrap();
    assert_eq!(guard.check(&claim, now), NonceCheck::Fresh);
    assert_eq!(guard.check(&claim, now), NonceCheck::SameRequest, "Mailgun retrying the same request");
    // The signature covers only timestamp+token: a forged event-data under a captured token
    // verifies, and only the token claim stops it.
    let forged = String::from_utf8(signed.clone()).unwrap().replace("delivered", "complained");
    let forged_claim = check(forged.as_bytes()).unwrap().replay_claim.unwrap();
    assert!(guard.claim(&forged_claim, now).is_err());

    let wrong_key = SourceAuth::with_secret("key-other");
    let wrong = ProviderId::Mailgun.provider().verify(&Webhook::http(&signed, &headers), &wrong_key, &ctx);
    assert_eq!(wrong.unwrap_err().status(), 401);
    let late = VerifyContext { now: at(1_700_000_000 + 10 * 3600), certificates: &certificates };
    assert!(ProviderId::Mailgun.provider().verify(&Webhook::http(&signed, &headers), &auth, &late).is_err());
}

// ---------------------------------------------------------------- MailerSend

#[test]
fn mailersend_signatures_match_the_official_sdk_vector_and_the_published_ping_secret() {
    let v = json("mailersend_signature_test_vector_official.json");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let check = |body: &str, signature: &str, secret: &str| {
        let headers: Headers = [("Signature", signature)].into_iter().collect();
        verify(ProviderId::Mailersend, body.as_bytes(), &headers, &SourceAuth::with_secret(secret), at(1_700_000_000))
    };
    check(&s("body"), &s("Signature"), &s("secret")).unwrap();
    assert!(check(&s("body").replacen("sent", "sEnt", 1), &s("Signature"), &s("secret")).is_err());
    // MailerSend's save-time ping is signed with its published secret, not the webhook's: it
    // passes for any source, and only a ping does.
    check(&s("ping_body"), &s("ping_signature"), "another-webhook-signing-secret").unwrap();
    let forged = tidings_core::auth::sign_body_hmac_hex(&s("ping_secret"), s("body").as_bytes());
    assert!(check(&s("body"), &forged, "another-webhook-signing-secret").is_err());
}

// ---------------------------------------------------------------- Telnyx

/// Telnyx publishes no fixed-key vector (its SDKs' tests generate a key pair per run). This one
/// was computed with pyca/cryptography from RFC 8032's first test key, over `timestamp|body`, as
/// Telnyx's verifiers read it; Ed25519 is deterministic, so it reproduces exactly.
#[test]
fn telnyx_signatures_verify_under_the_public_key_within_five_minutes() {
    let public_key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let body = r#"{"data":{"event_type":"message.finalized","id":"4ee8c3a6-4995-4309-a3c6-38e3db9ea4be","occurred_at":"2025-11-28T06:00:04.917+00:00","payload":{"id":"40317f3b-5a7a-4c3e-8b5a-1f2d3c4b5a69","to":[{"phone_number":"+14155550142","status":"delivered"}]},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://hooks.example.com/webhooks/telnyx"}}"#;
    let signature = "H7HwYljzlVBIBHOdS7eBQ19sD4pimwdIIJyhgdrhZtvSWhv99LgGVj4QHvogGkUTnIQImqpiMawNLfqjrx1IAg==";
    let check = |body: &str, timestamp: &str, now: i64| {
        let headers: Headers =
            [("telnyx-signature-ed25519", signature), ("telnyx-timestamp", timestamp)].into_iter().collect();
        verify(ProviderId::Telnyx, body.as_bytes(), &headers, &SourceAuth::with_secret(public_key), at(now))
    };
    check(body, "1764309600", 1_764_309_600 + 299).unwrap();
    assert!(check(body, "1764309600", 1_764_309_600 + 301).unwrap_err().to_string().contains("tolerance"));
    assert!(check(body, "1764309601", 1_764_309_600).is_err(), "the timestamp is signed");
    assert!(check(&body.replace("delivered\"}", "delivery_failed\"}"), "1764309600", 1_764_309_600).is_err());
}

// ---------------------------------------------------------------- Plivo

#[test]
fn plivo_v3_signatures_match_plivos_published_vectors() {
    let v = json("plivo_signature_v3_test_vector_official.json");
    let params = v["params"].as_object().unwrap();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap())))
        .finish();
    let nonce = v["nonce"].as_str().unwrap();
    let check = |case: &str, body: &str, nonce: &str| {
        let uri = v[case]["uri"].as_str().unwrap();
        let (url, query) = uri.split_once('?').map_or((uri, None), |(u, q)| (u, Some(q)));
        let signature = v[case]["X-Plivo-Signature-V3"].as_str().unwrap();
        // Several active auth tokens: Plivo lists one signature per token.
        let listed = format!("c29tZSBvdGhlciB0b2tlbg==,{signature}");
        let headers: Headers =
            [("X-Plivo-Signature-V3", listed.as_str()), ("X-Plivo-Signature-V3-Nonce", nonce)].into_iter().collect();
        let mut auth = SourceAuth::with_secret(v["auth_token"].as_str().unwrap());
        auth.public_url = Some(url.to_owned());
        let webhook = Webhook { body: body.as_bytes(), headers: &headers, query, transport: Transport::Http };
        let certificates = CertificateCache::new();
        ProviderId::Plivo
            .provider()
            .verify(&webhook, &auth, &VerifyContext { now: at(1_700_000_000), certificates: &certificates })
            .map(|_| ())
    };
    check("post_with_query", &body, nonce).unwrap();
    check("post", &body, nonce).unwrap();
    assert!(check("post", &body, "31627761595286130199").is_err(), "the nonce is signed");
    assert!(check("post", &body.replace("StartApp", "StopApp"), nonce).is_err(), "every parameter is signed");
}

// ---------------------------------------------------------------- Mailtrap

/// The fixture every official Mailtrap SDK shares (mailtrap-python
/// `tests/unit/test_webhook_signature.py`, MIT).
#[test]
fn mailtrap_signatures_match_the_fixture_mailtraps_sdks_share() {
    let secret = "8d9a3c0e7f5b2d4a6c1e9f8b3a7d5c2e";
    let body = r#"{"event":"delivery","sending_stream":"transactional","category":"welcome","message_id":"a8b1d8f6-1f8d-4a3c-9b2e-1a2b3c4d5e6f","email":"recipient@example.com","event_id":"f1e2d3c4-b5a6-7890-1234-567890abcdef","timestamp":1716070000}"#;
    let signature = "6d262e2611cd09be1f948382b5c611d63b0e585c4c9c5e40139d6ac3876d5433";
    let check = |body: &str, secret: &str| {
        let headers: Headers = [("Mailtrap-Signature", signature)].into_iter().collect();
        verify(ProviderId::Mailtrap, body.as_bytes(), &headers, &SourceAuth::with_secret(secret), at(1_716_070_000))
    };
    check(body, secret).unwrap();
    assert!(check(body, "8d9a3c0e7f5b2d4a6c1e9f8b3a7d5c2f").is_err());
    assert!(check(&body.replace("welcome", "Welcome"), secret).is_err());
}

// ---------------------------------------------------------------- Mandrill

#[test]
fn mandrill_signatures_match_a_real_batch_and_the_url_check_is_accepted_under_its_fixed_key() {
    let v = json("mandrill_signature_test_vector.json");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let check = |url: &str, events: &str, signature: &str, key: &str| {
        let body: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("mandrill_events", events).finish();
        let headers: Headers = [("X-Mandrill-Signature", signature)].into_iter().collect();
        // The configured URL, and the query string as the request carries it.
        let (public, query) = url.split_once('?').map_or((url, None), |(u, q)| (u, Some(q)));
        let mut auth = SourceAuth::with_secret(key);
        auth.public_url = Some(public.to_owned());
        let webhook = Webhook { body: body.as_bytes(), headers: &headers, query, transport: Transport::Http };
        let certificates = CertificateCache::new();
        ProviderId::Mandrill
            .provider()
            .verify(&webhook, &auth, &VerifyContext { now: at(1_700_000_000), certificates: &certificates })
            .map(|_| ())
    };
    let (url, events, signature, key) = (s("url"), s("mandrill_events"), s("X-Mandrill-Signature"), s("key"));
    check(&url, &events, &signature, &key).unwrap();
    assert!(check(&s("other_url"), &events, &signature, &key).is_err(), "the URL is signed");
    assert!(check(&url, &events.replacen("send", "sent", 1), &signature, &key).is_err());
    // Mandrill's URL check: an empty batch signed with `test-webhook`, whatever the webhook's key.
    let ping = tidings_core::auth::twilio::sign("test-webhook", &url, &[("mandrill_events", "[]")]);
    check(&url, "[]", &ping, &key).unwrap();
    let forged = tidings_core::auth::twilio::sign("test-webhook", &url, &[("mandrill_events", &events)]);
    assert!(check(&url, &events, &forged, &key).is_err(), "only an empty batch passes under the fixed key");
}

// ---------------------------------------------------------------- Sinch

/// Sinch's SDKs' vector (sinch-sdk-node `callbacks-webhook.test.ts`, the same in
/// sinch-sdk-java `SinchEventsServiceTest`; Apache-2.0).
#[test]
fn sinch_signatures_match_sinchs_sdk_vector_and_unsigned_callbacks_need_the_shared_secret() {
    let body = r#"{"at":"2025-01-13T09:22:40.914Z","batch_id":"01JHFFHQ0P99JPPNQPJDV7JTBP","client_reference":"a client reference","code":0,"operator_status_at":"2025-01-13T09:22:00Z","recipient":"33662162466","status":"Delivered","type":"recipient_delivery_report_sms"}"#;
    let check = |body: &str, timestamp: &str, extra: &[(&str, &str)], now: i64| {
        let mut headers: Headers = [
            ("x-sinch-webhook-signature", "ZoHei66PPN/kZjw7hFVfGhJOnml3iGNCMWoyQVcE5o0="),
            ("x-sinch-webhook-signature-nonce", "01JHFFHWYY7HSS4FWTMDTQEK8V"),
            ("x-sinch-webhook-signature-timestamp", timestamp),
            ("x-sinch-webhook-signature-algorithm", "HmacSHA256"),
        ]
        .into_iter()
        .collect();
        for (name, value) in extra {
            headers.set(name, *value);
        }
        verify(ProviderId::Sinch, body.as_bytes(), &headers, &SourceAuth::with_secret("SMSWebhooksSecret"), at(now))
    };
    check(body, "1736760161", &[], 1_736_760_161).unwrap();
    assert!(check(body, "1736760162", &[], 1_736_760_161).is_err(), "the timestamp is signed");
    assert!(check(&body.replace("Delivered", "Failed"), "1736760161", &[], 1_736_760_161).is_err());
    assert!(check(body, "1736760161", &[], 1_736_760_161 + 2 * 86_400).unwrap_err().to_string().contains("tolerance"));
    let other = [("x-sinch-webhook-signature-algorithm", "HmacSHA1")];
    assert!(check(body, "1736760161", &other, 1_736_760_161).is_err());
    // Unsigned, the secret must come back as basic auth or a token.
    let headers = Headers::new();
    let auth = SourceAuth::with_secret("SMSWebhooksSecret");
    assert!(verify(ProviderId::Sinch, body.as_bytes(), &headers, &auth, at(1_736_760_161)).is_err());
    let basic: Headers = [("Authorization", "Basic dGlkaW5nczpTTVNXZWJob29rc1NlY3JldA==")].into_iter().collect();
    verify(ProviderId::Sinch, body.as_bytes(), &basic, &auth, at(1_736_760_161)).unwrap();
}

// ---------------------------------------------------------------- Postal

#[test]
fn postal_signatures_made_by_openssl_verify_under_the_key_as_spki_or_jwk_and_sha1_only_alone() {
    let v = json("postal_signature_openssl.json");
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let body = s("body");
    let jwk = v["public_key_jwk"].to_string();
    let check = |body: &str, headers: &[(&str, String)], key: &str| {
        let headers: Headers = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        verify(ProviderId::Postal, body.as_bytes(), &headers, &SourceAuth::with_secret(key), at(1_700_000_000))
    };
    let sha256 = [("X-Postal-Signature-256", s("X-Postal-Signature-256"))];
    let sha1 = [("X-Postal-Signature", s("X-Postal-Signature"))];
    for key in [s("public_key_spki"), format!("p={}", s("public_key_spki")), jwk] {
        check(&body, &sha256, &key).unwrap();
        check(&body, &sha1, &key).unwrap();
        assert!(check(&body.replace("Sent", "Held"), &sha256, &key).is_err());
    }
    // Where Postal sends both, the SHA-256 signature is the one checked.
    let both = [("X-Postal-Signature-256", s("X-Postal-Signature")), ("X-Postal-Signature", s("X-Postal-Signature"))];
    assert!(check(&body, &both, &s("public_key_spki")).is_err());
}

// ---------------------------------------------------------------- Unisender Go

#[test]
fn unisender_signatures_match_a_real_webhook_byte_for_byte() {
    let v = json("unisender_go_signature_real.json");
    let body = v["body"].as_str().unwrap();
    let key = v["api_key"].as_str().unwrap();
    let check = |body: &str, key: &str| {
        verify(
            ProviderId::Unisender,
            body.as_bytes(),
            &Headers::new(),
            &SourceAuth::with_secret(key),
            at(1_700_000_000),
        )
    };
    check(body, key).unwrap();
    assert!(check(body, "6mjstx9gwi7qj8eni6m77hfiiw6aifmss154y4zf").is_err());
    // The digest is over the bytes as sent: `\/` written as `/` is another body.
    assert!(check(&body.replace(r"\/", "/"), key).is_err());
    assert!(check(&body.replace("clicked", "opened"), key).is_err());
}

// ---------------------------------------------------------------- Bird (MessageBird)

#[test]
fn messagebird_signature_jwts_are_judged_as_messagebirds_reference_cases_say() {
    let v = json("messagebird_signature_jwt_reference.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 44);
    for case in cases {
        let s = |k: &str| case[k].as_str().unwrap_or_default().to_owned();
        let now = time::OffsetDateTime::parse(&s("timestamp"), &time::format_description::well_known::Rfc3339).unwrap();
        let secret = tidings_core::auth::Secret::new(s("secret"));
        let got = tidings_core::auth::bird::verify_jwt(
            ProviderId::Bird,
            &s("token"),
            &s("url"),
            s("payload").as_bytes(),
            &[&secret],
            at(now.unix_timestamp()),
        );
        let valid = case["valid"].as_bool().unwrap();
        assert_eq!(got.is_ok(), valid, "{}: {got:?} (reference: {})", s("name"), s("reason"));
    }
}

#[test]
fn bird_channels_signatures_cover_the_timestamp_url_and_body() {
    let key = "bird-signing-key-0123456789";
    let url = "https://hooks.example.com/webhooks/bird/src_1";
    let body = br#"{"service":"channels","event":"sms.outbound","payload":{"id":"m1","status":"sent"}}"#;
    let signature = tidings_core::auth::bird::sign(key, "1764309600", url, body);
    let check = |body: &[u8], timestamp: &str, url: &str| {
        let headers: Headers =
            [("messagebird-signature", signature.as_str()), ("messagebird-request-timestamp", timestamp)]
                .into_iter()
                .collect();
        let mut auth = SourceAuth::with_secret(key);
        auth.public_url = Some(url.to_owned());
        verify(ProviderId::Bird, body, &headers, &auth, at(1_764_309_600))
    };
    check(body, "1764309600", url).unwrap();
    assert!(check(body, "1764309601", url).is_err());
    assert!(check(body, "1764309600", "https://hooks.example.com/webhooks/bird/src_2").is_err());
    assert!(check(&body[..body.len() - 1], "1764309600", url).is_err());
}
