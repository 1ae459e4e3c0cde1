#!/usr/bin/python3
"""A real classic (RFC 6120) XMPP client, slixmpp, for xmpp2proxy's tests.

It logs in (STARTTLS, SASL, bind), optionally fetches the roster, sends one
message, waits for messages, and prints one JSON object per event on stdout:
  {"event": "session_start", "jid": ...}
  {"event": "roster", "items": [...]}
  {"event": "message", "from": ..., "body": ...}
  {"event": "failed_auth"} / {"event": "disconnected"}
Run it with Debian's /usr/bin/python3, which sees python3-slixmpp.
"""
import argparse
import asyncio
import json
import ssl
import sys

import slixmpp


def emit(**kw):
    print(json.dumps(kw), flush=True)


class Classic(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.received = 0
        # The proxy's certificate is self-signed in tests and the demo.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.fail("failed_auth"))
        self.add_event_handler("disconnected", lambda _: emit(event="disconnected"))

    def fail(self, what):
        emit(event=what)
        self.disconnect()

    async def start(self, _):
        emit(event="session_start", jid=str(self.boundjid))
        self.send_presence()
        if self.args.roster:
            await self.get_roster()
            emit(event="roster", items=sorted(self.client_roster.keys()))
        if self.args.to:
            self.send_message(mto=self.args.to, mbody=self.args.message, mtype="chat")
            emit(event="sent", to=self.args.to, body=self.args.message)
        if self.args.expect == 0:
            self.disconnect()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            emit(event="message", **{"from": str(msg["from"]), "body": msg["body"]})
            self.received += 1
            if self.received >= self.args.expect:
                self.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True, help="HOST:PORT of the proxy")
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--to", help="send one chat message to this JID")
    p.add_argument("--message", default="hello from slixmpp")
    p.add_argument("--expect", type=int, default=0, help="wait for this many messages")
    p.add_argument("--roster", action="store_true", help="fetch and print the roster")
    p.add_argument("--timeout", type=float, default=20)
    args = p.parse_args()
    host, port = args.addr.rsplit(":", 1)
    xmpp = Classic(args)
    xmpp.register_plugin("xep_0030")
    xmpp.register_plugin("xep_0199")
    xmpp.connect(address=(host, int(port)))
    xmpp.loop.run_until_complete(asyncio.wait_for(xmpp.disconnected, args.timeout))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except asyncio.TimeoutError:
        emit(event="timeout")
        sys.exit(2)
