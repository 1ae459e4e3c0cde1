package proxy

import (
	"bytes"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// A 2.0 client's message to another 2.0 session's full JID, which the 1.0
// server cannot deliver there because that session went away in between,
// is rerouted by the server to the account's other resources. Prosody keeps
// the original `to`, which gives the copy away (reroutedFullJID). ejabberd
// readdresses each copy to the resource it lands on, so nothing in the
// stanza tells. When the sender is a 2.0 session of this proxy, the proxy
// remembers where the message was meant to go, and the leg a copy lands on
// can tell (contract section 5: a full-JID message reaches that session
// only).

// noteFullJIDSend leaves a hint in the recipient's account when the 2.0
// session from sends a message to one of that account's 2.0 sessions.
func (r *relay) noteFullJIDSend(from string, raw []byte) {
	if bytes.IndexByte(stream.AttrBytes(raw, "to"), '/') < 0 {
		return // to a bare JID: nothing to remember, nothing allocated
	}
	p, ok := hintOf(raw, from)
	if !ok {
		return
	}
	acc := r.s.srv.registry.online(p.to)
	if acc == nil || !acc.hasSession(p.to) {
		return
	}
	acc.sent.add(p)
}

// misdelivered reports a 2.0-marked message that a 2.0 session of this
// proxy sent to another full JID than self. The hint stays while copies may
// still land on other sessions; the addressed session uses it up.
func (acc *account) misdelivered(raw []byte, self string) bool {
	if acc.sent.n.Load() == 0 || !bytes.Contains(raw, []byte(ns.XMPP2)) {
		return false
	}
	p, ok := acc.sent.find(strings.ToLower(stream.AttrString(raw, "from")), stream.AttrString(raw, "id"))
	if !ok {
		return false
	}
	if strings.EqualFold(p.to, self) {
		acc.sent.take(p)
		return false
	}
	return true
}
