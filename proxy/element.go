package proxy

import (
	"bytes"
)

// elementName returns the qualified name of a framed element's start tag
// and the value of its xmlns attribute, by scanning bytes: the hot path of a
// 2.0 session needs to know what a unit is, not to decode it.
func elementName(raw []byte) (name, xmlns []byte) {
	i := bytes.IndexByte(raw, '<')
	if i < 0 {
		return nil, nil
	}
	j := i + 1
	for j < len(raw) && isNameByte(raw[j]) {
		j++
	}
	name = raw[i+1 : j]
	end := bytes.IndexByte(raw[j:], '>')
	if end < 0 {
		return name, nil
	}
	return name, attrValue(raw[j:j+end], "xmlns")
}

// attrValue finds name='value' or name="value" in a start tag's attributes.
func attrValue(tag []byte, name string) []byte {
	for off := 0; off < len(tag); {
		k := bytes.Index(tag[off:], []byte(name))
		if k < 0 {
			return nil
		}
		k += off
		after := k + len(name)
		precededBySpace := k > 0 && isSpace(tag[k-1])
		if precededBySpace && after+1 < len(tag) && tag[after] == '=' && (tag[after+1] == '\'' || tag[after+1] == '"') {
			q := tag[after+1]
			v := tag[after+2:]
			if e := bytes.IndexByte(v, q); e >= 0 {
				return v[:e]
			}
			return nil
		}
		off = after
	}
	return nil
}

// isStanza reports whether a top-level element name is a stanza, the unit
// that XEP-0198 counts.
func isStanza(name []byte) bool {
	switch string(name) {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// countStanzas counts the stanzas in a run of top-level elements the proxy
// wrote itself, for the upstream leg's XEP-0198 count.
func countStanzas(b []byte) uint32 {
	f := NewFramer(bytes.NewReader(b), Limits{MaxBytes: len(b) + 1, MaxDepth: 64})
	f.inStream = true
	var n uint32
	for {
		u, err := f.Next()
		if err != nil {
			return n
		}
		if name, _ := elementName(u.Raw); u.Kind == UnitElement && isStanza(name) {
			n++
		}
	}
}
