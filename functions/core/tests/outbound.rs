//! What subscribers receive: Standard Webhooks signatures that the official verifier (the
//! `standardwebhooks` package from PyPI, which `./scripts/test.sh` installs) accepts, also
//! across a secret rotation; and Dittofeed `track` calls carrying Dittofeed's own tags.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tidings_core::outbound;
use tidings_core::subscription::{AnonymousId, Format, SigningSecret, Subscription};
use tidings_core::{CanonicalEvent, ProviderId, Timestamp};

fn subscription(secrets: &[&str]) -> Subscription {
    let t0 = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    Subscription {
        id: "sub_test".into(),
        workspace: "ws_default".into(),
        url: "https://hooks.example.com/tidings".into(),
        types: vec!["*".into()],
        providers: vec![],
        sources: vec![],
        filter: None,
        format: Format::Cloudevents,
        anonymous_id: Default::default(),
        secrets: secrets
            .iter()
            .map(|s| SigningSecret { secret: (*s).into(), created_at: t0, expires_at: None })
            .collect(),
        headers: vec![],
        description: String::new(),
        enabled: true,
        version: 0,
        disabled_reason: None,
        failing_since: None,
        pacing: Default::default(),
        circuit: Default::default(),
        created_at: t0,
    }
}

fn sample_events() -> Vec<CanonicalEvent> {
    common::samples()
        .iter()
        .filter_map(|s| common::run_sample(s).ok())
        .flat_map(|n| n.events.into_iter().map(|e| e.event))
        .collect()
}

/// One delivery to check: the subscriber's secret, the body, the headers it came with.
type Case = (String, Vec<u8>, Vec<(String, String)>);

/// Asks the official verifier, once for all cases, which verify.
fn python_verifies(cases: &[Case]) -> Vec<bool> {
    let python = std::env::var("TIDINGS_PYTHON").unwrap_or_else(|_| {
        panic!("TIDINGS_PYTHON is not set: run ./scripts/test.sh, which installs the standardwebhooks package")
    });
    let script = r#"
import json, sys
from standardwebhooks import Webhook
results = []
for case in json.load(sys.stdin):
    try:
        Webhook(case["secret"]).verify(case["body"], case["headers"])
        results.append(True)
    except Exception:
        results.append(False)
print(json.dumps(results))
"#;
    let input: Vec<Value> = cases
        .iter()
        .map(|(secret, body, headers)| {
            let headers: serde_json::Map<String, Value> = headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({"secret": secret, "body": String::from_utf8(body.clone()).unwrap(), "headers": headers})
        })
        .collect();
    let mut child =
        Command::new(python).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_official_verifier_accepts_every_delivery_also_during_rotation() {
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_dGlkaW5ncy1yb3RhdGVkLXNlY3JldA==";
    let now = Timestamp::now();
    let single = subscription(&[old]);
    let mut rotating = subscription(&[old]);
    rotating.rotate(new.into(), now, 3600);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for event in sample_events().iter().take(60) {
        let body = outbound::body(event, &single).unwrap();
        let headers = outbound::signed_headers(&single, event, &body, now).unwrap();
        cases.push((old.to_owned(), body.clone(), headers.clone()));
        expected.push(true);
        // During rotation both secrets sign: a subscriber holding either one accepts.
        let both = outbound::signed_headers(&rotating, event, &body, now).unwrap();
        cases.push((old.to_owned(), body.clone(), both.clone()));
        cases.push((new.to_owned(), body.clone(), both));
        expected.extend([true, true]);
        // And a changed body, or the wrong secret, is refused.
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        cases.push((old.to_owned(), tampered, headers.clone()));
        cases.push((new.to_owned(), body, headers));
        expected.extend([false, false]);
    }
    assert_eq!(python_verifies(&cases), expected);
}

#[test]
fn webhook_id_is_the_event_id_so_retries_can_be_deduplicated() {
    let event = &sample_events()[0];
    let body = outbound::body(event, &subscription(&["whsec_dGVzdA=="])).unwrap();
    let a = outbound::signed_headers(&subscription(&["whsec_dGVzdA=="]), event, &body, Timestamp::now()).unwrap();
    assert_eq!(a[0], ("webhook-id".to_owned(), event.id.to_string()));
    let expired = {
        let mut s = subscription(&["whsec_dGVzdA=="]);
        s.secrets[0].expires_at = Some(Timestamp::from_unix_seconds(1).unwrap());
        s
    };
    assert!(
        outbound::signed_headers(&expired, event, &body, Timestamp::now()).is_err(),
        "no active secret, no delivery"
    );
}

fn event_of(provider: ProviderId, name: &str) -> CanonicalEvent {
    let sample = common::samples().into_iter().find(|s| s.provider == provider && s.name == name).unwrap();
    common::run_sample(&sample).unwrap().events.remove(0).event
}

#[test]
fn canonical_events_are_sent_as_structured_cloudevents() {
    let event = &sample_events()[0];
    let sub = subscription(&["whsec_dGVzdA=="]);
    let headers = outbound::signed_headers(&sub, event, b"{}", Timestamp::now()).unwrap();
    let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/cloudevents+json; charset=utf-8"));
    let mut dittofeed = sub.clone();
    dittofeed.format = Format::Dittofeed;
    let headers = outbound::signed_headers(&dittofeed, event, b"{}", Timestamp::now()).unwrap();
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
}

fn track(event: &CanonicalEvent) -> Value {
    outbound::dittofeed_track(event, AnonymousId::None).unwrap()
}

#[test]
fn dittofeed_calls_use_its_event_names_users_and_metadata() {
    let mut event = event_of(ProviderId::Sendgrid, "bounce");
    event.data.tags.insert("runId".into(), "run_3".into());
    event.data.tags.insert("broadcastId".into(), "b_9".into());
    event.data.tags.insert("channel".into(), "Email".into());
    let bounce = track(&event);
    assert_eq!(bounce["event"], "DFEmailBounced");
    assert_eq!(bounce["userId"], "user_7", "the userId tag Dittofeed set at send time");
    assert!(bounce.get("anonymousId").is_none());
    let properties = &bounce["properties"];
    assert_eq!(properties["journeyId"], "j_12");
    assert_eq!(properties["runId"], "run_3", "Dittofeed counts a journey's message by its run");
    assert_eq!(properties["broadcastId"], "b_9", "and a broadcast's by its id");
    assert_eq!(properties["email"], "nobody@example.com", "Dittofeed's handlers set the address");
    assert!(properties.get("channel").is_none(), "Dittofeed's handlers forward only its metadata fields");
    assert_eq!(properties["bounceKind"], "hard");
    assert!(bounce["messageId"].as_str().unwrap().starts_with("evt_"), "tidings' id is Dittofeed's idempotency key");

    let spam = track(&with_user(event_of(ProviderId::Ses, "complaint")));
    assert_eq!(spam["event"], "DFEmailMarkedSpam");
    let deferred = track(&with_user(event_of(ProviderId::Ses, "delivery-delay")));
    assert_eq!(deferred["event"], "email.deferred", "no Dittofeed name: the canonical type");
}

fn with_user(mut event: CanonicalEvent) -> CanonicalEvent {
    event.data.tags.insert("userId".into(), "user_1".into());
    event
}

#[test]
fn dittofeed_events_without_a_user_are_skipped_unless_the_recipient_is_asked_for() {
    let sms = event_of(ProviderId::Twilio, "delivered");
    assert!(!sms.data.tags.contains_key("userId"));
    assert!(outbound::dittofeed_track(&sms, AnonymousId::None).is_err(), "Dittofeed's handlers skip it");
    let anonymous = outbound::dittofeed_track(&sms, AnonymousId::Recipient).unwrap();
    assert_eq!(anonymous["event"], "DFSmsDelivered");
    assert_eq!(anonymous["anonymousId"], "+15558675310");
    assert!(anonymous.get("userId").is_none());

    let mut dittofeed = subscription(&["whsec_dGVzdA=="]);
    dittofeed.format = Format::Dittofeed;
    assert!(outbound::body(&sms, &dittofeed).is_err());
    dittofeed.anonymous_id = AnonymousId::Recipient;
    assert!(outbound::body(&sms, &dittofeed).is_ok());
}

#[test]
fn dittofeed_subscription_changes_name_the_subscription_group_or_are_not_sent() {
    let event = with_user(event_of(ProviderId::Postmark, "subscription-change-manual-suppression"));
    assert!(
        outbound::dittofeed_track(&event, AnonymousId::None).is_err(),
        "no subscription group: Dittofeed could not apply it"
    );
    let mut event = event;
    event.data.tags.insert("subscriptionGroupId".into(), "sg_news".into());
    let change = track(&event);
    assert_eq!(change["event"], "DFSubscriptionChange");
    assert_eq!(change["properties"]["subscriptionId"], "sg_news");
    assert_eq!(change["properties"]["action"], "Unsubscribe");
}

#[test]
fn dittofeed_hears_of_a_send_that_failed_for_good_as_a_message_failure() {
    let mut exhausted = with_user(event_of(ProviderId::Sendgrid, "bounce"));
    exhausted.event_type = tidings_core::EventType::parse("email.retries_exhausted").unwrap();
    exhausted.data.provider = "ses".into();
    exhausted.data.reason = Some("Throttling: rate exceeded".into());
    let call = track(&exhausted);
    assert_eq!(call["event"], "DFMessageFailure");
    assert_eq!(
        call["properties"]["variant"],
        json!({"type": "Email", "provider": {"type": "AmazonSes", "message": "Throttling: rate exceeded"}})
    );
}

#[test]
fn dittofeed_is_not_sent_test_events() {
    let mut test = with_user(event_of(ProviderId::Sendgrid, "bounce"));
    test.event_type = tidings_core::EventType::parse(outbound::TEST_EVENT_TYPE).unwrap();
    assert!(outbound::dittofeed_track(&test, AnonymousId::Recipient).is_err());
}
