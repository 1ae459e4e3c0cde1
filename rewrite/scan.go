package rewrite

import (
	"bytes"
	"unicode/utf8"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// The scanner reads the XML that XMPP stanzas are made of, in one pass and
// without allocating. It is deliberately partial: it accepts an input only
// when it is sure that encoding/xml (decode) accepts it too and would
// record the same shape, and it answers "not sure" for everything else:
// any error, CDATA, comments, processing instructions, names that are not
// plain ASCII, attributes not separated by whitespace, a reference or a CR
// in an attribute value the rules read, more than maxAttrs attributes on an
// element, more than maxPrefixes prefix declarations on the top element.
// FuzzScanAgreesWithDecode holds it to that.

const (
	maxAttrs    = 16
	maxPrefixes = 4
)

// attr is one attribute of a start tag, as byte ranges into the input.
type attr struct {
	name, value []byte
	plain       bool // value has no reference and no CR: raw bytes == decoded value
}

// prefixDecl is an xmlns:prefix='value' declaration on the top element.
type prefixDecl struct{ prefix, value []byte }

var clientNS = []byte(ns.Client)

// scan is the fast path of parse. ok is false when decode must decide.
func scan(raw []byte) (s stanza, ok bool) {
	var (
		stackBuf  [16][]byte
		stack     = stackBuf[:0]
		attrs     [maxAttrs]attr
		prefixes  [maxPrefixes]prefixDecl
		nprefix   int
		defaultNS = clientNS
		childAt   int
		childKind kind
	)
	i := skipSpace(raw, 0)
	for {
		if i+1 >= len(raw) || raw[i] != '<' {
			return s, false
		}
		switch raw[i+1] {
		case '!', '?':
			return s, false
		case '/':
			name, end, ok := endTag(raw, i)
			if !ok || len(stack) == 0 || !bytes.Equal(name, stack[len(stack)-1]) {
				return s, false
			}
			stack = stack[:len(stack)-1]
			switch len(stack) {
			case 0:
				s.closeStart = i
				return s, skipSpace(raw, end) == len(raw)
			case 1:
				s.child(childAt, end, childKind)
			}
			i = end
		default:
			name, n, end, selfClosing, ok := startTag(raw, i, &attrs)
			if !ok {
				return s, false
			}
			tag := attrs[:n]
			switch len(stack) {
			case 0:
				s.tagStart, s.tagEnd, s.selfClosing, s.qname = i, end, selfClosing, name
				for _, a := range tag {
					switch {
					case string(a.name) == "xmlns":
						if !a.plain {
							return s, false
						}
						defaultNS = a.value
					case bytes.HasPrefix(a.name, []byte("xmlns:")):
						if !a.plain || nprefix == maxPrefixes {
							return s, false
						}
						prefixes[nprefix] = prefixDecl{a.name[len("xmlns:"):], a.value}
						nprefix++
					case string(a.name) == "to":
						if !a.plain {
							return s, false
						}
						s.to = a.value
					case string(a.name) == "type":
						if !a.plain {
							return s, false
						}
						s.typ = a.value
					}
				}
				prefix, local := splitName(name)
				space := defaultNS
				if prefix != nil {
					space = lookup(prefix, nil, prefixes[:nprefix])
				}
				s.message = string(local) == "message" && string(space) == ns.Client
				if selfClosing {
					s.closeStart = end
					return s, skipSpace(raw, end) == len(raw)
				}
			case 1:
				prefix, local := splitName(name)
				var space []byte
				if prefix != nil {
					space = lookup(prefix, tag, prefixes[:nprefix])
				} else {
					space = defaultNS
					for _, a := range tag {
						if string(a.name) == "xmlns" {
							space = a.value
						}
					}
				}
				for _, a := range tag {
					if !a.plain && bytes.HasPrefix(a.name, []byte("xmlns")) {
						return s, false
					}
				}
				childAt, childKind = i, classify(space, local)
				if selfClosing {
					s.child(i, end, childKind)
				}
			}
			if !selfClosing {
				stack = append(stack, name)
			}
			i = end
		}
		// Character data up to the next tag.
		if i = text(raw, i); i < 0 {
			return s, false
		}
	}
}

// lookup resolves a prefix with the declarations on the element itself,
// then those on the top element; an unbound prefix resolves to nil, as in
// decode.
func lookup(prefix []byte, own []attr, root []prefixDecl) []byte {
	for _, a := range own {
		if len(a.name) == len("xmlns:")+len(prefix) && bytes.HasPrefix(a.name, []byte("xmlns:")) && bytes.Equal(a.name[len("xmlns:"):], prefix) {
			return a.value
		}
	}
	for _, d := range root {
		if bytes.Equal(d.prefix, prefix) {
			return d.value
		}
	}
	return nil
}

// splitName splits a qualified name that name() accepted (at most one
// colon, neither first nor last).
func splitName(qname []byte) (prefix, local []byte) {
	if k := bytes.IndexByte(qname, ':'); k >= 0 {
		return qname[:k], qname[k+1:]
	}
	return nil, qname
}

// name reads an XML name at raw[i:]: ASCII only, a letter or '_' first,
// at most one colon and not at the end. It returns the index after it.
func name(raw []byte, i int) (int, bool) {
	if i >= len(raw) || !isNameStart(raw[i]) {
		return 0, false
	}
	colon := -1
	j := i + 1
	for ; j < len(raw) && isNameByte(raw[j]); j++ {
		if raw[j] == ':' {
			if colon >= 0 {
				return 0, false
			}
			colon = j
		}
	}
	if j < len(raw) && raw[j] >= utf8.RuneSelf || colon == j-1 {
		return 0, false
	}
	return j, true
}

func isNameStart(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9' || c == ':' || c == '.' || c == '-'
}

// startTag reads the start tag at raw[i] == '<' into attrs. It returns the
// element's name, the number of attributes, the index after the tag, and
// whether it is self-closing. Tag walks the tag; startTag holds each piece
// to the stricter rules of this scanner.
func startTag(raw []byte, i int, attrs *[maxAttrs]attr) (qname []byte, n, end int, selfClosing, ok bool) {
	j, ok := name(raw, i+1)
	if !ok {
		return nil, 0, 0, false, false
	}
	// name stops where attrAt's looser name would: at a byte that is
	// neither an ASCII name byte nor the start of a non-ASCII character.
	qname = raw[i+1 : j]
	for {
		ns, ne, vs, ve, end, plain := attrAt(raw, j)
		if end != 0 {
			return qname, n, end, end > 0 && raw[end-2] == '/', end > 0
		}
		if ns == j || n == maxAttrs { // attributes must be separated by whitespace
			return nil, 0, 0, false, false
		}
		if _, ok := name(raw, ns); !ok { // it ends at ne, as the element's name does
			return nil, 0, 0, false, false
		}
		a := attr{name: raw[ns:ne], value: raw[vs:ve], plain: plain}
		for _, b := range attrs[:n] {
			if bytes.Equal(b.name, a.name) {
				return nil, 0, 0, false, false
			}
		}
		attrs[n] = a
		n++
		j = ve + 1
	}
}

// text checks character data from raw[i] up to the next '<' and returns
// that index, or -1 when not sure.
func text(raw []byte, i int) int {
	for i < len(raw) {
		if ordinary[raw[i]] {
			i++
			continue
		}
		switch c := raw[i]; {
		case c == '<':
			return i
		case c == '&':
			if i = referenceEnd(raw, i); i < 0 {
				return -1
			}
		case c == ']':
			if i+2 < len(raw) && raw[i+1] == ']' && raw[i+2] == '>' {
				return -1
			}
			i++
		case c == '\r':
			i++
		default:
			if i = char(raw, i); i < 0 {
				return -1
			}
		}
	}
	return -1
}

// ordinary marks the bytes that are a whole XML Char by themselves and mean
// nothing in text or in an attribute value, so the loops can step over them.
var ordinary = func() (t [256]bool) {
	for c := 0x20; c < 0x7F; c++ {
		t[c] = true
	}
	t['\t'], t['\n'] = true, true
	for _, c := range []byte("<&]'\"") {
		t[c] = false
	}
	return t
}()

// char checks the character at raw[i] (not '&', '<' or CR) and returns the
// index after it, or -1 for a byte sequence that is not a valid XML Char.
func char(raw []byte, i int) int {
	c := raw[i]
	if c < utf8.RuneSelf {
		if c < 0x20 && c != '\t' && c != '\n' {
			return -1
		}
		return i + 1
	}
	r, size := utf8.DecodeRune(raw[i:])
	if r == utf8.RuneError && size == 1 || !isChar(r) {
		return -1
	}
	return i + size
}

// referenceEnd checks the reference at raw[i] == '&' and returns the index
// after its ';', or -1 unless it is one of the five predefined entities or
// a character reference to a valid XML Char.
func referenceEnd(raw []byte, i int) int {
	c, n := reference(raw, i)
	if n == 0 || isSurrogate(c) {
		return -1
	}
	return i + n
}

func digit(c byte, base rune) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case base == 16 && 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case base == 16 && 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// isChar is the Char production of XML 1.0 (2.2).
func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// endTag reads the end tag at raw[i:] == "</" and returns its name and the
// index after it.
func endTag(raw []byte, i int) (qname []byte, end int, ok bool) {
	j, ok := name(raw, i+2)
	if !ok {
		return nil, 0, false
	}
	k := skipSpace(raw, j)
	if k >= len(raw) || raw[k] != '>' {
		return nil, 0, false
	}
	return raw[i+2 : j], k + 1, true
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && isSpace(raw[i]) {
		i++
	}
	return i
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

func isSpaceOnly(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}
