package harness

import (
	"strings"
	"testing"
)

// TestEveryProtocolDocExampleParsesAsXML reads docs/protocol.md: every
// XML block is a marked example, and each is well-formed XML as it would
// appear in a client stream.
func TestEveryProtocolDocExampleParsesAsXML(t *testing.T) {
	examples, err := ReadDocExamples("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) == 0 {
		t.Fatal("docs/protocol.md has no examples")
	}
	for _, ex := range examples {
		nodes, err := ParseWire(ex.XML)
		if err != nil {
			t.Errorf("docs/protocol.md:%d: example %q is not well-formed XML: %v", ex.Line, ex.Name, err)
			continue
		}
		if len(nodes) == 0 {
			t.Errorf("docs/protocol.md:%d: example %q holds no element", ex.Line, ex.Name)
		}
	}
}

func TestReadDocExamplesRefusesUnmarkedOrBrokenBlocks(t *testing.T) {
	tests := []struct {
		name, doc, err string
	}{
		{"an xml block without a marker is refused", "text\n```xml\n<a/>\n```\n", "without a <!-- example"},
		{"a marker without a block is refused", "<!-- example: a -->\ntext\n", "not followed by an xml block"},
		{"a name used twice is refused", "<!-- example: a -->\n```xml\n<a/>\n```\n<!-- example: a -->\n```xml\n<b/>\n```\n", "already used"},
		{"an unclosed block is refused", "<!-- example: a -->\n```xml\n<a/>\n", "not closed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDocExamples(strings.NewReader(tc.doc), "doc.md")
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one saying %q", err, tc.err)
			}
		})
	}
	ex, err := parseDocExamples(strings.NewReader("<!-- example: a -->\n```xml\n<a/>\n```\n```go\nx\n```\n"), "doc.md")
	if err != nil || len(ex) != 1 || ex[0].Name != "a" || ex[0].Line != 2 || ex[0].XML != "<a/>\n" {
		t.Fatalf("got %+v, %v", ex, err)
	}
}

func TestMatchWire(t *testing.T) {
	vars := map[string]string{"id": "42"}
	tests := []struct {
		name, want, got string
		ok              bool
	}{
		{"the same element matches", "<a xmlns='urn:x' v='1'/>", "<a xmlns='urn:x' v='1'/>", true},
		{"a prefix is resolved", "<stream:features/>", "<features xmlns='http://etherx.jabber.org/streams'/>", true},
		{"another namespace fails", "<a xmlns='urn:x'/>", "<a xmlns='urn:y'/>", false},
		{"another name fails", "<a/>", "<b/>", false},
		{"a missing attribute fails", "<a v='1'/>", "<a/>", false},
		{"another attribute value fails", "<a v='1'/>", "<a v='2'/>", false},
		{"an added attribute is allowed", "<a v='1'/>", "<a v='1' w='2'/>", true},
		{"{any} matches any value", "<a v='{any}'/>", "<a v='x7'/>", true},
		{"{any} within a value matches the rest", "<a>alice@example.org/phone.{any}</a>", "<a>alice@example.org/phone.abc</a>", true},
		{"{any} within a value keeps the literal part", "<a>alice@example.org/phone.{any}</a>", "<a>alice@example.org/desk.abc</a>", false},
		{"a known value must be equal", "<a v='{id}'/>", "<a v='42'/>", true},
		{"a known value that differs fails", "<a v='{id}'/>", "<a v='43'/>", false},
		{"other text fails", "<a>x</a>", "<a>y</a>", false},
		{"text where none is shown fails", "<a/>", "<a>y</a>", false},
		{"a missing child fails", "<a><b/><c/></a>", "<a><b/></a>", false},
		{"an extra child fails", "<a><b/></a>", "<a><b/><c/></a>", false},
		{"children in another order fail", "<a><b/><c/></a>", "<a><c/><b/></a>", false},
		{"{any} content allows further children", "<a><b/>{any}</a>", "<a><b/><c/><d/></a>", true},
		{"{any} content still checks the children shown", "<a><b/>{any}</a>", "<a><c/></a>", false},
		{"{more} allows more of the same", "<a><m>{any}</m>{more}<i/></a>", "<a><m>1</m><m>2</m><m>3</m><i/></a>", true},
		{"{more} needs at least one", "<a><m>{any}</m>{more}<i/></a>", "<a><i/></a>", false},
		{"{more} allows no other kind", "<a><m>{any}</m>{more}</a>", "<a><m>1</m><n/></a>", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := ParseWire(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseWire(tc.got)
			if err != nil {
				t.Fatal(err)
			}
			err = MatchWire(want[0], got[0], vars)
			if (err == nil) != tc.ok {
				t.Fatalf("MatchWire(%s, %s) = %v, want ok=%v", tc.want, tc.got, err, tc.ok)
			}
		})
	}
}

func TestFillExampleNeedsEveryValue(t *testing.T) {
	got, err := FillExample("<a>\n  <b>{x}</b>\n</a>\n", map[string]string{"x": "1"})
	if err != nil || got != "<a><b>1</b></a>" {
		t.Fatalf("FillExample = %q, %v", got, err)
	}
	if _, err := FillExample("<a>{y}</a>", map[string]string{"x": "1"}); err == nil {
		t.Fatal("a placeholder without a value was filled")
	}
}

func TestParseWireReadsAStreamHeaderAsAnElement(t *testing.T) {
	nodes, err := ParseWire("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>")
	if err != nil || len(nodes) != 1 || nodes[0].Name.Local != "stream" || nodes[0].Name.Space != "http://etherx.jabber.org/streams" {
		t.Fatalf("got %+v, %v", nodes, err)
	}
}
