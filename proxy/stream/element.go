package stream

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// ElementName returns the qualified name of a framed element's start tag
// and the value of its own xmlns attribute (not an xmlns:prefix), with
// references resolved, by scanning bytes: the hot path of a 2.0 session
// needs to know what a unit is, not to decode it. It allocates only when
// the xmlns value holds a reference.
func ElementName(raw []byte) (name, xmlns []byte) {
	t := rewrite.ScanTag(raw)
	for {
		qname, v, ok := t.Next()
		if !ok {
			return t.Name(), nil
		}
		if string(qname) == "xmlns" {
			return t.Name(), rewrite.Unescape(v)
		}
	}
}

// IsStanza reports whether a top-level element name is a stanza, the unit
// that XEP-0198 counts.
func IsStanza(name []byte) bool {
	switch string(name) {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// CountStanzas counts the stanzas in a run of top-level elements the proxy
// wrote itself, for the upstream leg's XEP-0198 count.
func CountStanzas(b []byte) uint32 {
	f := NewFramer(bytes.NewReader(b), Limits{MaxBytes: len(b) + 1, MaxDepth: 64})
	f.inStream = true
	var n uint32
	for {
		u, err := f.Next()
		if err != nil {
			return n
		}
		if name, _ := ElementName(u.Raw); u.Kind == UnitElement && IsStanza(name) {
			n++
		}
	}
}
