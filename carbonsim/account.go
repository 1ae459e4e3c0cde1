package carbonsim

import (
	"bytes"
	"hash/maphash"
	"slices"
	"strings"
)

// DefaultMemory is the number of messages each session remembers when
// [NewAccount] is given no positive bound. It covers a full XEP-0198
// retransmission of Prosody's 500-stanza queue with room to spare.
const DefaultMemory = 1024

// Scope says which sessions a message is for (contract sections 5 and 6).
type Scope int

const (
	// ScopeAuto derives the scope from the message by the contract's rules:
	// see [Account.Observe].
	ScopeAuto Scope = iota
	// ScopeAccount: every online session of the account, once.
	ScopeAccount
	// ScopeSession: only the session the message was addressed to.
	ScopeSession
)

// Event is one message as it arrived on one session's upstream leg: live,
// from offline storage, from a MAM catch-up, or retransmitted after the
// upstream leg resumed. The wrapping (carbon, archive result) is read from
// the stanza itself; how it came (live, offline, retransmitted) does not
// change the rules, so the caller does not say.
type Event struct {
	// Session names the session whose upstream leg it arrived on: the name
	// it joined under (its full JID unless it joined with [Account.JoinAs]).
	// A name that is not online (a classic session's JID) only scopes
	// session-scope messages, which then reach nobody.
	Session string
	// Stanza is the top-level <message/> exactly as received on that leg,
	// before any rewriting. Observe does not keep it after returning.
	Stanza []byte
	// Scope overrides the scope derived from the message; the zero value
	// derives it. It is ignored for MAM results.
	Scope Scope
}

// Delivery is one stanza to write to one session. Stanza may alias the
// Event's Stanza, and one slice may go to several sessions: do not modify it.
type Delivery struct {
	Session string
	Stanza  []byte
}

// HoldOverflowError reports sessions for which more live stanzas arrived
// during their catch-up than the account's memory can hold. They have been
// removed from the account as if by [Account.Leave]; the caller ends each
// of them (a <resource-constraint/> stream error, not resumable), and the
// client's next <sync after='...'/> recovers every archived message.
type HoldOverflowError struct {
	Sessions []string
}

// Error names the sessions whose hold overflowed.
func (e *HoldOverflowError) Error() string {
	return "carbonsim: live traffic overflowed the catch-up hold of " + strings.Join(e.Sessions, ", ")
}

// Account tracks the online 2.0 sessions of one account and what each has
// been given. It is not safe for concurrent use.
type Account struct {
	bare     string
	memory   int
	seed     maphash.Seed
	sessions []*sessionState // in join order, which is the order of deliveries
	// recent are the latest account-scope messages, for JoinAfter.
	recent      []recentItem
	recentBytes int
}

// sessionState is one online 2.0 session.
type sessionState struct {
	name       string // the caller's name for the session, unique in the account
	jid        string // the full JID it is bound to, for the sender rule
	catchingUp bool
	seen       keySet // messages delivered, most recent memory of them
	held       []heldItem
	heldKeys   keySet // keys of held, slot ref = index in held; only while catching up
}

// heldItem is live traffic waiting for the end of a catch-up.
type heldItem struct {
	stanza    []byte
	k         keys
	cancelled bool // the catch-up delivered the same message
}

// NewAccount returns an account with no session online. bareJID is the
// account's bare JID as the server writes it (the by of its stanza-ids).
// memory bounds the messages each session remembers and the live stanzas
// held for a session during its catch-up; 0 or less means DefaultMemory.
func NewAccount(bareJID string, memory int) *Account {
	if memory <= 0 {
		memory = DefaultMemory
	}
	return &Account{bare: bareJID, memory: memory, seed: maphash.MakeSeed()}
}

// Join brings a session online in its catch-up phase: from now on it gets
// the MAM results of its own leg, while everything else meant for it is
// held until [Account.Synced]. Call it when the session is bound, before
// its catch-up queries. Joining a session that is already online starts it
// afresh. The session's name is also the full JID it is bound to; use
// [Account.JoinAs] when two sessions may share a JID for a while.
func (a *Account) Join(session string) { a.JoinAs(session, session) }

// JoinAs is [Account.Join] for a session named apart from its full JID.
// Two sessions of one full JID can be online at once while one device
// replaces its own session (XEP-0386): each keeps its own state, and
// neither's end touches the other's. A message from the JID goes back to
// neither of them.
func (a *Account) JoinAs(session, jid string) {
	s := a.find(session)
	if s == nil {
		s = &sessionState{name: session, jid: jid, seen: newKeySet(a.memory)}
		a.sessions = append(a.sessions, s)
	}
	s.jid = jid
	s.seen.reset()
	s.held = nil
	s.heldKeys = newKeySet(a.memory)
	s.catchingUp = true
}

// Synced ends a session's catch-up (contract section 4, step 4): it returns
// the held live stanzas in arrival order, minus those the catch-up already
// delivered, and from then on deliveries to the session are immediate.
// Call it after writing <synced/>, or right after <success/> when there is
// no catch-up. It returns nil for a session that is not catching up.
func (a *Account) Synced(session string) []Delivery {
	s := a.find(session)
	if s == nil || !s.catchingUp {
		return nil
	}
	s.catchingUp = false
	var out []Delivery
	for i := range s.held {
		h := &s.held[i]
		if h.cancelled || (!h.k.empty() && s.seen.seen(h.k)) {
			continue
		}
		if !h.k.empty() {
			s.seen.add(h.k, -1)
		}
		out = append(out, Delivery{Session: s.name, Stanza: h.stanza})
	}
	s.held, s.heldKeys = nil, keySet{} // only a catch-up needs them
	return out
}

// Leave forgets a session for good. Do not call it while the session is
// detached but resumable (XEP-0198): its deliveries then belong in its
// resumption queue.
func (a *Account) Leave(session string) {
	a.sessions = slices.DeleteFunc(a.sessions, func(s *sessionState) bool { return s.name == session })
}

func (a *Account) find(session string) *sessionState {
	for _, s := range a.sessions {
		if s.name == session {
			return s
		}
	}
	return nil
}

// Observe takes one message that arrived on ev.Session's upstream leg and
// returns the stanzas to write to each online session.
//
// The forms, read from the stanza:
//
//   - a MAM result (<result xmlns='urn:xmpp:mam:2'>) goes as it is to
//     ev.Session only (when online), and always; its archive id and the forwarded
//     message's ids are remembered, so later live copies are dropped and
//     copies held for the session are cancelled;
//   - a received carbon goes out unwrapped: the forwarded <message/> with
//     its own attributes;
//   - a sent carbon goes out as it is;
//   - anything else is the message itself.
//
// Whatever the form, a message never goes back to the session whose full
// JID is its from (for a carbon, the forwarded message's): that session
// sent it. MAM results are the exception: a session's own catch-up holds
// what it sent before.
//
// Carbons are dropped when their outer from is neither absent nor the
// account's bare JID (XEP-0280 section 11), when the forwarded message is
// of type groupchat or headline, or when it is of session scope (it belongs
// to the session it was addressed to, or sent from, which has it from its
// own leg).
//
// The derived scope (ScopeAuto) is that of the message itself, or of a
// carbon's forwarded message, by the entering rules of contract section 6
// as package rewrite applies them, first match wins: type error, or no
// 'to': session; <xmpp-2/>: account for the bare JID, session for a full
// JID; to the bare JID: account; to a full JID with <private/>,
// <no-copy/> or a MUC user <x/>: session; chat: account; groupchat or
// headline: session; otherwise (normal) account when it has archivable
// content (<body/>, <subject/>, <store/>, reactions, out-of-band data,
// a correction, a retraction or an invitation), else session. A sent
// carbon is account scope unless its message carries <private/> or
// <no-copy/>.
//
// An account-scope message goes to every online session that has not had
// it; a session-scope one to ev.Session only. A message with no key at all
// (no stanza-id, origin-id or id) cannot be recognised again, so it goes
// only to ev.Session, once per arrival.
//
// The error is a syntax error or [ErrNotMessage] (nothing is delivered), or
// a *[HoldOverflowError] alongside the deliveries that did go out.
func (a *Account) Observe(ev Event) ([]Delivery, error) {
	p, err := parse(ev.Stanza, a.bare)
	if err != nil {
		return nil, err
	}
	if p.form == result {
		return a.observeResult(ev, &p), nil
	}
	out, m, scope := ev.Stanza, &p.outer, ev.Scope
	switch p.form {
	case received, sent:
		if (p.outer.from != "" && p.outer.from != a.bare) || p.innerRaw == nil {
			return nil, nil
		}
		m = &p.inner
		if m.typ == "groupchat" || m.typ == "headline" {
			return nil, nil
		}
		if p.form == received {
			out = p.innerRaw
		} else if scope == ScopeAuto {
			scope = ScopeAccount
			if m.private || m.noCopy {
				scope = ScopeSession
			}
		}
	}
	if scope == ScopeAuto {
		scope = scopeOf(m)
	}
	if scope == ScopeSession && p.form != plain {
		return nil, nil
	}
	k := a.keysOf(m, "", "")
	fanOut := scope == ScopeAccount && !k.empty()
	sender := m.from // a session never gets back what it sent
	if fanOut && m.sid != "" && m.sidBy == a.bare {
		a.remember(out, k, sender)
	}
	var deliveries []Delivery
	var heldCopy []byte
	var overflow []string
	for _, s := range a.sessions {
		if s.jid == sender || (!fanOut && s.name != ev.Session) {
			continue
		}
		if !s.catchingUp {
			if k.empty() || !s.seen.seen(k) {
				if !k.empty() {
					s.seen.add(k, -1)
				}
				deliveries = append(deliveries, Delivery{Session: s.name, Stanza: out})
			}
			continue
		}
		if !k.empty() && (s.seen.seen(k) || s.heldKeys.seen(k)) {
			continue
		}
		if len(s.held) >= a.memory {
			overflow = append(overflow, s.name)
			continue
		}
		if heldCopy == nil {
			heldCopy = bytes.Clone(out)
		}
		if !k.empty() {
			s.heldKeys.add(k, int32(len(s.held)))
		}
		s.held = append(s.held, heldItem{stanza: heldCopy, k: k})
	}
	if overflow != nil {
		for _, name := range overflow {
			a.Leave(name)
		}
		return deliveries, &HoldOverflowError{Sessions: overflow}
	}
	return deliveries, nil
}

// observeResult delivers a MAM result to the session that asked for it.
func (a *Account) observeResult(ev Event, p *parsed) []Delivery {
	s := a.find(ev.Session)
	if s == nil {
		return nil
	}
	archive := p.outer.from
	if archive == "" {
		archive = a.bare
	}
	// Remember only what the archive may speak for: the account's own, or
	// a room's own groupchat. A result forged by a stranger still goes to
	// the client, which checks results itself (XEP-0313 section 4.1.2).
	trusted := p.innerRaw != nil && (archive == a.bare ||
		(p.inner.typ == "groupchat" && bare(p.inner.from) == archive))
	if trusted {
		k := a.keysOf(&p.inner, archive, p.resultID)
		if !k.empty() {
			if !s.seen.seen(k) {
				s.seen.add(k, -1)
			}
			if i, ok := s.heldKeys.find(k); ok && s.catchingUp {
				s.held[s.heldKeys.slots[i].ref].cancelled = true
			}
		}
	}
	return []Delivery{{Session: s.name, Stanza: ev.Stanza}}
}

// scopeOf derives a message's scope by the entering rules of contract
// section 6, first match wins, exactly as package rewrite decides them.
func scopeOf(m *msg) Scope {
	full := strings.Contains(m.to, "/")
	switch {
	case m.typ == "error", m.to == "":
		return ScopeSession
	case m.xmpp2:
		if full {
			return ScopeSession
		}
		return ScopeAccount
	case !full:
		return ScopeAccount
	case m.private || m.noCopy, m.mucUser:
		return ScopeSession
	case m.typ == "chat":
		return ScopeAccount
	case m.typ == "groupchat" || m.typ == "headline":
		return ScopeSession
	case m.archivable:
		return ScopeAccount
	}
	return ScopeSession
}

// keysOf computes a message's keys. For a MAM result, archive and
// resultID give its stanza-id; otherwise the message's own stanza-id by
// the account (or, for groupchat, by the room) counts.
func (a *Account) keysOf(m *msg, archive, resultID string) keys {
	var k keys
	switch {
	case resultID != "":
		k.sid = hashKey(a.seed, kindSID, archive, resultID)
	case m.sid != "":
		k.sid = hashKey(a.seed, kindSID, m.sidBy, m.sid)
	}
	if m.oid != "" {
		k.oid = hashKey(a.seed, kindOID, bare(m.from), m.oid)
	}
	if m.id != "" {
		k.id = hashKey(a.seed, kindID, m.from, m.id)
	}
	return k
}
