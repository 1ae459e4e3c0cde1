package rewrite

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// hostile is the message that fooled the byte sniffing the proxy had: a
// "to" inside the id's value was taken for the message's to.
const hostile = `<message id="x to='bob@localhost/gone'" to='bob@localhost/sn'><body>hi</body></message>`

func TestAttrReadsTheStartTagByTheGrammar(t *testing.T) {
	tests := []struct {
		name, raw, qname string
		want             string
		found            bool
	}{
		{"a to inside another attribute's value is not the to",
			hostile, "to", "bob@localhost/sn", true},
		{"an attribute whose value only holds a to has no to",
			`<message id="x to='bob@localhost/gone'"><body/></message>`, "to", "", false},
		{"a name that ends in the name looked for is another attribute",
			`<message xto='a' data-to='b' to='c'/>`, "to", "c", true},
		{"a > inside a quoted value does not end the tag",
			`<message id='a>b' to='c'>`, "to", "c", true},
		{"a /> inside a quoted value does not end the tag",
			`<message id="/>" to='c'/>`, "to", "c", true},
		{"xml:lang is not lang",
			`<message xml:lang='en'/>`, "lang", "", false},
		{"xml:lang is read by its qualified name",
			`<message xml:lang='en'/>`, "xml:lang", "en", true},
		{"xmlns:foo is not xmlns",
			`<a xmlns:foo='urn:x'/>`, "xmlns", "", false},
		{"xmlns is read when a prefix declaration comes first",
			`<a xmlns:foo='urn:x' xmlns='urn:xmpp:sm:3'/>`, "xmlns", "urn:xmpp:sm:3", true},
		{"double and single quotes: a single quote inside double quotes is data",
			`<message id="it's" to='c'/>`, "id", "it's", true},
		{"double and single quotes: a double quote inside single quotes is data",
			`<message id='say "hi"' to="c"/>`, "id", `say "hi"`, true},
		{"entities in the value are resolved",
			`<message id='a&amp;b&lt;c&gt;d&apos;e&quot;f'/>`, "id", `a&b<c>d'e"f`, true},
		{"character references in the value are resolved, decimal and hex",
			`<message to='bob&#64;localhost&#x2F;sn'/>`, "to", "bob@localhost/sn", true},
		{"a CR LF in the value reads as LF, as encoding/xml has it",
			"<message id='a\r\nb\rc'/>", "id", "a\nb\nc", true},
		{"whitespace around = is allowed",
			"<message to \n= \t'c'/>", "to", "c", true},
		{"attributes not separated by whitespace are still read, as encoding/xml does",
			`<message id='1'to='c'/>`, "to", "c", true},
		{"of two attributes with the same name, which is not well-formed, the first counts",
			`<message to='a' to='b'/>`, "to", "a", true},
		{"nothing after the start tag is read",
			`<message><x to='c'/></message>`, "to", "", false},
		{"an empty value is there",
			`<presence to=''/>`, "to", "", true},
		{"whitespace before the tag is skipped",
			" \n<message to='c'/>", "to", "c", true},
		{"no attribute is read past a value encoding/xml refuses",
			`<message id='&bogus;' to='c'/>`, "to", "", false},
		{"no attribute is read past an unbalanced quote",
			`<message id='x to='c'/>`, "to", "", false},
		{"no attribute is read past a < in a value",
			`<message id='<' to='c'/>`, "to", "", false},
		{"an attribute without a value ends the reading",
			`<message checked to='c'/>`, "to", "", false},
		{"not a start tag: nothing is read",
			`to='c'`, "to", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := Attr([]byte(tc.raw), tc.qname)
			if ok != tc.found || ok && string(Unescape(v)) != tc.want {
				t.Fatalf("Attr(%q, %q) = %q (unescaped %q), %v; want %q, %v", tc.raw, tc.qname, v, Unescape(v), ok, tc.want, tc.found)
			}
			if got := AttrEqual([]byte(tc.raw), tc.qname, tc.want); got != tc.found {
				t.Fatalf("AttrEqual(%q, %q, %q) = %v, want %v", tc.raw, tc.qname, tc.want, got, tc.found)
			}
		})
	}
}

func TestTagFindsTheEndOfTheStartTagAndItsName(t *testing.T) {
	tests := []struct {
		name, raw, elem string
		end             int // -1: no complete start tag
		self            bool
	}{
		{"a > inside a quoted value does not end the tag", `<message id='a>b'>x</message>`, "message", len(`<message id='a>b'>`), false},
		{"a /> inside a quoted value does not end the tag", `<message id="/>"/>`, "message", len(`<message id="/>"/>`), true},
		{"a self-closing tag ends after />", `<r xmlns='urn:xmpp:sm:3'/>`, "r", len(`<r xmlns='urn:xmpp:sm:3'/>`), true},
		{"whitespace before > belongs to the tag", "<a x='1' \n>", "a", len("<a x='1' \n>"), false},
		{"a prefixed element name is read whole", `<stream:error><x/></stream:error>`, "stream:error", len(`<stream:error>`), false},
		{"a tag cut inside a value has no end", `<message id='a>b`, "message", -1, false},
		{"a / not followed by > is no end", `<a / >`, "a", -1, false},
		{"a tag with no > has no end", `<a x='1'`, "a", -1, false},
		{"no name, no tag", `< a>`, "", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tag := ScanTag([]byte(tc.raw))
			if string(tag.Name()) != tc.elem {
				t.Fatalf("Name() = %q, want %q", tag.Name(), tc.elem)
			}
			end, self := tag.End()
			if end != tc.end || self != tc.self {
				t.Fatalf("End() = %d, %v; want %d, %v", end, self, tc.end, tc.self)
			}
			if got := TagEnd([]byte(tc.raw)); got != tc.end {
				t.Fatalf("TagEnd = %d, want %d", got, tc.end)
			}
		})
	}
}

func TestValueComparisonsResolveReferences(t *testing.T) {
	tests := []struct {
		name, raw, s string
		equal, fold  bool
	}{
		{"a plain value equals itself", "bob@localhost/sn", "bob@localhost/sn", true, true},
		{"entities are resolved before comparing", "a&apos;b&amp;c", "a'b&c", true, true},
		{"character references are resolved before comparing", "&#98;ob&#x40;localhost", "bob@localhost", true, true},
		{"a reference is not the text it is written with", "a&amp;b", "a&amp;b", false, false},
		{"a prefix is not equal", "bob@localhost", "bob@localhost/sn", false, false},
		{"a longer value is not equal", "bob@localhost/sn", "bob@localhost", false, false},
		{"case differs: equal only under folding", "Bob@LocalHost", "bob@localhost", false, true},
		{"folding covers non-ASCII, as strings.EqualFold", "&#xC9;t&#xE9;", "étÉ", false, true},
		{"a CR LF compares as LF", "a\r\nb", "a\nb", true, true},
		{"a reference encoding/xml refuses compares as written", "a&bogus;", "a&bogus;", true, true},
		{"empty equals empty", "", "", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValueEqual([]byte(tc.raw), tc.s); got != tc.equal {
				t.Errorf("ValueEqual(%q, %q) = %v, want %v", tc.raw, tc.s, got, tc.equal)
			}
			if got := ValueEqualFold([]byte(tc.raw), tc.s); got != tc.fold {
				t.Errorf("ValueEqualFold(%q, %q) = %v, want %v", tc.raw, tc.s, got, tc.fold)
			}
			if got := string(Unescape([]byte(tc.raw))) == tc.s; got != tc.equal {
				t.Errorf("Unescape(%q) = %q, equal to %q: %v, want %v", tc.raw, Unescape([]byte(tc.raw)), tc.s, got, tc.equal)
			}
		})
	}
}

// Reading the attributes routing looks at allocates nothing: the values
// are subslices of the stanza, and the comparisons resolve references on
// the fly.
func TestReadingToIDAndTypeDoesNotAllocate(t *testing.T) {
	raw := []byte(`<message xmlns='jabber:client' from='bob@example.net/laptop' to='alice@example.com/phone' type='chat' id='5f3a9c1e-8d2b' xml:lang='en'><body>hi</body></message>`)
	var sink int
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Attr to, id, type", func() {
			for _, n := range [...]string{"to", "id", "type"} {
				v, _ := Attr(raw, n)
				sink += len(v)
			}
		}},
		{"Unescape of values without references", func() {
			for _, n := range [...]string{"to", "id", "type"} {
				v, _ := Attr(raw, n)
				sink += len(Unescape(v))
			}
		}},
		{"AttrEqual and AttrEqualFold", func() {
			if AttrEqual(raw, "to", "alice@example.com/phone") && AttrEqualFold(raw, "type", "CHAT") {
				sink++
			}
		}},
		{"TagEnd", func() { sink += TagEnd(raw) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
	if sink == 0 {
		t.Fatal("nothing read")
	}
}

// FuzzAttr holds the scanner to encoding/xml: for every input whose start
// tag encoding/xml accepts, the scanner reports the same element name, the
// same attributes in the same order with the same values once unescaped,
// and the same end of the tag; the lookups and comparisons agree with that
// list. Inputs encoding/xml refuses only have to leave the scanner in one
// piece.
func FuzzAttr(f *testing.F) {
	for _, s := range []string{
		hostile,
		`<message id="x to='bob@localhost/gone'"><body/></message>`,
		`<message id='a>b' to='c'>`,
		`<message id="/>" to='c'/>`,
		`<message xml:lang='en' lang='fr'/>`,
		`<a xmlns:foo='urn:x' xmlns='urn:xmpp:sm:3' h='1&#48;'/>`,
		`<message id='a&amp;b&lt;c&gt;d&apos;e&quot;f' to="it's"/>`,
		`<message to='bob&#64;localhost&#x2F;sn' id='&#xD800;&#1114111;'/>`,
		"<message id='a\r\nb\rc' to \n= \t'c'/>",
		`<message id='1'to='c'/>`,
		`<message to='a' to='b'/>`,
		`<message id='&bogus;' to='c'/>`,
		`<message id='x to='c'/>`,
		" \n<iq type='get' id='q&#x3c;1'/>",
		`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`,
		`<é à='ü' b:c="d"/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAttr(t, in)
		checkAttr(t, generateTag(in))
	})
}

// generateTag builds a start tag out of the pieces that make attribute
// reading hard, choosing each with the next seed byte, so that most of
// what the fuzzer tries is a tag encoding/xml accepts and the comparison
// runs: random bytes almost never are.
func generateTag(seed []byte) []byte {
	pick := func(choices ...string) string {
		if len(seed) == 0 {
			return choices[0]
		}
		c := choices[int(seed[0])%len(choices)]
		seed = seed[1:]
		return c
	}
	var b strings.Builder
	b.WriteString(pick("", " ", "\n", "\r\n\t"))
	b.WriteString("<" + pick("message", "presence", "iq", "stream:stream", "a", "é", "x:a", "a:"))
	names := []string{"to", "id", "type", "from", "xmlns", "xmlns:to", "xml:lang", "lang", "xto", "to-", "é", "h", "a:to", ":to"}
	values := []string{
		"", "bob@localhost/sn", "x to='bob@localhost/gone'", `x to="bob@localhost/gone"`, "a>b", "/>", "a/>b",
		"&amp;", "&lt;&gt;&apos;&quot;", "&#64;", "&#x2F;", "&#x2f;", "&#0000065;", "&#xD800;", "&#x10FFFF;",
		"&#x110000;", "&#X41;", "&bogus;", "&amp", "&&amp;", "&#;", "&#x;", "\r\n", "\r", "\r\r\n", "\t\n",
		"caf\u00e9", "\U0001F600", "]]>", "'", `"`, "<", "=", " ", "Bob@LocalHost",
	}
	for n := int(pick("1", "2", "3", "4", "5", "0")[0] - '0'); n > 0; n-- {
		q := pick("'", `"`)
		b.WriteString(pick(" ", "", "\n", "\t  ") + pick(names...) + pick("", " ", "\n") + "=" + pick("", " ", "\r\n") + q)
		for k := int(pick("1", "2", "0", "3")[0] - '0'); k > 0; k-- {
			b.WriteString(pick(values...))
		}
		b.WriteString(q)
	}
	b.WriteString(pick(">", "/>", " >", "\n/>", "", "/", " / >"))
	b.WriteString(pick("", "<body>x</body></message>", "<x to='y'/>", "to='z'>"))
	return []byte(b.String())
}

// oracleAttr is an attribute as encoding/xml reports it, with its
// qualified name put back together.
type oracleAttr struct{ name, value string }

func checkAttr(t *testing.T, in []byte) {
	tag := ScanTag(in)
	var got []oracleAttr
	for {
		name, value, ok := tag.Next()
		if !ok {
			break
		}
		got = append(got, oracleAttr{string(name), string(Unescape(value))})
	}
	end, self := tag.End()

	d := xml.NewDecoder(bytes.NewReader(in))
	tok, err := d.RawToken()
	if cd, ok := tok.(xml.CharData); err == nil && ok && len(bytes.Trim(cd, " \t\r\n")) == 0 {
		tok, err = d.RawToken()
	}
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return // not a start tag to encoding/xml: nothing to agree on
	}
	var want []oracleAttr
	for _, a := range start.Attr {
		want = append(want, oracleAttr{qualified(a.Name), a.Value})
	}
	if string(tag.Name()) != qualified(start.Name) {
		t.Fatalf("element name %q, encoding/xml says %q: %q", tag.Name(), qualified(start.Name), in)
	}
	if len(got) != len(want) {
		t.Fatalf("attributes %q, encoding/xml says %q: %q", got, want, in)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("attribute %d is %q, encoding/xml says %q: %q", i, got[i], want[i], in)
		}
	}
	if wantEnd := int(d.InputOffset()); end != wantEnd {
		t.Fatalf("the tag ends at %d, encoding/xml says %d: %q", end, wantEnd, in)
	}
	if wantSelf := bytes.HasSuffix(in[:end], []byte("/>")); self != wantSelf {
		t.Fatalf("self-closing %v, want %v: %q", self, wantSelf, in)
	}
	for i, a := range want {
		if first := firstNamed(want, a.name); first != i {
			continue // a repeated name: lookups give the first
		}
		v, ok := Attr(in, a.name)
		if !ok || string(Unescape(v)) != a.value {
			t.Fatalf("Attr(%q) = %q, %v; encoding/xml says %q: %q", a.name, Unescape(v), ok, a.value, in)
		}
		if !ValueEqual(v, a.value) || ValueEqual(v, a.value+"x") || a.value != "" && ValueEqual(v, a.value[1:]) {
			t.Fatalf("ValueEqual(%q) disagrees with %q: %q", v, a.value, in)
		}
		for _, s := range []string{a.value, strings.ToUpper(a.value), strings.ToLower(a.value), a.value + "x"} {
			if ValueEqualFold(v, s) != strings.EqualFold(a.value, s) {
				t.Fatalf("ValueEqualFold(%q, %q) disagrees with strings.EqualFold(%q, %q): %q", v, s, a.value, s, in)
			}
		}
	}
	for _, probe := range []string{"to", "id", "type", "from", "xmlns", "lang", "xml:lang"} {
		if _, ok := Attr(in, probe); ok != (firstNamed(want, probe) >= 0) {
			t.Fatalf("Attr(%q) found %v, encoding/xml disagrees: %q", probe, ok, in)
		}
	}
}

func firstNamed(attrs []oracleAttr, name string) int {
	for i, a := range attrs {
		if a.name == name {
			return i
		}
	}
	return -1
}
