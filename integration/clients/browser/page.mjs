// Runs inside Chromium: Converse.js headless (the build the converse.js npm
// package ships in src/headless/dist, served under dist/ by the Go test)
// plus the hooks driver.mjs calls. Everything the page sees is reported
// through window.reportEvent, which the driver installs before the page
// loads (playwright-core's exposeFunction).

import converse from "./dist/converse-headless.min.js";

const report = (ev) => window.reportEvent(ev);

let api;
converse.plugins.add("xmpp2proxy-test", {
  initialize() {
    api = this._converse.api;
    api.listen.on("connected", () => {
      report({ event: "connected", jid: api.connection.get().jid });
    });
    api.listen.on("disconnected", () => report({ event: "disconnected" }));
    // Converse's 'message' event: every incoming message stanza it has
    // parsed and filed in a chat (not archive pages, not our own sends).
    api.listen.on("message", ({ attrs }) => {
      if (!attrs?.body) return;
      report({ event: "message", from: attrs.from, type: attrs.type, body: attrs.body, id: attrs.msgid });
    });
  },
});

window.xmppTest = {
  // start logs in at once (auto_login) over the WebSocket at cfg.websocketURL.
  async start(cfg) {
    await converse.initialize({
      websocket_url: cfg.websocketURL,
      jid: cfg.jid,
      password: cfg.password,
      auto_login: true,
      // A test must see a dropped connection, not a silent reconnect.
      auto_reconnect: false,
      // The URL is given: no XEP-0156 host-meta lookup on the page's origin.
      discover_connection_methods: false,
      whitelisted_plugins: ["xmpp2proxy-test"],
      // OMEMO needs PEP, which the test servers do not run, and a WebAssembly
      // file outside the headless build; plain chat is what is under test.
      blacklisted_plugins: ["converse-omemo"],
      // A fresh browser context per run: nothing is restored from a last run.
      persistent_store: "localStorage",
      assets_path: "dist",
      i18n: "en",
      loglevel: cfg.trace ? "debug" : "warn",
    });
  },

  // send writes a chat message through Converse's own chat model, as its
  // UI does when a user presses Enter.
  async send(to, body) {
    const chat = await api.chats.get(to, {}, true);
    const msg = await chat.sendMessage({ body });
    return msg?.get("msgid") ?? null;
  },

  // stop logs out, which closes the stream with <close/>.
  async stop() {
    await api.user.logout();
  },
};
