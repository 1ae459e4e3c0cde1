package stream

import "github.com/xmpp2proxy/xmpp2proxy/rewrite"

// Every decision the proxy takes on a stanza's attributes reads them
// through rewrite's start-tag scanner (rewrite.Tag), the one attribute
// reader of the module: it respects quoting, so a "to='x'" inside another
// attribute's value is data and a '>' inside a value does not end the tag,
// it matches qualified names exactly (xml:lang is not lang), and it
// resolves references as encoding/xml does. These helpers only adapt its
// answers to what the call sites compare with. Each reads the start tag at
// the beginning of a unit and nothing after it, so callers pass the whole
// unit.

// AttrBytes returns the value of the attribute qname of the unit's start
// tag, references resolved, or nil when there is none. It allocates only
// when the value holds a reference or a CR.
func AttrBytes(raw []byte, qname string) []byte {
	v, ok := rewrite.Attr(raw, qname)
	if !ok {
		return nil
	}
	return rewrite.Unescape(v)
}

// AttrString is AttrBytes as a string, "" when there is none, so that the
// client's id="a'b" and the server's id='a&apos;b' compare equal.
func AttrString(raw []byte, qname string) string {
	return string(AttrBytes(raw, qname))
}

// HasAttr reports whether the unit's start tag has the attribute qname.
func HasAttr(raw []byte, qname string) bool {
	_, ok := rewrite.Attr(raw, qname)
	return ok
}

// AttrEqualFold reports whether the unit's start tag has the attribute
// qname and its value, references resolved, equals s as strings.EqualFold
// has it. It does not allocate.
func AttrEqualFold(raw []byte, qname, s string) bool {
	return rewrite.AttrEqualFold(raw, qname, s)
}
