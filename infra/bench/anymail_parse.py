"""django-anymail's tracking-webhook parsing throughput, on the payloads of our Rust benchmark.

What it measures: for every provider that both tidings and django-anymail handle, how fast
anymail turns a webhook body into `AnymailTrackingEvent` objects, in events per second and
microseconds per request. The payloads are the ones `functions/core/benches/normalize.rs`
uses (read from events/, never written), so the figures can stand beside BENCHMARKS.md:

- SendGrid batches of 1,000 and (by default) 100,000 events, built the way the Rust benchmark
  builds its batch: the 15 events of events/sendgrid/batch-every-type.json cycled, each with
  `sg_event_id = f"bench-{i:06}-{original}"` and `email = f"user{i % 97}@example.com"`,
  serialized compactly with sorted keys (what `serde_json::to_vec` of a `Value` writes);
- the single-payload samples the Rust benchmark uses, one request each.

How: Django is configured in-process (no project, no database), each provider's
`<Esp>TrackingWebhookView` is instantiated once, and a POST request is built once per case with
`django.test.RequestFactory`, with the sample's `.headers` file as its headers. Only the view's
`parse_events(request)` is timed: JSON decoding plus anymail's mapping into events. Not timed:
the request object, Django's URL dispatch and middleware, basic auth and signature checks
(`validate_request`), and sending the `tracking` signal. Anymail verifies no signature inside
`parse_events`; its checks all live in `validate_request`, which is not called:

- SendGrid: ECDSA over the body, only when a verification key is set. None is set here.
- Mailgun: HMAC-SHA256 of the body's `signature` block. Anymail requires a signing key before
  it will build the view, so MAILGUN_WEBHOOK_SIGNING_KEY is set to a dummy value; the check
  itself is not run (the samples' signatures are zeros).
- Resend: Svix signature, only when RESEND_SIGNING_SECRET is set. It is left unset, so the
  `svix` package is not needed. `parse_events` still reads the `svix-id` header, which the
  sample's headers supply.
- Postmark, Brevo, SparkPost: basic auth only (WEBHOOK_SECRET, left unset; the warning that
  this is insecure is silenced).
- Amazon SES: anymail takes SNS notifications over HTTP, checks that the x-amz-sns headers match
  the body, and verifies no SNS signature at all. The view needs boto3 to be built (it prepares
  the client it would use to confirm SNS subscriptions), so anymail.sh installs it.

So anymail does less per request here than the Rust figures, which include verification.
Anymail caches the decoded SNS message on the request; such caches are dropped before every
call so that each call parses the body again. Twilio (SMS status callbacks) is not supported by
anymail and is listed as such.

Timing: `time.perf_counter`; each case is repeated enough times to take at least `--min-time`
seconds (default 1), that is done `--runs` times (default 5), and the median is reported. The
garbage collector stays on, as it would in a server.

Run: `infra/bench/anymail.sh [--sendgrid-events N] [--min-time S] [--runs R]`; the wrapper makes
the virtualenv target/anymail-venv with pinned Django, django-anymail and boto3.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EVENTS = REPO / "events"

# Provider (as named in events/ and in tidings) -> anymail's tracking view, by module and class.
# None: anymail has no webhook for that provider.
VIEWS: dict[str, tuple[str, str] | None] = {
    "sendgrid": ("anymail.webhooks.sendgrid", "SendGridTrackingWebhookView"),
    "postmark": ("anymail.webhooks.postmark", "PostmarkTrackingWebhookView"),
    "mailgun": ("anymail.webhooks.mailgun", "MailgunTrackingWebhookView"),
    "resend": ("anymail.webhooks.resend", "ResendTrackingWebhookView"),
    "twilio": None,
    "brevo": ("anymail.webhooks.brevo", "BrevoTrackingWebhookView"),
    "sparkpost": ("anymail.webhooks.sparkpost", "SparkPostTrackingWebhookView"),
    "ses": ("anymail.webhooks.amazon_ses", "AmazonSESTrackingWebhookView"),
}

# The single-payload samples of functions/core/benches/normalize.rs, in its order.
SAMPLES = [
    ("ses", "ses/bounce-permanent.json"),
    ("sendgrid", "sendgrid/bounce.json"),
    ("postmark", "postmark/bounce-hard.json"),
    ("mailgun", "mailgun/failed-permanent.json"),
    ("resend", "resend/email.bounced.json"),
    ("twilio", "twilio/undelivered.form"),
    ("brevo", "brevo/hard_bounce.json"),
    ("sparkpost", "sparkpost/batch-every-type.json"),
]


@dataclass
class Case:
    """One request body for one provider's view."""

    provider: str
    payload: str
    body: bytes
    headers: dict[str, str]
    records: int  # records in the body, before anymail maps them


@dataclass
class Result:
    case: Case
    events: int | None = None  # AnymailTrackingEvent objects per request; None: unsupported
    seconds_per_request: float | None = None
    notes: list[str] = field(default_factory=list)


def configure_django() -> None:
    """The least Django that anymail's webhook views need: settings, apps, no database."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["anymail"],
        USE_TZ=True,
        # Django refuses bodies over 2.5 MB by default; the 100,000-event batch is ~40 MB.
        DATA_UPLOAD_MAX_MEMORY_SIZE=None,
        ANYMAIL={
            # Mailgun's view refuses to start without a signing key; the signature check that
            # uses it (validate_request) is not run by this benchmark.
            "MAILGUN_WEBHOOK_SIGNING_KEY": "bench-not-checked",
            # WEBHOOK_SECRET (basic auth), SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY and
            # RESEND_SIGNING_SECRET are left unset: no verification is configured.
        },
    )
    django.setup()

    from anymail.exceptions import AnymailInsecureWebhookWarning, AnymailNotSupportedWarning

    # "Your Anymail webhooks are insecure": expected, no basic auth is configured.
    warnings.filterwarnings("ignore", category=AnymailInsecureWebhookWarning)
    # "django-anymail has dropped official support for SendGrid": noted in the output instead.
    warnings.filterwarnings("ignore", category=AnymailNotSupportedWarning)


def read_headers(path: Path) -> dict[str, str]:
    """A sample's `.headers` file: one `Name: value` a line."""
    headers = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
    return headers


def count_records(provider: str, body: bytes) -> int:
    """Records in a body as the provider sends it (a JSON array for SendGrid and SparkPost)."""
    if provider == "twilio":
        return 1  # one form-encoded status callback
    decoded = json.loads(body)
    return len(decoded) if isinstance(decoded, list) else 1


def sample_case(provider: str, path: str) -> Case:
    """A sample from events/ as it is, with the headers recorded beside it."""
    sample = EVENTS / path
    body = sample.read_bytes()
    headers = read_headers(sample.with_suffix(".headers"))
    if provider == "ses":
        body, headers = as_sns_notification(body, headers)
    return Case(provider, path, body, headers, count_records(provider, body))


def as_sns_notification(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """Anymail's SES webhook takes SNS HTTP notifications only.

    Most SES samples are already SNS envelopes (`"Type": "Notification"`) with their
    x-amz-sns headers; a raw SES event record (as some samples are) is wrapped in a minimal
    envelope so that anymail can take it too.
    """
    decoded = json.loads(body)
    if "Type" in decoded:
        return body, headers
    message_id = "00000000-0000-0000-0000-000000000000"
    envelope = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:ses-events",
        "Message": body.decode("utf-8"),
        "Timestamp": "2025-11-28T06:30:00.000Z",
    }
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": message_id,
    }
    return json.dumps(envelope).encode("utf-8"), headers


def sendgrid_batch_case(n: int) -> Case:
    """A SendGrid batch of `n` events, built exactly as normalize.rs's `sendgrid_batch`."""
    sample = json.loads((EVENTS / "sendgrid/batch-every-type.json").read_bytes())
    batch = []
    for i in range(n):
        event = dict(sample[i % len(sample)])
        event["sg_event_id"] = f"bench-{i:06}-{event['sg_event_id']}"
        event["email"] = f"user{i % 97}@example.com"
        batch.append(event)
    # serde_json::to_vec of a Value: no whitespace, object keys sorted, UTF-8 unescaped.
    body = json.dumps(batch, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    headers = read_headers(EVENTS / "sendgrid/batch-every-type.headers")
    return Case("sendgrid", f"{n:,}-event batch", body.encode("utf-8"), headers, n)


def build_request(case: Case) -> Any:
    """A POST with the case's body and headers, its body already read (Django caches it)."""
    from django.test import RequestFactory

    headers = dict(case.headers)
    content_type = headers.pop("Content-Type", "application/json")
    request = RequestFactory().post(
        f"/anymail/{case.provider}/tracking/",
        data=case.body,
        content_type=content_type,
        headers=headers,
    )
    _ = request.body  # read the stream once; the server would have done so too
    return request


def time_per_call(call: Callable[[], object], min_time: float, runs: int) -> float:
    """Median seconds per `call()` over `runs` runs, each of enough calls to last `min_time`."""

    def run(n: int) -> float:
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start

    # Calibrate: grow the call count until one run lasts at least min_time.
    n = 1
    while (elapsed := run(n)) < min_time:
        n = max(n + 1, int(n * min_time * 1.1 / max(elapsed, 1e-9)))
    return statistics.median(run(n) / n for _ in range(runs))


def measure(case: Case, min_time: float, runs: int) -> Result:
    result = Result(case)
    target = VIEWS[case.provider]
    if target is None:
        result.notes.append(f"{case.provider}: not supported by django-anymail, skipped")
        return result

    from anymail.signals import AnymailTrackingEvent

    module, class_name = target
    view = getattr(importlib.import_module(module), class_name)()
    request = build_request(case)

    # One call first: check that it parses, count the events, and find what anymail caches on
    # the request while parsing (the SES view keeps the decoded SNS message as _sns_message).
    before = set(vars(request))
    events = view.parse_events(request)
    caches = tuple(set(vars(request)) - before)
    if not all(isinstance(event, AnymailTrackingEvent) for event in events):
        raise SystemExit(f"{case.payload}: parse_events returned something else than events")
    result.events = len(events)
    if result.events != case.records:
        result.notes.append(
            f"{case.provider} {case.payload}: anymail returned {result.events} events "
            f"for {case.records} records"
        )

    parse_events = view.parse_events
    state = vars(request)
    if caches:

        def call() -> object:
            for key in caches:  # parse the body again, as a new request would
                del state[key]
            return parse_events(request)

    else:

        def call() -> object:
            return parse_events(request)

    result.seconds_per_request = time_per_call(call, min_time, runs)
    return result


def versions() -> str:
    from importlib.metadata import version

    import django

    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"Django {django.get_version()}, django-anymail {version('django-anymail')}, "
        f"boto3 {version('boto3')}; {platform.machine()}, {platform.system()}"
    )


def print_table(results: list[Result]) -> None:
    print("| provider | payload | events | anymail events/s | µs per request |")
    print("|---|---|---|---|---|")
    for r in results:
        if r.seconds_per_request is None:
            print(
                f"| {r.case.provider} | {r.case.payload} | – | not supported by anymail | – |"
            )
            continue
        per_second = r.events / r.seconds_per_request
        micros = r.seconds_per_request * 1e6
        print(
            f"| {r.case.provider} | {r.case.payload} | {r.events:,} "
            f"| {per_second:,.0f} | {micros:,.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sendgrid-events",
        type=int,
        default=100_000,
        metavar="N",
        help="events in the large SendGrid batch (default 100000)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        metavar="S",
        help="least duration of one run, in seconds (default 1)",
    )
    parser.add_argument(
        "--runs", type=int, default=5, metavar="R", help="runs per case, median reported"
    )
    args = parser.parse_args()

    configure_django()
    cases = [sendgrid_batch_case(args.sendgrid_events), sendgrid_batch_case(1000)]
    cases += [sample_case(provider, path) for provider, path in SAMPLES]

    results = []
    for case in cases:
        size = f"{len(case.body):,} bytes"
        print(f"measuring {case.provider} {case.payload} ({size})", file=sys.stderr, flush=True)
        results.append(measure(case, args.min_time, args.runs))

    print(versions())
    print(
        f"django-anymail `parse_events` only (no basic auth, no signature check, no signal); "
        f"median of {args.runs} runs of at least {args.min_time:g} s each."
    )
    print()
    print_table(results)
    print()
    print("Notes:")
    print(
        "- anymail verifies no signature inside parse_events (SendGrid ECDSA, Mailgun HMAC and "
        "Resend Svix checks live in validate_request, not called; SES SNS signatures are never "
        "verified by anymail); the tidings figures include verification."
    )
    print(
        "- django-anymail has dropped official support for SendGrid; its SendGrid view still "
        "ships and was used."
    )
    for r in results:
        for note in r.notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
