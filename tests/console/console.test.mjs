// The console, end to end in a real browser: headless Chromium (Debian's package) driven by
// playwright-core, against `tidings dev` on a fresh SQLite file.
//
// Flow: sign in, post a sample webhook and watch it appear in the live stream, open its
// timeline, create a subscription to a local endpoint and see its delivery attempt, lift a
// suppression, copy a source URL, redrive a dead letter. Each page is screenshotted (with the
// data of this flow) into $SCREENSHOTS (default target/console-screenshots).
//
// Usage: node tests/console/console.test.mjs   (run by tests/console/run.sh, which builds
// `tidings` and installs Chromium and playwright-core first)

import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const tidings = process.env.TIDINGS_BIN ?? join(root, "target/debug/tidings");
const screenshots = process.env.SCREENSHOTS ?? join(root, "target/console-screenshots");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Generous bounds for a loaded 2-core CI machine; every wait below ends as soon as its
// condition holds.
const WAIT_MS = 30_000;

mkdirSync(screenshots, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "tidings-console-"));
const db = join(work, "dev.db");

const cleanups = [];
let failures = 0;
let shot = 0;

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}\n${error?.stack ?? error}`);
    throw error;
  }
}

async function screenshot(page, name, fullPage = true) {
  shot += 1;
  const file = join(screenshots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage });
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/// Starts `tidings dev` and resolves once it listens.
async function startDev(port) {
  const child = spawn(tidings, ["dev", "--addr", `127.0.0.1:${port}`, "--db", db, "--watch-every", "1"], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(() => child.kill("SIGTERM"));
  let output = "";
  child.stderr.on("data", (chunk) => { output += chunk; });
  await new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`tidings dev did not start:\n${output}`)), WAIT_MS);
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (output.includes("listening on")) {
        clearTimeout(timer);
        resolveStart();
      }
    });
    child.once("exit", (code) => reject(new Error(`tidings dev exited (${code}):\n${output}`)));
  });
  return { child, logs: () => output };
}

/// A subscriber endpoint on loopback that records what it is sent.
async function startSubscriber() {
  const received = [];
  const waiters = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      received.push({ headers: request.headers, body });
      waiters.splice(0).forEach((wake) => wake());
      response.writeHead(200, { "content-type": "text/plain" });
      response.end("thanks");
    });
  });
  await new Promise((ready) => server.listen(0, "127.0.0.1", ready));
  cleanups.push(() => server.close());
  const next = (count) =>
    new Promise((resolveWait, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber got ${received.length} requests, wanted ${count}`)), WAIT_MS);
      const check = () => {
        if (received.length >= count) {
          clearTimeout(timer);
          resolveWait(received[count - 1]);
        } else {
          waiters.push(check);
        }
      };
      check();
    });
  return { url: `http://127.0.0.1:${server.address().port}/hooks/tidings`, received, next };
}

/// Standard Webhooks: base64 HMAC-SHA256 of `id.timestamp.body` under the secret's key bytes.
function verifySignature(secret, headers, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signed = `${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`;
  const expected = createHmac("sha256", key).update(signed).digest("base64");
  return headers["webhook-signature"].split(" ").some((s) => s === `v1,${expected}`);
}

/// Reloads `page` until `selector` shows `text` (the attempt log fills in as deliveries happen).
async function reloadUntil(page, selector, text) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const content = await page.locator(selector).allTextContents();
    if (content.some((t) => t.includes(text))) return;
    if (Date.now() > deadline) throw new Error(`${selector} never showed ${JSON.stringify(text)}: ${content.join(" | ")}`);
    await page.waitForTimeout(250);
    await page.reload();
  }
}

/// Accessibility checks every page must pass: one h1, a main landmark, every visible form
/// control labelled, and nothing wider than the viewport.
async function checkAccessible(page) {
  const report = await page.evaluate(() => {
    const unlabelled = [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && !el.hidden)
      .filter((el) => !el.closest("label") && !el.getAttribute("aria-label") && !(el.id && document.querySelector(`label[for="${el.id}"]`)))
      .map((el) => el.outerHTML);
    return {
      h1: document.querySelectorAll("h1").length,
      main: document.querySelectorAll("main").length,
      unlabelled,
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      lang: document.documentElement.lang,
    };
  });
  assert.equal(report.h1, 1, `${page.url()}: one h1`);
  assert.equal(report.main, 1, `${page.url()}: one main`);
  assert.deepEqual(report.unlabelled, [], `${page.url()}: unlabelled controls`);
  assert.ok(report.overflow <= 1, `${page.url()}: page is ${report.overflow}px wider than the viewport`);
  assert.equal(report.lang, "en");
}

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dev = await startDev(port);
  const config = JSON.parse(readFileSync(join(work, "dev.json"), "utf8"));
  const subscriber = await startSubscriber();
  const api = async (path) => {
    const response = await fetch(`${base}${path}`, {
      headers: { authorization: `Bearer ${config.api_key}` },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(response.status, 200, `${path}: ${response.status}`);
    return response.json();
  };
  // Asynchronously: the dev server's log pipes must keep draining while it runs.
  const run = promisify(execFile);
  const replay = async (...paths) =>
    (await run(tidings, ["replay", "--db", db, ...paths.map((p) => join(root, "events", p))], { timeout: WAIT_MS * 4 })).stdout;

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: base });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const consoleErrors = [];
  // Failed loads are caught by URL below; any other console error is a bug.
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) consoleErrors.push(message.text());
  });
  // The one answer above 399 the flow expects: the wrong key refused at sign-in.
  const failedLoads = [];
  page.on("response", (response) => {
    const path = new URL(response.url()).pathname;
    if (response.status() >= 400 && !(response.status() === 401 && path === "/console/login")) failedLoads.push(`${response.status()} ${path}`);
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  await step("signed out, the console asks for a key and refuses a wrong one", async () => {
    await page.goto("/console/events");
    assert.match(page.url(), /\/console\/login$/);
    await screenshot(page, "sign-in");
    await page.getByLabel("API key").fill("tdk_not-a-key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "not known" }).waitFor();
  });

  await step("signing in with the dev key opens the overview", async () => {
    await page.getByLabel("API key").fill(config.api_key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { level: 1, name: /Overview/ }).waitFor();
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "tidings_console");
    assert.ok(session?.httpOnly, "the session cookie is HttpOnly");
    assert.equal(session.sameSite, "Strict");
    assert.ok(!(await page.content()).includes(config.api_key), "the key is not in the page");
  });

  let message;
  await step("a webhook posted to tidings dev appears in the live stream on its own", async () => {
    await page.goto("/console/events");
    await page.getByText("No events match.").waitFor();
    assert.ok(await page.locator('meta[http-equiv="refresh"]').count(), "the stream reloads itself");
    await replay("postmark/bounce-hard.json");
    const stored = (await api("/api/events?limit=1")).events;
    assert.equal(stored.length, 1);
    message = stored[0].data.message_id;
    // No reload by the test: the page's own refresh brings the event in.
    await page.locator("tbody tr", { hasText: message }).waitFor({ timeout: WAIT_MS });
    const row = page.locator("tbody tr", { hasText: message });
    assert.match(await row.textContent(), /email\.bounced/);
    assert.match(await row.textContent(), /nobody@example\.com/);
    await checkAccessible(page);
  });

  await step("the rest of the samples fill the stream, its filters and the overview charts", async () => {
    const output = await replay("");
    assert.match(output, /^200 /m);
    assert.doesNotMatch(output, /^(4|5)\d\d /m);
    await page.goto("/console/events?provider=sendgrid&type=email.*&refresh=off");
    const rows = page.locator("tbody tr");
    assert.ok((await rows.count()) > 3, "sendgrid email events are listed");
    for (const text of await rows.allTextContents()) assert.match(text, /sendgrid/);
    await screenshot(page, "events-filtered");
    await page.goto("/console?window=all");
    const charts = page.locator("figure.chart svg[role=img]");
    assert.equal(await charts.count(), 2);
    assert.match(await charts.nth(1).getAttribute("aria-label"), /postmark \(\d+ messages?\) bounce rate \d/);
    await checkAccessible(page);
    await screenshot(page, "overview");
  });

  await step("the deliverability page draws rates against thresholds, bounces by reason, and the watch's alarm", async () => {
    // A low threshold and volume floor for the handful of sample messages: the dev watch (every
    // second here) crosses it and announces it once.
    const settings = await api("/api/deliverability/settings");
    const put = await fetch(`${base}/api/deliverability/settings`, {
      method: "PUT",
      headers: { authorization: `Bearer ${config.api_key}`, "content-type": "application/json" },
      body: JSON.stringify({ ...settings, bounce_rate: 0.01, min_volume: 1 }),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assert.equal(put.status, 200, `PUT settings: ${put.status} ${await put.text()}`);
    await page.goto("/console/deliverability");
    await reloadUntil(page, "main table", "deliverability.threshold_crossed");
    assert.match(await page.locator("main table").first().textContent(), /active.*bounce_rate\|provider\|/s);
    const charts = page.locator("figure.chart svg[role=img]");
    assert.match(await charts.first().getAttribute("aria-label"), /bounce rate threshold 1\.00%.*: other \(\d+ messages?\) bounce rate \d/);
    assert.match(await charts.nth(2).getAttribute("aria-label"), /mailbox_unknown events \d+/);
    const crossed = (await api("/api/events?type=deliverability.*")).events;
    const keys = crossed.map((e) => `${e.type} ${e.data.details.metric} ${e.data.details.value}`);
    assert.equal(new Set(keys).size, keys.length, `one event per crossing: ${keys.join(", ")}`);
    await checkAccessible(page);
    await screenshot(page, "deliverability");
  });

  await step("a message's timeline shows its state, its events and the provider's record", async () => {
    await page.goto("/console/events?refresh=off&provider=postmark");
    await page.locator("tbody tr", { hasText: message }).getByRole("link", { name: message }).first().click();
    await page.getByRole("heading", { level: 1, name: new RegExp(message) }).waitFor();
    assert.match(await page.locator("ol.lattice li.failed").first().textContent(), /^(bounced|complained|dropped) at \d{4}-/);
    const record = page.getByText(/Provider record \(postmark: /).first();
    await record.click();
    await page.getByText('"MessageID": "883953f4-6105-42a2-a16a-77a8eac79483"').first().waitFor();
    await checkAccessible(page);
    await screenshot(page, "message-timeline");
  });

  let secret;
  let subscriptionUrl;
  await step("a subscription created in the console shows its secret once", async () => {
    await page.goto("/console/subscriptions");
    await page.getByLabel("Endpoint URL").fill(subscriber.url);
    await page.getByLabel("Event types, comma-separated").fill("email.*, subscription.test");
    await page.getByLabel("Description").fill("local endpoint (console test)");
    await page.getByRole("button", { name: "Create" }).click();
    secret = await page.getByLabel("Signing secret").inputValue();
    assert.match(secret, /^whsec_/);
    await screenshot(page, "subscription-created");
    subscriptionUrl = (await page.locator("h1 code").textContent()).trim();
    await page.goto(`/console/subscriptions/${subscriptionUrl}`);
    assert.ok(!(await page.content()).includes(secret.slice(6)), "the secret is not shown again");
  });

  await step("a test event is delivered, signed, and its attempt shows on the subscription", async () => {
    await page.getByRole("button", { name: "Send test event" }).click();
    await page.getByRole("status").filter({ hasText: "on its way" }).waitFor();
    const delivery = await subscriber.next(1);
    assert.ok(verifySignature(secret, delivery.headers, delivery.body), "Standard Webhooks signature verifies");
    assert.equal(JSON.parse(delivery.body).type, "subscription.test");
    await reloadUntil(page, "tbody", "delivered");
    assert.match(await page.locator("tbody tr").first().textContent(), /thanks/);
    await checkAccessible(page);
    await screenshot(page, "subscription-attempts");
  });

  await step("a replayed time range is delivered to the subscription", async () => {
    await page.getByLabel("Replay events since (UTC)").fill("2000-01-01T00:00");
    await page.getByRole("button", { name: "Replay" }).click();
    const notice = await page.getByRole("status").filter({ hasText: "Replay queued" }).textContent();
    const queued = Number(notice.match(/queued (\d+)/)[1]);
    assert.ok(queued > 10, `replay queued ${queued}`);
    await subscriber.next(1 + queued);
    await page.goto("/console/subscriptions");
    assert.match(await page.locator("figure.chart svg").first().getAttribute("aria-label"), /100% of \d+ attempts/);
    await screenshot(page, "subscriptions");
  });

  await step("a suppression is found by search and lifted", async () => {
    await page.goto("/console/suppressions?q=nobody@");
    const row = page.locator("tbody tr", { hasText: "nobody@example.com" });
    await row.waitFor();
    await screenshot(page, "suppressions");
    await row.getByRole("button", { name: "Remove nobody@example.com" }).click();
    await page.getByRole("status").filter({ hasText: "Removed" }).waitFor();
    assert.equal(await page.locator("tbody tr", { hasText: "nobody@example.com" }).count(), 0);
    const left = (await api("/api/suppressions")).suppressions.map((s) => s.recipient);
    assert.ok(!left.includes("nobody@example.com"));
  });

  await step("sources list every provider's webhook URL, and Copy copies it", async () => {
    await page.goto("/console/sources");
    const urls = page.locator("input[readonly]");
    // One per source of the dev workspace: a source for every provider.
    const sources = (await api("/api/sources")).sources;
    assert.ok(sources.length >= 26, `${sources.length} sources`);
    assert.equal(await urls.count(), sources.length);
    const first = await urls.first().inputValue();
    assert.ok(first.startsWith(`${base}/webhooks/`), first);
    await page.getByRole("button", { name: "Copy" }).first().click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), first);
    await checkAccessible(page);
    await screenshot(page, "sources");
  });

  await step("a dead-lettered event is redriven from the console and then stored", async () => {
    // A real queued event the processor could not store earlier, as the dead-letter queue keeps
    // it: the first stored event, given a new id and message.
    const [sample] = (await api("/api/events?limit=1&type=email.bounced")).events;
    const id = `evt_${randomBytes(16).toString("hex")}`;
    const redriven = { ...sample, id, subject: "dead-letter-demo", data: { ...sample.data, message_id: "dead-letter-demo" } };
    const body = JSON.stringify({ event: redriven, raw: "{}", source: "src_console_test" });
    await run("python3", ["-c", `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO dead_letters (queue, body, reason, receive_count, failed_at) VALUES ('events', ?, 'store unavailable (console test)', 10, ?)", (sys.argv[2], int(time.time())))
db.commit()
`, db, body]);
    await page.goto("/console/queues");
    const events = page.locator("tbody tr", { hasText: "events" }).first();
    assert.match(await events.textContent(), /canonical events the processor could not store\s*1/);
    await screenshot(page, "dead-letters");
    await page.getByRole("button", { name: "Redrive events" }).click();
    await page.getByRole("status").filter({ hasText: "1 moved" }).waitFor();
    await checkAccessible(page);
    await screenshot(page, "dead-letters-redriven");
    const deadline = Date.now() + WAIT_MS;
    while ((await api("/api/events?message=dead-letter-demo")).events.length === 0) {
      assert.ok(Date.now() < deadline, "the redriven event was never stored");
      await new Promise((tick) => setTimeout(tick, 100));
    }
  });

  await step("the audit log lists the changes made in this session, by key id, without secrets", async () => {
    await page.goto("/console/audit");
    const rows = page.locator("main tbody tr");
    const text = (await rows.allTextContents()).join("\n");
    assert.match(text, /succeeded[\s\S]*POST \/console\/subscriptions/);
    assert.match(text, /POST \/console\/suppressions\/remove/);
    assert.match(text, /PUT \/api\/deliverability\/settings/);
    assert.ok(!text.includes(config.api_key), "the key itself is never shown");
    assert.ok(!text.includes("nobody@example.com"), "nor a recipient");
    await checkAccessible(page);
    await screenshot(page, "audit");
  });

  await step("a recipient typed twice is erased from the privacy page, and the audit log does not name them", async () => {
    const before = (await api("/api/events?recipient=jane.doe@example.com&limit=1000")).events;
    assert.ok(before.length > 0 && before.length < 1000, "the replayed samples have events of jane.doe@example.com");
    await page.goto("/console/privacy");
    await page.getByLabel("Address or phone number").fill("jane.doe@example.com");
    await page.getByLabel("Type it again to confirm").fill("Jane.Doe@example.com");
    await checkAccessible(page);
    await screenshot(page, "privacy");
    await page.getByRole("button", { name: "Erase" }).click();
    const status = page.getByRole("status").filter({ hasText: "Erased." });
    await status.waitFor();
    assert.match(await status.textContent(), new RegExp(`${before.length} events`));
    assert.equal((await api("/api/events?recipient=jane.doe@example.com&limit=1000")).events.length, 0);
    await page.goto("/console/audit");
    const text = (await page.locator("main tbody tr").allTextContents()).join("\n");
    assert.match(text, /POST \/console\/privacy\/erase/);
    assert.ok(!text.toLowerCase().includes("jane.doe"), "the audit log does not name the recipient");
  });

  await step("at phone width the stream fits the screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto("/console/events?refresh=off");
    await checkAccessible(page);
    await screenshot(page, "events-phone", false);
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step("the keyboard reaches the skip link first and every form control after", async () => {
    await page.goto("/console/subscriptions");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    let reachedCreate = false;
    for (let i = 0; i < 40 && !reachedCreate; i += 1) {
      await page.keyboard.press("Tab");
      reachedCreate = await page.evaluate(() => document.activeElement.textContent === "Create");
    }
    assert.ok(reachedCreate, "Tab reaches the Create button");
  });

  await step("without JavaScript every page still reads and signs in", async () => {
    const plain = await browser.newContext({ javaScriptEnabled: false, baseURL: base });
    const noScript = await plain.newPage();
    await noScript.goto("/console/login");
    await noScript.getByLabel("API key").fill(config.api_key);
    await noScript.getByRole("button", { name: "Sign in" }).click();
    await noScript.getByRole("heading", { level: 1, name: /Overview/ }).waitFor();
    await noScript.goto(`/console/messages/${message}`);
    await noScript.getByRole("heading", { level: 1 }).waitFor();
    await noScript.goto("/console/sources");
    assert.equal(await noScript.locator("input[readonly]").count(), (await api("/api/sources")).sources.length);
    await plain.close();
  });

  await step("signing out ends the session", async () => {
    await page.goto("/console");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await page.goto("/console/events");
    assert.match(page.url(), /\/console\/login$/);
  });

  await step("no script errors, and no secret in the server's log", async () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(failedLoads, []);
    const logs = dev.logs();
    assert.ok(!logs.includes(secret), "the subscription secret is not logged");
    assert.ok(!logs.includes(secret.slice(6)));
    // The dev server prints its key once, at start-up, for its user; it must not appear again.
    assert.equal(logs.split(config.api_key).length - 1, 1, "the API key is printed once, at start-up only");
  });
}

try {
  await main();
  console.log(`\nconsole browser test: all steps passed; ${shot} screenshots in ${screenshots}`);
} catch {
  console.log(`\nconsole browser test: ${failures} step failed; screenshots so far in ${screenshots}`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) {
    try { await cleanup(); } catch { /* already gone */ }
  }
  rmSync(work, { recursive: true, force: true });
}
