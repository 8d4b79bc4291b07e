// Checks deliveries tidings made with the JavaScript SDKs of the protocols it speaks: every
// canonical-event delivery must be found and parsed as a CloudEvent by the official CloudEvents
// SDK (HTTP binding, structured mode) and match its body, and every delivery must verify with
// the official Standard Webhooks library under each secret the case names.
//
// Usage: node check.mjs CASES.json
// CASES.json: [{"kind": "cloudevents"|"dittofeed", "secrets": ["whsec_…"], "headers": {…}, "body": "…"}]
// Prints one line per failure and a closing count; exits 1 when anything failed.
import { readFileSync } from "node:fs";
import { HTTP } from "cloudevents";
import { Webhook } from "standardwebhooks";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const failures = [];
let checks = 0;

for (const [index, c] of cases.entries()) {
  const fail = (check, error) => failures.push(`case ${index} (${c.kind}): ${check}: ${error}`);
  for (const secret of c.secrets) {
    checks += 1;
    try {
      new Webhook(secret).verify(c.body, c.headers);
    } catch (error) {
      fail("standardwebhooks verify", error.message ?? error);
    }
  }
  if (c.kind !== "cloudevents") continue;
  checks += 1;
  try {
    const event = HTTP.toEvent({ headers: c.headers, body: c.body });
    if (Array.isArray(event)) throw new Error("parsed as a batch, not one event");
    event.validate();
    const sent = JSON.parse(c.body);
    for (const attribute of ["id", "source", "type", "specversion", "subject", "datacontenttype", "workspaceid"]) {
      if (event[attribute] !== sent[attribute]) {
        throw new Error(`${attribute} parsed as ${JSON.stringify(event[attribute])}, sent ${JSON.stringify(sent[attribute])}`);
      }
    }
    if (new Date(event.time).getTime() !== new Date(sent.time).getTime()) {
      throw new Error(`time parsed as ${event.time}, sent ${sent.time}`);
    }
    if (JSON.stringify(event.data) !== JSON.stringify(sent.data)) throw new Error("data differs from the body's");
  } catch (error) {
    fail("cloudevents HTTP.toEvent", error.message ?? error);
  }
}

for (const line of failures.slice(0, 50)) console.log(line);
console.log(`interop (JavaScript: cloudevents, standardwebhooks): ${checks - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
