package rewrite

// Scope says which of an account's 2.0 sessions get a message.
type Scope int

const (
	// ScopeSession: only the session the upstream delivered the message to.
	// It is the zero value, so a forgotten Route never fans out.
	ScopeSession Scope = iota
	// ScopeAccount: every online 2.0 session of the account, once each.
	ScopeAccount
)

// String returns "session" or "account".
func (s Scope) String() string {
	switch s {
	case ScopeSession:
		return "session"
	case ScopeAccount:
		return "account"
	}
	return "Scope(?)"
}

// Route is the outcome of the entering rules for one message.
type Route struct {
	// Scope says which 2.0 sessions of the account get the message.
	Scope Scope
	// Transient: the rules keep the message out of the account's history.
	// It is never part of a catch-up (a sync after a bind), and a copy of it
	// found in the archive is to be skipped. True for every ScopeSession
	// message, for every headline, and for a 1.0 message that told the
	// upstream not to archive it (<no-store/>, <no-permanent-store/>).
	Transient bool
	// Marked2 reports that the message carried <xmpp-2/>: it was sent by a
	// 2.0 client and keeps 2.0 semantics.
	Marked2 bool
}

// Leaving applies the rules for a 2.0 client's stanza going upstream
// (contract section 6, "Leaving the 2.0 realm"):
//
//   - a message to a full JID gets <private xmlns='urn:xmpp:carbons:2'/>,
//     <no-copy xmlns='urn:xmpp:hints'/> and <no-store xmlns='urn:xmpp:hints'/>,
//     each only if it has no such direct child yet;
//   - every message gets <xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>, once.
//
// Added elements become the message's last children; every other byte is
// kept. A message without 'to' is addressed to the sender's own bare JID
// (RFC 6120 10.3). Non-message stanzas are returned unchanged. When nothing
// changes, the result is stanza itself, not a copy. Leaving is idempotent.
// The error wraps ErrNotWellFormed or ErrRestrictedXML.
func Leaving(stanza []byte) ([]byte, error) {
	s, err := parse(stanza)
	if err != nil {
		return nil, err
	}
	if !s.message {
		return stanza, nil
	}
	var buf [4]string
	e := edit{appends: buf[:0]}
	if isFullJID(s.to) {
		if !s.hasAny(bit(kPrivate)) {
			e.appends = append(e.appends, elPrivate)
		}
		if !s.hasAny(bit(kNoCopy)) {
			e.appends = append(e.appends, elNoCopy)
		}
		if !s.hasAny(bit(kNoStore)) {
			e.appends = append(e.appends, elNoStore)
		}
	}
	if !s.hasAny(bit(kXMPP2)) {
		e.appends = append(e.appends, elXMPP2)
	}
	return e.apply(&s, stanza), nil
}

// Entering applies the rules for a message from upstream to a 2.0 session
// (contract section 6, "Entering the 2.0 realm") and returns the rewritten
// stanza and its Route. The rules, first match wins:
//
//   - type='error': this session only, unchanged apart from the marks;
//   - no 'to': from the server to this session, this session only;
//   - carries <xmpp-2/>: by address, bare JID to the account, full JID to
//     this session only;
//   - to the bare JID: the account;
//   - to a full JID with <private/> or <no-copy/>: this session only;
//   - a MUC private message (<x xmlns='http://jabber.org/protocol/muc#user'/>):
//     this session only;
//   - type chat: rerouted to the bare JID, the account;
//   - type normal (or absent, or unknown) with archivable content: as chat;
//     without it, this session only;
//   - type groupchat or headline: this session only.
//
// Rerouting rewrites the 'to' attribute to the bare JID. A message that
// carried <xmpp-2/> loses every direct <private/>, <no-copy/>, <no-store/>,
// <no-permanent-store/> (and a stray <xmpp-1/>) child; any other message gets
// <xmpp-1 xmlns='urn:xmpp:xmpp2:0'/> as its last child unless it has one.
// Nested elements (inside <forwarded/>, say) are never looked at, and every
// byte not named here is kept. Non-message stanzas come back unchanged with
// ScopeSession. When nothing changes, the result is stanza itself.
// Entering is idempotent. The error wraps ErrNotWellFormed or
// ErrRestrictedXML.
func Entering(stanza []byte) ([]byte, Route, error) {
	s, err := parse(stanza)
	if err != nil {
		return nil, Route{}, err
	}
	if !s.message {
		return stanza, Route{Scope: ScopeSession}, nil
	}
	r := Route{Scope: ScopeSession, Marked2: s.hasAny(bit(kXMPP2))}
	var e edit
	full := isFullJID(s.to)
	switch {
	case string(s.typ) == "error":
	case len(s.to) == 0:
	case r.Marked2:
		if !full {
			r.Scope = ScopeAccount
		}
	case !full:
		r.Scope = ScopeAccount
	case s.hasAny(bit(kPrivate) | bit(kNoCopy)):
	case s.hasAny(bit(kMUCUser)):
	case string(s.typ) == "chat":
		r.Scope, e.bareTo = ScopeAccount, true
	case string(s.typ) == "groupchat", string(s.typ) == "headline":
	default: // normal (RFC 6121 5.2.2: absent or unknown type means normal)
		if s.hasAny(bit(kArchivable)) {
			r.Scope, e.bareTo = ScopeAccount, true
		}
	}
	// A 2.0 message's hints are stripped below, so they do not count for
	// it: the address decides, and Entering stays idempotent.
	r.Transient = r.Scope == ScopeSession || string(s.typ) == "headline" ||
		!r.Marked2 && s.hasAny(bit(kNoStore)|bit(kNoPermanentStore))

	if r.Marked2 {
		e.remove = removable
	} else if !s.hasAny(bit(kXMPP1)) {
		var buf [1]string
		buf[0] = elXMPP1
		e.appends = buf[:]
	}
	return e.apply(&s, stanza), r, nil
}
