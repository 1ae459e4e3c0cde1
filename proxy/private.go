package proxy

import (
	"bytes"
	"html"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// Prosody 0.12 takes an inbound <private xmlns='urn:xmpp:carbons:2'/> off a
// message before delivering it, so a classic sender's private chat to a 2.0
// session's full JID would look unmarked and be rerouted to the whole
// account. When the sender is a classic session through this proxy, its
// relay sees the marker on the way up and leaves a hint; the addressed
// session's leg puts the marker back (contract section 6, docs/protocol.md).

// maxPrivateHints bounds the hints an account keeps. A hint whose message
// never arrives (the server refused it) waits until newer ones push it out.
const maxPrivateHints = 256

// privateHint names one private message on its way to a 2.0 session: its
// sender's full JID, its recipient's full JID (both lower case) and its id.
type privateHint struct{ from, to, id string }

// privateHints are an account's hints, oldest first.
type privateHints struct {
	// n is len(list), read without the lock: the upstream leg of every
	// 2.0 session asks, and almost always there is nothing to match.
	n    atomic.Int32
	mu   sync.Mutex
	list []privateHint
}

func (h *privateHints) add(p privateHint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.list) == maxPrivateHints {
		h.list = slices.Delete(h.list, 0, 1)
	}
	h.list = append(h.list, p)
	h.n.Store(int32(len(h.list)))
}

// take removes the hint p and reports whether it was there.
func (h *privateHints) take(p privateHint) bool {
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
	if !bytes.Contains(raw, []byte(nsCarbons)) || !bytes.HasPrefix(raw, []byte("<message")) {
		return
	}
	p, ok := hintOf(raw, r.s.bound())
	if !ok {
		return
	}
	if has, err := rewrite.HasPrivate(raw); err != nil || !has {
		return
	}
	acc := r.s.srv.registry.online(bareJID(p.to))
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
	tag := raw[:bytes.IndexByte(raw, '>')+1]
	p, ok := hintOf(raw, attrString(tag, "from"))
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
func hintOf(raw []byte, from string) (privateHint, bool) {
	tag := raw[:bytes.IndexByte(raw, '>')+1]
	p := privateHint{
		from: strings.ToLower(from),
		to:   strings.ToLower(attrString(tag, "to")),
		id:   attrString(tag, "id"),
	}
	_, resource, full := strings.Cut(p.to, "/")
	return p, p.from != "" && full && resource != "" && p.id != ""
}

// hasSession reports whether jid is one of the account's 2.0 sessions.
func (acc *account) hasSession(jid string) bool {
	acc.mu.Lock()
	defer acc.mu.Unlock()
	for s := range acc.sessions {
		if strings.EqualFold(s, jid) {
			return true
		}
	}
	return false
}

// attrString is an attribute's value with its references resolved, so that
// the client's id="a'b" and the server's id='a&apos;b' compare equal. XML's
// predefined entities and character references are a subset of HTML's.
func attrString(tag []byte, name string) string {
	return html.UnescapeString(string(attrValue(tag, name)))
}
