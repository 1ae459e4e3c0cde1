#!/usr/bin/env node
// Drives Converse.js (headless) in Debian's Chromium for xmpp2proxy's
// integration tests, through playwright-core (no browser of its own).
// It prints one JSON object per line on stdout; see README.md.

import fs from "node:fs";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

const USAGE = `usage: node driver.mjs --page http://127.0.0.1:PORT/ --websocket-url ws://127.0.0.1:PORT/xmpp-websocket
       --jid alice@localhost --password pw [--to bob@localhost --message PREFIX [--count N]]
       [--until BODY] [--timeout 30] [--chromium /usr/bin/chromium] [--trace]`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      page: { type: "string" },
      "websocket-url": { type: "string" },
      jid: { type: "string" },
      password: { type: "string" },
      to: { type: "string" },
      message: { type: "string" },
      count: { type: "string", default: "1" },
      until: { type: "string" },
      timeout: { type: "string", default: "30" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      trace: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.exit(64);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (!args.page || !args["websocket-url"] || !args.jid || args.password === undefined) {
  process.stderr.write(`--page, --websocket-url, --jid and --password are required\n${USAGE}\n`);
  process.exit(64);
}
if ((args.to === undefined) !== (args.message === undefined)) {
  process.stderr.write(`--to and --message go together\n${USAGE}\n`);
  process.exit(64);
}
const count = Number.parseInt(args.count, 10);
const timeoutSec = Number(args.timeout);
if (!(count >= 0) || !(timeoutSec > 0)) {
  process.stderr.write(`bad --count or --timeout\n${USAGE}\n`);
  process.exit(64);
}

// One JSON object per line. Synchronous so nothing is lost on process.exit.
function emit(obj) {
  fs.writeSync(1, `${JSON.stringify(obj)}\n`);
}

let browser;
let page;
let finished = false;

async function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(overall);
  // Bound the goodbye: a logout that hangs must not hang the test.
  const guard = setTimeout(() => {
    emit({ event: "offline" });
    process.exit(code);
  }, 5000);
  try {
    if (code === 0) await page?.evaluate(() => window.xmppTest.stop());
  } catch {}
  try {
    await browser?.close();
  } catch {}
  clearTimeout(guard);
  emit({ event: "offline" });
  process.exit(code);
}

function fail(err, code = 1) {
  if (finished) return;
  emit({ event: "error", error: err?.message || String(err) });
  finish(code);
}

const overall = setTimeout(() => fail(new Error(`timeout after ${timeoutSec}s`), 2), timeoutSec * 1000);
process.on("unhandledRejection", (err) => fail(err));

// sendAll sends the --count messages "PREFIX 1" … "PREFIX N" in order,
// each once Converse has written the previous one.
async function sendAll() {
  if (args.to === undefined) return;
  for (let i = 1; i <= count; i++) {
    const body = `${args.message} ${i}`;
    const id = await page.evaluate(([to, b]) => window.xmppTest.send(to, b), [args.to, body]);
    emit({ event: "sent", to: args.to, body, id });
  }
}

// onPageEvent receives what page.mjs reports and decides what comes next.
function onPageEvent(ev) {
  if (finished) return;
  emit(ev);
  switch (ev.event) {
    case "connected":
      // Without --until the run ends once connected and the sends are done.
      sendAll()
        .then(() => args.until === undefined && finish(0))
        .catch((err) => fail(err));
      break;
    case "message":
      if (args.until !== undefined && ev.body === args.until) finish(0);
      break;
    case "disconnected":
      fail(new Error("disconnected"));
      break;
  }
}

try {
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    // Chromium refuses to start its sandbox as root (tests run as root in CI).
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  emit({ event: "browser", version: browser.version() });
  page = await browser.newPage();
  await page.exposeFunction("reportEvent", onPageEvent);
  page.on("pageerror", (err) => fail(err));
  page.on("console", (msg) => {
    if (args.trace || msg.type() === "error") {
      emit({ event: "console", name: msg.type(), body: msg.text() });
    }
  });
  if (args.trace) {
    page.on("websocket", (ws) => {
      emit({ event: "websocket", url: ws.url() });
      ws.on("framesent", (f) => emit({ event: "send", xml: String(f.payload) }));
      ws.on("framereceived", (f) => emit({ event: "recv", xml: String(f.payload) }));
    });
  }
  await page.goto(args.page);
  await page.evaluate((cfg) => window.xmppTest.start(cfg), {
    websocketURL: args["websocket-url"],
    jid: args.jid,
    password: args.password,
    trace: args.trace,
  });
} catch (err) {
  fail(err);
}
