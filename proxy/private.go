package proxy

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// Prosody 0.12 takes an inbound <private xmlns='urn:xmpp:carbons:2'/> off a
// message before delivering it, so a classic sender's private chat to a 2.0
// session's full JID would look unmarked and be rerouted to the whole
// account. When the sender is a classic session through this proxy, its
// relay sees the marker on the way up and leaves a hint; the addressed
// session's leg puts the marker back (contract section 6, docs/protocol.md).

// maxHints bounds the hints an account keeps of each kind. A hint whose
// message never arrives (the server refused it) waits until newer ones push
// it out.
const maxHints = 256

// messageHint names one message on its way to a 2.0 session's full JID:
// its sender's full JID, its recipient's full JID (both lower case) and its
// id.
type messageHint struct{ from, to, id string }

// messageHints are an account's hints of one kind, oldest first.
type messageHints struct {
	// n is len(list), read without the lock: the upstream leg of every
	// 2.0 session asks, and almost always there is nothing to match.
	n    atomic.Int32
	mu   sync.Mutex
	list []messageHint
}

func (h *messageHints) add(p messageHint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.list) == maxHints {
		h.list = slices.Delete(h.list, 0, 1)
	}
	h.list = append(h.list, p)
	h.n.Store(int32(len(h.list)))
}

// find returns the hint for the message with this sender and id.
func (h *messageHints) find(from, id string) (messageHint, bool) {
	if h.n.Load() == 0 {
		return messageHint{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.list {
		if p.from == from && p.id == id {
			return p, true
		}
	}
	return messageHint{}, false
}

// take removes the hint p and reports whether it was there.
func (h *messageHints) take(p messageHint) bool {
	if h.n.Load() == 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	i := slices.Index(h.list, p)
	if i < 0 {
		return false
	}
	h.list = slices.Delete(h.list, i, i+1)
	h.n.Store(int32(len(h.list)))
	return true
}

// classicClient watches, without changing a byte, what a classic session
// sends: a message with a direct <private/> to a full JID that is one of an
// account's 2.0 sessions leaves a hint in that account.
func (r *relay) classicClient(raw []byte) {
	if !bytes.Contains(raw, []byte(ns.Carbons)) || !bytes.HasPrefix(raw, []byte("<message")) {
		return
	}
	p, ok := hintOf(raw, r.s.fullJID())
	if !ok {
		return
	}
	if has, err := rewrite.HasPrivate(raw); err != nil || !has {
		return
	}
	acc := r.s.srv.registry.online(p.to)
	if acc == nil || !acc.hasSession(p.to) {
		return
	}
	acc.private.add(p)
}

// restorePrivate puts <private/> back into a message that arrived on one
// of the account's upstream legs and matches a hint. A message that still
// has it (ejabberd keeps it) only uses the hint up.
func (acc *account) restorePrivate(raw []byte) []byte {
	if acc.private.n.Load() == 0 {
		return raw
	}
	p, ok := hintOf(raw, stream.AttrString(raw, "from"))
	if !ok || !acc.private.take(p) {
		return raw
	}
	out, err := rewrite.WithPrivate(raw)
	if err != nil {
		return raw
	}
	return out
}

// hintOf names a message sent by from. A message that has no id, or is not
// to a full JID, cannot be matched on delivery and gives none.
func hintOf(raw []byte, from string) (messageHint, bool) {
	p := messageHint{
		from: strings.ToLower(from),
		to:   strings.ToLower(stream.AttrString(raw, "to")),
		id:   stream.AttrString(raw, "id"),
	}
	_, resource, full := strings.Cut(p.to, "/")
	return p, p.from != "" && full && resource != "" && p.id != ""
}

// hasSession reports whether jid is one of the account's 2.0 sessions.
func (acc *account) hasSession(jid string) bool {
	acc.mu.Lock()
	defer acc.mu.Unlock()
	for _, r := range acc.sessions {
		if strings.EqualFold(r.s.v2.jid, jid) {
			return true
		}
	}
	return false
}
