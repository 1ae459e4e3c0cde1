package proxy

import (
	"bytes"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// route applies the 2.0 routing rules to a message that arrived on this
// session's upstream leg: a 2.0-marked full-JID message the 1.0 server
// rerouted to this resource is dropped, whether the server kept its `to`
// (Prosody) or a hint says it was meant for another session (ejabberd); a <private/> that Prosody took off
// a classic sender's message is put back; the account's exactly-once rules
// decide which sessions get it; each copy gets the entering rules. It
// returns this session's copy, or nil; the others are delivered directly.
func (v *session2) route(r *relay, raw []byte) []byte {
	if reroutedFullJID(raw, v.jid) {
		return nil
	}
	if v.acc == nil {
		return entering(raw)
	}
	if v.acc.misdelivered(raw, v.jid) {
		return nil
	}
	raw = v.acc.restorePrivate(raw)
	ds, err := v.acc.observe(r.name, raw)
	if err != nil {
		r.s.log.Debug("message not routed", "err", err)
	}
	var mine []byte
	for _, d := range ds {
		if d.to == r {
			mine = entering(d.stanza)
			continue
		}
		d.to.deliver(entering(d.stanza))
	}
	return mine
}

// deliver writes a stanza that arrived on a sibling session's leg to this
// session's client, with this leg's stream management.
// It never waits on this session's client (see clientTooSlow).
func (r *relay) deliver(stanza []byte) {
	defer r.s.v2.inOrder()()
	r.s.v2.toClient(r, stanza)
}

// entering applies the migration rules to one delivered copy. A sent
// carbon or a MAM result is a wrapper the client takes apart itself; only
// plain messages (an unwrapped received carbon among them) are marked.
func entering(stanza []byte) []byte {
	if bytes.Contains(stanza, []byte(ns.MAM)) && bytes.Contains(stanza, []byte("<result")) ||
		bytes.Contains(stanza, []byte(ns.Carbons)) && bytes.Contains(stanza, []byte("<sent")) {
		return stanza
	}
	out, _, err := rewrite.Entering(stanza)
	if err != nil {
		return stanza
	}
	return out
}

// reroutedFullJID reports a message that a 2.0 client sent to another full
// JID (it carries <xmpp-2/>) and that the 1.0 server delivered here instead.
// Only Prosody shows it: ejabberd addresses every copy it delivers to the
// receiving session, and the message then looks sent here (docs/protocol.md).
func reroutedFullJID(raw []byte, self string) bool {
	if !bytes.Contains(raw, []byte(ns.XMPP2)) {
		return false
	}
	_, route, err := rewrite.Entering(raw)
	if err != nil || !route.Marked2 {
		return false
	}
	to := stream.AttrString(raw, "to")
	return strings.Contains(to, "/") && !strings.EqualFold(to, self)
}
