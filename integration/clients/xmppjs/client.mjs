#!/usr/bin/env node
// Command-line driver around @xmpp/client 0.14.0 for xmpp2proxy's
// integration tests. It prints one JSON object per line on stdout; see
// README.md for the events, the flags and how they map to the wire.

import fs from "node:fs";
import tls from "node:tls";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

import { client, xml } from "@xmpp/client";

// @xmpp/websocket (a ws:// or wss:// --service) uses the global WebSocket,
// which Node has only from 22 on (20 hides it behind a flag, and
// Debian's Node 18 has none): the ws package stands in where it is missing.
if (typeof globalThis.WebSocket === "undefined") {
  globalThis.WebSocket = (await import("ws")).default;
}

const NS_STREAM = "http://etherx.jabber.org/streams";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_SASL2 = "urn:xmpp:sasl:2";

const USAGE = `usage: node client.mjs --service xmpp://127.0.0.1:PORT|ws://127.0.0.1:PORT/PATH --domain localhost
       --username alice --password pw [--resource-tag mobile]
       [--to bob@localhost --message hi] [--expect N] [--timeout 20]
       [--tls-insecure] [--ca cert.pem] [--user-agent-id UUID]
       [--software NAME] [--device NAME] [--sm-timeout 5] [--no-presence] [--trace]`;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      service: { type: "string" },
      domain: { type: "string" },
      username: { type: "string" },
      password: { type: "string" },
      "resource-tag": { type: "string" },
      to: { type: "string" },
      message: { type: "string" },
      expect: { type: "string", default: "0" },
      timeout: { type: "string", default: "20" },
      "sm-timeout": { type: "string", default: "5" },
      "tls-insecure": { type: "boolean", default: false },
      ca: { type: "string" },
      "user-agent-id": { type: "string" },
      software: { type: "string" },
      device: { type: "string" },
      "no-presence": { type: "boolean", default: false },
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
if (!args.service || !args.username || args.password === undefined) {
  process.stderr.write(`--service, --username and --password are required\n${USAGE}\n`);
  process.exit(64);
}
if ((args.to === undefined) !== (args.message === undefined)) {
  process.stderr.write(`--to and --message go together\n${USAGE}\n`);
  process.exit(64);
}
const expect = Number.parseInt(args.expect, 10);
const timeoutSec = Number(args.timeout);
const smTimeoutSec = Number(args["sm-timeout"]);
if (!(expect >= 0) || !(timeoutSec > 0) || !(smTimeoutSec >= 0)) {
  process.stderr.write(`bad --expect, --timeout or --sm-timeout\n${USAGE}\n`);
  process.exit(64);
}

// One JSON object per line. Synchronous so nothing is lost on process.exit.
function emit(obj) {
  fs.writeSync(1, `${JSON.stringify(obj)}\n`);
}

let finished = false;
function errorEvent(err) {
  const out = { event: "error", error: err?.condition || err?.message || String(err) };
  if (err?.name) out.name = err.name;
  if (err?.message) out.message = err.message;
  if (err?.condition) out.condition = err.condition;
  if (err?.text) out.text = err.text;
  if (err?.element) out.xml = err.element.toString();
  return out;
}

// ---- TLS -------------------------------------------------------------------
// @xmpp/client 0.14.0 has no option for TLS settings: @xmpp/tls calls
// tls.connect({port, host}) and @xmpp/starttls calls
// tls.connect({socket, host: options.domain}). Both look tls.connect up on the
// node:tls module object at call time, so wrapping it here reaches them.
const caPEM = args.ca ? fs.readFileSync(args.ca) : undefined;
{
  const connect = tls.connect;
  tls.connect = function patchedConnect(options, ...rest) {
    const opts = typeof options === "object" && options !== null ? { ...options } : options;
    if (typeof opts === "object") {
      if (args["tls-insecure"]) opts.rejectUnauthorized = false;
      if (caPEM) {
        opts.ca = caPEM;
        // Check the certificate against the XMPP domain, not the dialled address.
        const name = args.domain || opts.servername || opts.host;
        opts.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(name, cert);
      }
    }
    const sock = connect.call(this, opts, ...rest);
    const via = typeof opts === "object" && opts.socket ? "starttls" : "direct";
    sock.once("secureConnect", () => {
      emit({
        event: "tls",
        via,
        protocol: sock.getProtocol(),
        authorized: sock.authorized,
        ...(sock.authorizationError && { authorization_error: String(sock.authorizationError) }),
      });
    });
    return sock;
  };
}

// ---- client ----------------------------------------------------------------
let userAgent;
if (args["user-agent-id"] || args.software || args.device) {
  // Replaces the library default xml("user-agent", {id: randomUUID()}) of
  // @xmpp/client/index.js; it is sent verbatim inside <authenticate>.
  userAgent = xml(
    "user-agent",
    { id: args["user-agent-id"] || randomUUID() },
    args.software && xml("software", {}, args.software),
    args.device && xml("device", {}, args.device),
  );
}

const xmpp = client({
  service: args.service,
  domain: args.domain,
  username: args.username,
  password: args.password,
  resource: args["resource-tag"],
  userAgent,
});

// A test driver must not silently reconnect (the default since it is always set up).
xmpp.reconnect.stop();

xmpp.on("element", (el) => {
  if (args.trace) emit({ event: "recv", xml: el.toString() });
  if (el.is("features", NS_STREAM)) {
    emit({ event: "features", xml: el.toString() });
  } else if (el.is("success", NS_SASL2)) {
    emit({ event: "sasl_success", profile: "sasl2", xml: el.toString() });
  } else if (el.is("success", NS_SASL)) {
    emit({ event: "sasl_success", profile: "sasl", xml: el.toString() });
  }
});

xmpp.on("send", (el) => {
  if (args.trace) emit({ event: "send", xml: el.toString() });
  if (el.is("authenticate", NS_SASL2)) {
    emit({ event: "sasl_mechanism", name: el.attrs.mechanism, profile: "sasl2" });
    emit({ event: "authenticate", xml: el.toString() });
  } else if (el.is("auth", NS_SASL)) {
    emit({ event: "sasl_mechanism", name: el.attrs.mechanism, profile: "sasl" });
  }
});

let received = 0;
let ready = false;
xmpp.on("stanza", (st) => {
  if (!st.is("message")) return;
  const body = st.getChild("body");
  if (!body) return;
  emit({
    event: "message",
    from: st.attrs.from ?? null,
    type: st.attrs.type ?? null,
    body: body.text(),
    xml: st.toString(),
  });
  received++;
  maybeFinish();
});

xmpp.on("error", (err) => {
  if (finished) return;
  fail(err, 1);
});

xmpp.on("disconnect", () => {
  if (finished) return;
  fail(new Error("disconnected by peer"), 1);
});

process.on("unhandledRejection", (err) => {
  if (finished) return;
  fail(err, 1);
});

const overall = setTimeout(() => {
  fail(Object.assign(new Error(`timeout after ${timeoutSec}s`), { condition: "timeout" }), 2);
}, timeoutSec * 1000);

async function stopAndExit(code) {
  // Give the close a bound: @xmpp/connection waits up to its own timeout (2 s)
  // for </stream:stream> and for the socket close.
  const guard = setTimeout(() => {
    emit({ event: "offline" });
    process.exit(code);
  }, 5000);
  try {
    await xmpp.stop();
  } catch {}
  clearTimeout(guard);
  emit({ event: "offline" });
  process.exit(code);
}

function fail(err, code) {
  if (finished) return;
  finished = true;
  clearTimeout(overall);
  emit(errorEvent(err));
  stopAndExit(code);
}

function maybeFinish() {
  if (finished || !ready) return;
  if (received < expect) return;
  finished = true;
  clearTimeout(overall);
  stopAndExit(0);
}

function waitForSM() {
  const sm = xmpp.streamManagement;
  // @xmpp/stream-management 0.14.0 emits no 'enabled' event: poll.
  return new Promise((resolve) => {
    const deadline = Date.now() + smTimeoutSec * 1000;
    const tick = () => {
      if (sm.enabled) {
        emit({ event: "sm_enabled", id: sm.id || null, max: sm.max ?? null });
        return resolve(true);
      }
      if (Date.now() >= deadline) {
        emit({ event: "sm_not_enabled" });
        return resolve(false);
      }
      setTimeout(tick, 50);
    };
    tick();
  });
}

xmpp.on("online", async (jid) => {
  emit({ event: "online", jid: String(jid) });
  try {
    await waitForSM();
    if (finished) return;
    if (!args["no-presence"]) {
      await xmpp.send(xml("presence"));
    }
    emit({ event: "ready" });
    if (args.to !== undefined) {
      const id = randomUUID();
      await xmpp.send(
        xml("message", { to: args.to, type: "chat", id }, xml("body", {}, args.message)),
      );
      emit({ event: "sent", to: args.to, body: args.message, id });
    }
    ready = true;
    maybeFinish();
  } catch (err) {
    fail(err, 1);
  }
});

xmpp.start().catch((err) => {
  fail(err, 1);
});
