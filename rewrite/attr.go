package rewrite

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// This file is the one reader of start-tag attributes in the module: the
// proxy's routing decisions, rewrite's own scanner and its 'to' edit all
// walk attributes through Tag. It follows the start-tag grammar of XML 1.0
// (3.1) byte by byte, so an attribute name is only recognised where a name
// can begin, a quoted value is taken whole (a '>' or a "to='x'" inside it
// is data), and the tag ends at the first '>' outside quotes. A value must
// be one encoding/xml accepts (no '<', only references it knows, only XML
// characters); the walk stops at the first that is not, so no attribute
// is read past a fault. Names are only delimited, not checked: the proxy's
// framer has checked them, and the strict scanner (scan.go) checks them
// again on top of Tag.
//
// A value is handed out raw, as a subslice of the input, so that reading
// one allocates nothing. Unescape, ValueEqual and ValueEqualFold resolve
// what encoding/xml resolves: the five predefined entities, decimal and
// hexadecimal character references, and CR LF or CR as LF.

// Tag walks the start tag at the beginning of a stanza's bytes. The zero
// Tag is an empty, malformed one.
type Tag struct {
	raw   []byte
	name  []byte
	i     int  // where the next attribute, or the tag's end, is looked for
	end   int  // 0 while walking, then the index after the tag, or -1
	plain bool // the value next returned last has no reference and no CR
}

// ScanTag starts reading the start tag at the beginning of raw, after any
// whitespace. Nothing is read past the tag's end.
func ScanTag(raw []byte) Tag {
	return scanTagAt(raw, skipSpace(raw, 0))
}

// scanTagAt starts reading the start tag at raw[lt], which should be '<'.
func scanTagAt(raw []byte, lt int) Tag {
	if lt >= len(raw) || raw[lt] != '<' {
		return Tag{end: -1}
	}
	j := lt + 1
	for j < len(raw) && isTagNameByte(raw[j]) {
		j++
	}
	if j == lt+1 {
		return Tag{end: -1}
	}
	return Tag{raw: raw, name: raw[lt+1 : j], i: j}
}

// Name returns the element's qualified name as written, or nil when raw
// does not begin with a start tag.
func (t *Tag) Name() []byte { return t.name }

// Next returns the next attribute's qualified name as written and its raw
// value (between the quotes, references unresolved). ok is false once the
// tag has ended or something that is not an attribute was met; End then
// tells which.
func (t *Tag) Next() (name, value []byte, ok bool) {
	ns, ne, vs, ve, ok := t.next()
	if !ok {
		return nil, nil, false
	}
	return t.raw[ns:ne], t.raw[vs:ve], true
}

// next is Next in indexes into raw: the name is raw[ns:ne], the value
// raw[vs:ve], and raw[vs-1] is its quote. t.plain tells whether the value
// reads as it is written.
func (t *Tag) next() (ns, ne, vs, ve int, ok bool) {
	if t.end != 0 {
		return 0, 0, 0, 0, false
	}
	ns, ne, vs, ve, end, plain := attrAt(t.raw, t.i)
	if end != 0 {
		t.end = end
		return 0, 0, 0, 0, false
	}
	t.i, t.plain = ve+1, plain
	return ns, ne, vs, ve, true
}

// End reads whatever attributes are left and reports the index in raw just
// after the tag's '>', and whether the tag ended in "/>". end is -1 when
// raw does not begin with a complete, well-formed start tag.
func (t *Tag) End() (end int, selfClosing bool) {
	for t.end == 0 {
		t.next()
	}
	return t.end, t.end > 0 && t.raw[t.end-2] == '/'
}

// attrAt reads what comes next in a start tag from raw[i], after the
// element's name or an attribute's closing quote: either an attribute,
// named raw[ns:ne] with the value raw[vs:ve] (end 0, and plain when the
// value has no reference and no CR), or the tag's end (end is the index
// after its '>'), or something else (end -1). It is a function of its
// arguments, not a method, so that a caller's loop keeps its state in
// registers.
func attrAt(raw []byte, i int) (ns, ne, vs, ve, end int, plain bool) {
	i = skipSpace(raw, i)
	switch {
	case i >= len(raw):
		return 0, 0, 0, 0, -1, false
	case raw[i] == '>':
		return 0, 0, 0, 0, i + 1, false
	case raw[i] == '/':
		if i+1 < len(raw) && raw[i+1] == '>' {
			return 0, 0, 0, 0, i + 2, false
		}
		return 0, 0, 0, 0, -1, false
	}
	ne = i
	for ne < len(raw) && isTagNameByte(raw[ne]) {
		ne++
	}
	k := skipSpace(raw, ne)
	if ne == i || k >= len(raw) || raw[k] != '=' {
		return 0, 0, 0, 0, -1, false
	}
	k = skipSpace(raw, k+1)
	if k >= len(raw) || raw[k] != '\'' && raw[k] != '"' {
		return 0, 0, 0, 0, -1, false
	}
	vs = k + 1
	if ve, plain = quoted(raw, vs, raw[k]); ve < 0 {
		return 0, 0, 0, 0, -1, false
	}
	return i, ne, vs, ve, 0, plain
}

// Attr returns the raw value of the attribute with exactly the qualified
// name qname ("xml:lang" is not "lang", "xmlns:a" is not "xmlns") in the
// start tag at the beginning of raw: a subslice of raw, references
// unresolved. If the attribute is written twice, which is not well-formed
// (the server refuses the stream), the first one counts.
func Attr(raw []byte, qname string) (value []byte, ok bool) {
	t := ScanTag(raw)
	for {
		name, value, ok := t.Next()
		if !ok {
			return nil, false
		}
		if string(name) == qname {
			return value, true
		}
	}
}

// AttrEqual reports whether the start tag at the beginning of raw has the
// attribute qname and its value, references resolved, is s. It does not
// allocate.
func AttrEqual(raw []byte, qname, s string) bool {
	v, ok := Attr(raw, qname)
	return ok && ValueEqual(v, s)
}

// AttrEqualFold is AttrEqual under Unicode simple case folding, as
// strings.EqualFold.
func AttrEqualFold(raw []byte, qname, s string) bool {
	v, ok := Attr(raw, qname)
	return ok && ValueEqualFold(v, s)
}

// TagEnd returns the index just after the start tag at the beginning of raw
// (its first '>' outside quotes), or -1 when there is no complete one.
func TagEnd(raw []byte) int {
	t := ScanTag(raw)
	end, _ := t.End()
	return end
}

// Unescape returns a raw attribute value as encoding/xml reads it: the five
// predefined entities and character references resolved, CR LF and CR
// turned into LF. It returns v itself, without allocating, when there is
// nothing to resolve. A reference that encoding/xml would refuse (unknown
// entity, missing ';', not a character) is kept as written.
func Unescape(v []byte) []byte {
	if bytes.IndexByte(v, '&') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); {
		r, adv, raw := valueUnit(v, i)
		if raw {
			out = append(out, v[i])
		} else {
			out = utf8.AppendRune(out, r)
		}
		i += adv
	}
	return out
}

// ValueEqual reports whether the raw attribute value v, unescaped, equals
// s, without allocating.
func ValueEqual(v []byte, s string) bool {
	var buf [utf8.UTFMax]byte
	j := 0
	for i := 0; i < len(v); {
		r, adv, raw := valueUnit(v, i)
		if raw {
			if j >= len(s) || s[j] != v[i] {
				return false
			}
			j++
		} else {
			n := utf8.EncodeRune(buf[:], r)
			if len(s)-j < n || s[j:j+n] != string(buf[:n]) {
				return false
			}
			j += n
		}
		i += adv
	}
	return j == len(s)
}

// ValueEqualFold reports whether the raw attribute value v, unescaped,
// equals s under Unicode simple case folding, exactly as strings.EqualFold
// compares two strings, without allocating.
func ValueEqualFold(v []byte, s string) bool {
	i := 0
	for _, sr := range s {
		if i >= len(v) {
			return false
		}
		vr, adv, raw := valueUnit(v, i)
		if raw {
			vr, adv = utf8.DecodeRune(v[i:])
		}
		i += adv
		if !foldEqual(vr, sr) {
			return false
		}
	}
	return i == len(v)
}

// foldEqual is the rune comparison of strings.EqualFold.
func foldEqual(r, t rune) bool {
	if r == t {
		return true
	}
	if t < r {
		r, t = t, r
	}
	if t < utf8.RuneSelf {
		return 'A' <= r && r <= 'Z' && t == r+'a'-'A'
	}
	f := unicode.SimpleFold(r)
	for f != r && f < t {
		f = unicode.SimpleFold(f)
	}
	return f == t
}

// quoted checks an attribute value from raw[i] up to its closing quote,
// and returns the quote's index (-1 when encoding/xml would refuse the
// value) and whether the value is free of references and CRs.
func quoted(raw []byte, i int, quote byte) (end int, plain bool) {
	plain = true
	for i < len(raw) {
		if ordinary[raw[i]] {
			i++
			continue
		}
		c := raw[i]
		switch {
		case c == quote:
			return i, plain
		case c == '<':
			return -1, false
		case c == '&':
			plain = false
			_, n := reference(raw, i)
			if n == 0 {
				return -1, false
			}
			i += n
		case c == '\r':
			plain = false
			i++
		default:
			if i = char(raw, i); i < 0 {
				return -1, false
			}
		}
	}
	return -1, false
}

// valueUnit reads one unit of a raw attribute value at v[i]: a reference
// or a line end that stands for the rune r (raw false), or a byte that
// stands for itself (raw true). adv is how many bytes of v it took.
func valueUnit(v []byte, i int) (r rune, adv int, raw bool) {
	switch v[i] {
	case '&':
		if r, n := reference(v, i); n > 0 {
			if isSurrogate(r) {
				r = utf8.RuneError // what encoding/xml makes of it
			}
			return r, n, false
		}
	case '\r':
		if i+1 < len(v) && v[i+1] == '\n' {
			return '\n', 2, false
		}
		return '\n', 1, false
	}
	return 0, 1, true
}

// reference reads the entity or character reference at v[i] == '&' as
// encoding/xml does, and returns the code point it names and its length
// ('&' to ';'), or n == 0 when encoding/xml refuses it. encoding/xml takes
// a reference to a surrogate (and reads it as U+FFFD), so it is returned
// as it is, for the caller to decide.
func reference(v []byte, i int) (c rune, n int) {
	rest := v[i+1:]
	if len(rest) == 0 || rest[0] != '#' {
		for _, e := range [...]struct {
			name string
			r    rune
		}{{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"apos;", '\''}, {"quot;", '"'}} {
			if bytes.HasPrefix(rest, []byte(e.name)) {
				return e.r, 1 + len(e.name)
			}
		}
		return 0, 0
	}
	j, base := 1, rune(10)
	if j < len(rest) && rest[j] == 'x' { // encoding/xml knows no "&#X"
		j, base = 2, 16
	}
	digits := j
	for ; j < len(rest); j++ {
		d := digit(rest[j], base)
		if d < 0 {
			break
		}
		if c <= unicode.MaxRune { // leading zeros are fine, so keep reading
			c = c*base + d
		}
	}
	if j == digits || j >= len(rest) || rest[j] != ';' || !isChar(c) && !isSurrogate(c) {
		return 0, 0
	}
	return c, 1 + j + 1
}

func isSurrogate(r rune) bool { return 0xD800 <= r && r <= 0xDFFF }

// isTagNameByte reports a byte that can be part of a name in a start tag:
// what encoding/xml reads as a name before checking it, ASCII name
// characters and every byte of a multi-byte UTF-8 sequence.
func isTagNameByte(c byte) bool { return tagNameByte[c] }

// tagNameByte is isTagNameByte as a table: names are most of a tag's bytes.
var tagNameByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= utf8.RuneSelf || isNameByte(byte(c))
	}
	return t
}()

// attrRange finds the value of the attribute qname in the start tag at
// raw[lt] and returns its range in raw, between the quotes.
func attrRange(raw []byte, lt int, qname string) (vs, ve int, ok bool) {
	t := scanTagAt(raw, lt)
	for i := t.i; t.end == 0; {
		ns, ne, vs, ve, end, _ := attrAt(raw, i)
		if end != 0 {
			break
		}
		if string(raw[ns:ne]) == qname {
			return vs, ve, true
		}
		i = ve + 1
	}
	return 0, 0, false
}
