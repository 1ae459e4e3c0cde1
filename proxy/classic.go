package proxy

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// classicHooks are a classic (1.0) session's relay hooks: bytes cross
// untouched, in both directions; the proxy only watches them, for the
// account's 2.0 sessions (classicUpstream) and for private messages
// (classicClient, private.go). A classic client that vanishes is gone:
// its resumption, if any, is the server's business (XEP-0198 end to end).
type classicHooks struct{}

func (classicHooks) start(*relay) []*relay { return nil }
func (classicHooks) running(*relay)        {}
func (classicHooks) detach(*relay) bool    { return false }
func (classicHooks) clientWrote(*relay)    {}
func (classicHooks) ended(*relay)          {}

func (classicHooks) fromClient(r *relay, raw []byte) []byte {
	r.classicClient(raw)
	return raw
}

func (classicHooks) fromUpstream(r *relay, raw []byte) []byte {
	r.classicUpstream(raw)
	return raw
}

// classicUpstream watches, without changing a byte, what a classic
// session receives: its bind result, then bare-JID messages for an account
// that also has 2.0 sessions online. The 1.0 server gives those only to
// the highest-priority resource and carbons only some types, so the proxy
// hands them to the account's exactly-once rules, which deliver them to
// every 2.0 session that has not had them (contract section 5).
func (r *relay) classicUpstream(raw []byte) {
	if !r.classicBindSeen {
		r.sniffClassicBind(raw)
		return
	}
	if !bytes.HasPrefix(raw, []byte("<message")) {
		return
	}
	acc := r.s.srv.registry.online(r.classicAccount)
	if acc == nil {
		return
	}
	if !stream.AttrEqualFold(raw, "to", r.classicAccount) {
		return
	}
	jid := r.s.fullJID()
	acc.deliverMu.Lock() // see account.deliverMu
	defer acc.deliverMu.Unlock()
	ds, _ := acc.observe(jid, raw)
	for _, d := range ds {
		d.to.deliver(entering(d.stanza))
	}
}

// sniffClassicBind registers the JID a classic session binds, so 2.0
// clients' messages to it are not bounced (contract section 5). Only the
// upstream reader calls it, until the bind result has passed.
func (r *relay) sniffClassicBind(raw []byte) {
	if !bytes.HasPrefix(raw, []byte("<iq")) || !bytes.Contains(raw, []byte(ns.Bind)) {
		return
	}
	if jid, err := jidFromBindResult(raw); err == nil {
		r.classicBindSeen = true
		r.classicAccount = accountOf(jid)
		r.s.setFullJID(jid)
	}
}
