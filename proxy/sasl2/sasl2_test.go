package sasl2

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
		{"absent initial response stays absent", string((&Authenticate{Mechanism: "SCRAM-SHA-1"}).SASL1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>"},
		{"empty initial response becomes '='", string((&Authenticate{Mechanism: "PLAIN", InitialResponse: ptr("")}).SASL1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>"},
		{"initial response is copied", string((&Authenticate{Mechanism: "PLAIN", InitialResponse: ptr(" AGEAYg== ")}).SASL1Auth()),
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"},
		{"a response's mechanism attribute (xmpp.js) is dropped", string(SASL1Response([]byte("<response xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1'>Yz1i</response>"))),
			"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>Yz1i</response>"},
		{"a challenge is rewrapped in the SASL2 namespace", string(Wrap("challenge", []byte("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1h</challenge>"))),
			"<challenge xmlns='urn:xmpp:sasl:2'>cj1h</challenge>"},
		{"a failure keeps the upstream condition and text", string(FailureFromSASL1([]byte("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>Bad &amp; wrong</text></failure>"))),
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
		a    Authenticate
		want string
	}{
		{"PLAIN authcid", Authenticate{Mechanism: "PLAIN", InitialResponse: b64("\x00Alice\x00pw")}, "alice"},
		{"SCRAM n= with escapes", Authenticate{Mechanism: "SCRAM-SHA-1", InitialResponse: b64("n,,n=a=2Cb=3Dc,r=abc")}, "a,b=c"},
		{"no initial response", Authenticate{Mechanism: "PLAIN"}, ""},
		{"garbage", Authenticate{Mechanism: "PLAIN", InitialResponse: ptr("%%%")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Username(); got != tc.want {
				t.Fatalf("Username = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestASuccessCarriesAdditionalDataOnlyWhenThereIsSome(t *testing.T) {
	tests := []struct {
		name, additional, want string
	}{
		{"SCRAM's server-final message is additional data", "dj1h",
			"<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1h</additional-data><authorization-identifier>a@b/c&amp;</authorization-identifier></success>"},
		{"no additional data, no element", "",
			"<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b/c&amp;</authorization-identifier></success>"},
		{"an empty one ('=') is none", "=",
			"<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b/c&amp;</authorization-identifier></success>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(append(AppendSuccessStart(nil, tc.additional, "a@b/c&"), SuccessEnd...))
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
