package rewrite

import (
	"errors"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// Errors returned for input that is not one stanza. When the decoder found
// the problem, they wrap its *xml.SyntaxError too.
var (
	// ErrNotWellFormed: the input is not exactly one well-formed element
	// (RFC 6120 4.9.3.13 <not-well-formed/>).
	ErrNotWellFormed = errors.New("rewrite: not a single well-formed element")
	// ErrRestrictedXML: the input holds a comment, processing instruction or
	// DTD, which XMPP forbids (RFC 6120 11.1, <restricted-xml/>).
	ErrRestrictedXML = errors.New("rewrite: comment, processing instruction or DTD in a stanza")
)

// kind classifies a direct child of <message>; the rules only ever ask
// "is there one" (a bit in stanza.has) or "remove them all" (the spans).
type kind uint8

const (
	kOther            kind = iota
	kPrivate               // <private xmlns='urn:xmpp:carbons:2'/>
	kNoCopy                // <no-copy xmlns='urn:xmpp:hints'/>
	kNoStore               // <no-store xmlns='urn:xmpp:hints'/>
	kNoPermanentStore      // <no-permanent-store xmlns='urn:xmpp:hints'/>
	kXMPP2                 // <xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>
	kXMPP1                 // <xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>
	kMUCUser               // <x xmlns='http://jabber.org/protocol/muc#user'/>
	kArchivable            // content that makes a normal message worth every session
)

func bit(k kind) uint16 { return 1 << k }

// modifiers are the 1.0 routing modifiers of contract section 6.
const modifiers = 1<<kPrivate | 1<<kNoCopy | 1<<kNoStore | 1<<kNoPermanentStore

// removable kinds are remembered with their byte range.
const removable = modifiers | 1<<kXMPP1

// classify names a direct child of <message> from its namespace and local
// name. It takes bytes so that the scanner needs no string conversion.
func classify(space, local []byte) kind {
	switch string(space) {
	case ns.Carbons:
		if string(local) == "private" {
			return kPrivate
		}
	case ns.Hints:
		switch string(local) {
		case "no-copy":
			return kNoCopy
		case "no-store":
			return kNoStore
		case "no-permanent-store":
			return kNoPermanentStore
		case "store":
			return kArchivable
		}
	case ns.XMPP2:
		switch string(local) {
		case "xmpp-2":
			return kXMPP2
		case "xmpp-1":
			return kXMPP1
		}
	case ns.MUCUser:
		if string(local) == "x" {
			return kMUCUser
		}
	case ns.Client:
		if string(local) == "body" || string(local) == "subject" {
			return kArchivable
		}
	case ns.Reactions:
		if string(local) == "reactions" {
			return kArchivable
		}
	case ns.OOB, ns.Conference:
		if string(local) == "x" {
			return kArchivable
		}
	case ns.Correct:
		if string(local) == "replace" {
			return kArchivable
		}
	case ns.Retract:
		if string(local) == "retract" {
			return kArchivable
		}
	}
	return kOther
}

// span is the byte range of one direct child of <message>.
type span struct {
	start, end int
	kind       kind
}

// stanza is what the rules need to know about one top-level element, with
// byte offsets into the input so that the output can be spliced from it.
// It holds no pointer into itself, so it can be returned by value.
type stanza struct {
	message     bool   // <message/> in jabber:client
	qname       []byte // the start tag's name as written, e.g. "message"
	tagStart    int    // offset of the start tag's '<'
	tagEnd      int    // offset just past the start tag's '>'
	selfClosing bool   // <message .../>
	closeStart  int    // offset of the end tag ("</message>"); tagEnd when self-closing
	to          []byte // decoded 'to', empty when absent
	typ         []byte // decoded 'type', empty when absent
	has         uint16 // bit(kind) for every kind of direct child present

	// The direct children of a removable kind, in document order: the
	// first ones in a fixed array, so a typical stanza costs no allocation.
	nspans  int
	spanArr [6]span
	more    []span
}

func (s *stanza) hasAny(mask uint16) bool { return s.has&mask != 0 }

// child records a direct child of the element.
func (s *stanza) child(start, end int, k kind) {
	s.has |= bit(k)
	if bit(k)&removable == 0 {
		return
	}
	if s.nspans < len(s.spanArr) {
		s.spanArr[s.nspans] = span{start, end, k}
		s.nspans++
		return
	}
	s.more = append(s.more, span{start, end, k})
}

// spans returns the removable children; it allocates, so it is for tests.
func (s *stanza) spans() []span {
	return append(append([]span(nil), s.spanArr[:s.nspans]...), s.more...)
}

// parse checks that raw is exactly one well-formed element, optionally
// surrounded by whitespace, and records its shape. The scanner handles the
// XML that XMPP traffic is made of without allocating; anything it is not
// sure about (CDATA, a comment, a non-ASCII name, a reference in an address,
// and every error) goes to the encoding/xml decoder, which decides.
func parse(raw []byte) (stanza, error) {
	if s, ok := scan(raw); ok {
		return s, nil
	}
	return decode(raw)
}
