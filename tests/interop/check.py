"""Checks what tidings produces with the other side's own Python code.

- every canonical-event delivery is parsed by the CloudEvents Python SDK (HTTP binding) and
  matches its body, and validates against canonical-event.schema.json (jsonschema, draft 2020-12,
  formats checked);
- every delivery verifies with the Standard Webhooks library and with svix under each secret the
  case names;
- every Dittofeed delivery is a track call Dittofeed's public API accepts (dittofeed-track.schema.json,
  written from Dittofeed's TypeBox types) and follows the attribution rules of Dittofeed's own
  provider webhook handlers;
- every normalized sample in events/*/expected/ validates against the schema.

Usage: python check.py CASES.json REPO_DIR
Prints one line per failure and a closing count; exits 1 when anything failed.
"""

import json
import pathlib
import sys

import jsonschema
import standardwebhooks
import svix.webhooks
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

# Dittofeed's InternalEventType values (packages/isomorphic-lib/src/types.ts): a "DF" name
# outside this list is one Dittofeed never reads.
DITTOFEED_EVENTS = {
    "DFInternalMessageSent", "DFBadWorkspaceConfiguration", "DFMessageFailure", "DFMessageSkipped",
    "DFSegmentBroadcast", "DFSubscriptionChange", "DFEmailDropped", "DFEmailDelivered", "DFEmailOpened",
    "DFEmailProcessed", "DFEmailClicked", "DFEmailBounced", "DFEmailMarkedSpam", "DFSmsDelivered",
    "DFSmsFailed", "DFJourneyNodeProcessed", "DFManualSegmentUpdate", "DFAttachedFiles",
    "DFUserTrackSignal", "DFGroupUserAssignment", "DFUserGroupAssignment", "DFJourneyEarlyExit",
}
# The message metadata Dittofeed's handlers forward as properties (MESSAGE_METADATA_FIELDS), and
# the subscription group its Twilio handler forwards.
DITTOFEED_METADATA = ["workspaceId", "broadcastId", "journeyId", "runId", "messageId", "userId",
                      "templateId", "nodeId", "subscriptionGroupId"]
# MessageServiceFailure variants: channel type -> provider types.
DITTOFEED_FAILURE_PROVIDERS = {
    "Email": {"SendGrid", "AmazonSes", "Resend", "PostMark", "Smtp", "MailChimp", "Gmail"},
    "Sms": {"Twilio", "SignalWire"},
}


def main():
    cases = json.loads(pathlib.Path(sys.argv[1]).read_text())
    repo = pathlib.Path(sys.argv[2])
    here = pathlib.Path(__file__).parent
    schema = json.loads((repo / "functions/core/schema/canonical-event.schema.json").read_text())
    canonical = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    track = jsonschema.Draft202012Validator(
        json.loads((here / "dittofeed-track.schema.json").read_text()),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    failures = []
    checks = 0

    def check(label, fn):
        nonlocal checks
        checks += 1
        try:
            fn()
        except Exception as error:  # every failure is reported, none stops the run
            failures.append(f"{label}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")

    for index, case in enumerate(cases):
        label = f"case {index} ({case['kind']})"
        body, headers = case["body"], case["headers"]
        for secret in case["secrets"]:
            check(f"{label}: standardwebhooks verify", lambda s=secret: standardwebhooks.Webhook(s).verify(body, headers))
            check(f"{label}: svix verify", lambda s=secret: svix.webhooks.Webhook(s).verify(body, headers))
        if case["kind"] == "cloudevents":
            check(f"{label}: cloudevents from_http", lambda: cloudevent_matches(headers, body))
            check(f"{label}: canonical schema", lambda: schema_valid(canonical, json.loads(body)))
        else:
            check(f"{label}: Dittofeed track contract", lambda: schema_valid(track, json.loads(body)))
            check(f"{label}: Dittofeed attribution", lambda: dittofeed_attribution(case))

    samples = sorted(repo.glob("events/*/expected/*.json"))
    if len(samples) < 150:
        failures.append(f"expected the full sample corpus under {repo}/events, found {len(samples)} expectations")
    for path in samples:
        for event in json.loads(path.read_text()).get("events", []):
            check(f"{path.relative_to(repo)}: canonical schema", lambda e=event: schema_valid(canonical, e))

    for line in failures[:50]:
        print(line)
    print(f"interop (Python: cloudevents, standardwebhooks, svix, jsonschema): {checks - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def schema_valid(validator, instance):
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise AssertionError(f"{where}: {error.message}")


def cloudevent_matches(headers, body):
    event = from_http_event(HTTPMessage(headers=headers, body=body.encode()))
    sent = json.loads(body)
    attributes = event.get_attributes()
    for name in ["id", "source", "type", "specversion", "subject", "datacontenttype", "workspaceid"]:
        if attributes.get(name) != sent.get(name):
            raise AssertionError(f"{name} parsed as {attributes.get(name)!r}, sent {sent.get(name)!r}")
    if event.get_data() != sent["data"]:
        raise AssertionError("data differs from the body's")


def dittofeed_attribution(case):
    call = json.loads(case["body"])
    event = case["event"]
    data = event["data"]
    tags = data.get("tags", {})
    name = call["event"]
    properties = call.get("properties", {})
    if name.startswith("DF") and name not in DITTOFEED_EVENTS:
        raise AssertionError(f"{name} is not an event Dittofeed reads")
    if event["type"] == "subscription.test":
        raise AssertionError("a test event was sent: Dittofeed would make a user of it")
    if call["messageId"] != event["id"]:
        raise AssertionError("messageId is not the event id (Dittofeed's idempotency key)")
    if "userId" in tags:
        if call.get("userId") != tags["userId"]:
            raise AssertionError("userId is not the userId tag Dittofeed set at send time")
    elif not case.get("anonymous_recipient"):
        raise AssertionError("an event without a userId tag was sent (Dittofeed's handlers skip those)")
    elif call.get("anonymousId") != data.get("recipient"):
        raise AssertionError("anonymousId is not the recipient")
    for field in DITTOFEED_METADATA:
        if field in tags and properties.get(field) != tags[field]:
            raise AssertionError(f"properties.{field} does not carry the {field} tag")
    if data.get("channel") == "email" and data.get("recipient") and properties.get("email") != data["recipient"]:
        raise AssertionError("properties.email is not the recipient")
    if name == "DFSubscriptionChange":
        if not isinstance(properties.get("subscriptionId"), str) or properties.get("action") not in ("Subscribe", "Unsubscribe"):
            raise AssertionError("DFSubscriptionChange without subscriptionId and action")
    if name == "DFMessageFailure" and "variant" in properties:
        variant = properties["variant"]
        if variant.get("provider", {}).get("type") not in DITTOFEED_FAILURE_PROVIDERS.get(variant.get("type"), set()):
            raise AssertionError(f"DFMessageFailure variant {variant!r} is not one Dittofeed knows")


if __name__ == "__main__":
    main()
