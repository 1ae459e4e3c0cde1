package proxy

import (
	"encoding/base64"
	"testing"
)

func ptr(s string) *string { return &s }

func TestSASL2ToSASL1Translation(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"absent initial response stays absent", string((&authenticate{Mechanism: "SCRAM-SHA-1"}).sasl1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>"},
		{"empty initial response becomes '='", string((&authenticate{Mechanism: "PLAIN", InitialResponse: ptr("")}).sasl1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>"},
		{"initial response is copied", string((&authenticate{Mechanism: "PLAIN", InitialResponse: ptr(" AGEAYg== ")}).sasl1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"},
		{"a response's mechanism attribute (xmpp.js) is dropped", string(sasl1Response([]byte("<response xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1'>Yz1i</response>"))),
			"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1i</response>"},
		{"a challenge is rewrapped in the SASL2 namespace", string(sasl2Wrap("challenge", []byte("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1h</challenge>"))),
			"<challenge xmlns='urn:xmpp:sasl:2'>cj1h</challenge>"},
		{"a failure keeps the upstream condition and text", string(sasl2Failure([]byte("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Bad &amp; wrong</text></failure>"))),
			"<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>Bad &amp; wrong</text></failure>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

func TestSASLUsername(t *testing.T) {
	b64 := func(s string) *string { v := base64.StdEncoding.EncodeToString([]byte(s)); return &v }
	tests := []struct {
		name string
		a    authenticate
		want string
	}{
		{"PLAIN authcid", authenticate{Mechanism: "PLAIN", InitialResponse: b64("\x00Alice\x00pw")}, "alice"},
		{"SCRAM n= with escapes", authenticate{Mechanism: "SCRAM-SHA-1", InitialResponse: b64("n,,n=a=2Cb=3Dc,r=abc")}, "a,b=c"},
		{"no initial response", authenticate{Mechanism: "PLAIN"}, ""},
		{"garbage", authenticate{Mechanism: "PLAIN", InitialResponse: ptr("%%%")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.saslUsername(); got != tc.want {
				t.Fatalf("saslUsername = %q, want %q", got, tc.want)
			}
		})
	}
}
