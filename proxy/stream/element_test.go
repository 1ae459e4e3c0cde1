package stream

import (
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

func TestElementName(t *testing.T) {
	tests := []struct {
		raw, name, xmlns string
	}{
		{"<message to='a'><body/></message>", "message", ""},
		{"<r xmlns='urn:xmpp:sm:3'/>", "r", ns.SM},
		{`<a xmlns="urn:xmpp:sm:3" h="4"/>`, "a", ns.SM},
		{"<enable resume='true' xmlns='urn:xmpp:sm:3'/>", "enable", ns.SM},
		{"<iq type='get' data-xmlns='x' id='1'/>", "iq", ""},
		{"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", "stream:error", ""},
		// An xmlns inside another attribute's value, or a prefix
		// declaration, is not the element's namespace.
		{`<a data="x xmlns='urn:xmpp:sm:3'" h='1'/>`, "a", ""},
		{"<a xmlns:sm='urn:xmpp:sm:3' h='1'/>", "a", ""},
		// A '>' inside a value does not end the tag; references resolve.
		{"<a id='x>y' xmlns='urn:xmpp:sm:3'/>", "a", ns.SM},
		{"<a xmlns='urn:xmpp:sm&#58;3' h='1'/>", "a", ns.SM},
	}
	for _, tc := range tests {
		name, xmlns := ElementName([]byte(tc.raw))
		if string(name) != tc.name || string(xmlns) != tc.xmlns {
			t.Errorf("ElementName(%s) = %q %q, want %q %q", tc.raw, name, xmlns, tc.name, tc.xmlns)
		}
	}
}

func TestElementNameDoesNotAllocate(t *testing.T) {
	raw := []byte("<a xmlns='urn:xmpp:sm:3' h='12'/>")
	if n := testing.AllocsPerRun(100, func() { ElementName(raw) }); n != 0 {
		t.Fatalf("ElementName allocates %v times", n)
	}
}
