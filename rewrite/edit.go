package rewrite

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// The elements the rules add, written the way the contract writes them.
const (
	elPrivate = "<private xmlns='" + ns.Carbons + "'/>"
	elNoCopy  = "<no-copy xmlns='" + ns.Hints + "'/>"
	elNoStore = "<no-store xmlns='" + ns.Hints + "'/>"
	elXMPP2   = "<xmpp-2 xmlns='" + ns.XMPP2 + "'/>"
	elXMPP1   = "<xmpp-1 xmlns='" + ns.XMPP2 + "'/>"
)

// edit is a set of changes to a message; everything it does not name is
// copied byte for byte.
type edit struct {
	remove  uint16   // drop the direct children of these kinds
	bareTo  bool     // cut the 'to' attribute's value at its resource
	appends []string // elements to add as the last children, in this order
}

func (e *edit) empty(s *stanza) bool {
	return !e.bareTo && len(e.appends) == 0 && !s.hasAny(e.remove)
}

// apply returns raw with the edit applied, or raw itself when there is
// nothing to do.
func (e *edit) apply(s *stanza, raw []byte) []byte {
	if e.empty(s) {
		return raw
	}
	extra := 0
	for _, a := range e.appends {
		extra += len(a)
	}
	if s.selfClosing {
		extra += len("</>") + len(s.qname)
	}
	out := make([]byte, 0, len(raw)+extra)
	pos := 0

	if e.bareTo {
		if vs, ve, ok := attrRange(raw, s.tagStart, "to"); ok {
			out = append(out, raw[:vs]...)
			out = appendBareTo(out, raw[vs:ve], s.to, raw[vs-1])
			pos = ve
		}
	}

	if s.selfClosing {
		if len(e.appends) == 0 {
			return append(out, raw[pos:]...)
		}
		// <message .../> becomes <message ...>added</message>.
		out = append(out, raw[pos:s.tagEnd-2]...)
		out = append(out, '>')
		for _, a := range e.appends {
			out = append(out, a...)
		}
		out = append(out, "</"...)
		out = append(out, s.qname...)
		out = append(out, '>')
		return append(out, raw[s.tagEnd:]...)
	}

	for _, spans := range [2][]span{s.spanArr[:s.nspans], s.more} {
		for _, sp := range spans {
			if bit(sp.kind)&e.remove != 0 {
				out = append(out, raw[pos:sp.start]...)
				pos = sp.end
			}
		}
	}
	out = append(out, raw[pos:s.closeStart]...)
	for _, a := range e.appends {
		out = append(out, a...)
	}
	return append(out, raw[s.closeStart:]...)
}

// appendBareTo writes the bare form of the 'to' value. When the raw value
// has no reference, the decoded value is the raw value and its first '/'
// starts the resource, so the bare JID is a prefix of the raw bytes and is
// copied as written. Otherwise the decoded bare JID is escaped for the
// attribute's quote.
func appendBareTo(out, rawValue, decoded []byte, quote byte) []byte {
	if bytes.IndexByte(rawValue, '&') < 0 {
		if i := bytes.IndexByte(rawValue, '/'); i >= 0 {
			return append(out, rawValue[:i]...)
		}
		return append(out, rawValue...)
	}
	for _, c := range bareJID(decoded) {
		switch {
		case c == '&':
			out = append(out, "&amp;"...)
		case c == '<':
			out = append(out, "&lt;"...)
		case c == quote && c == '\'':
			out = append(out, "&apos;"...)
		case c == quote && c == '"':
			out = append(out, "&quot;"...)
		case c == '\t':
			out = append(out, "&#x9;"...)
		case c == '\n':
			out = append(out, "&#xA;"...)
		case c == '\r':
			out = append(out, "&#xD;"...)
		default:
			out = append(out, c)
		}
	}
	return out
}

// isFullJID reports whether jid has a resourcepart. The first '/' ends the
// bare JID (RFC 7622 3.1: a localpart or domainpart cannot contain one); a
// '/' at the very start leaves no bare JID to route to, so it does not count.
func isFullJID(jid []byte) bool {
	return bytes.IndexByte(jid, '/') > 0
}

// bareJID returns jid without its resourcepart.
func bareJID(jid []byte) []byte {
	if i := bytes.IndexByte(jid, '/'); i > 0 {
		return jid[:i]
	}
	return jid
}
