package proxy

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func ptr(s string) *string { return &s }

var timeZero time.Time

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

func TestBind2ResourceRules(t *testing.T) {
	secret := []byte("s3cret")
	same1 := deriveResource(secret, "alice", "mobile", "ua-1")
	same2 := deriveResource(secret, "alice", "mobile", "ua-1")
	random1 := deriveResource(secret, "alice", "mobile", "")
	random2 := deriveResource(secret, "alice", "mobile", "")
	tests := []struct {
		name string
		ok   bool
	}{
		{"the same device gets the same resource", same1 == same2},
		{"the resource is tag + '.' + 10 characters", strings.HasPrefix(same1, "mobile.") && len(same1) == len("mobile.")+10},
		{"the user-agent id never appears", !strings.Contains(same1, "ua-1")},
		{"another device gets another resource", deriveResource(secret, "alice", "mobile", "ua-2") != same1},
		{"another account gets another resource", deriveResource(secret, "bob", "mobile", "ua-1") != same1},
		{"another secret gets another resource", deriveResource([]byte("other"), "alice", "mobile", "ua-1") != same1},
		{"without a user-agent id the suffix is random", random1 != random2},
		{"a tag cannot inject JID separators", !strings.ContainsAny(deriveResource(secret, "a", "x/y@z", "u"), "/@")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatal("rule violated")
			}
		})
	}
}

func TestDedupKeyPrefersStanzaIDByTheAccount(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"stanza-id by the account wins", "<message id='m1'><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='R'/><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='A'/><origin-id xmlns='urn:xmpp:sid:0' id='O'/></message>", "sid:A"},
		{"origin-id when no stanza-id by the account", "<message id='m1'><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='R'/><origin-id xmlns='urn:xmpp:sid:0' id='O'/></message>", "oid:O"},
		{"the id attribute last", "<message id='m1'><body>x</body></message>", "id:m1"},
		{"nothing to go by", "<message><body>x</body></message>", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := dedupKey([]byte(tc.raw), "alice@localhost"); got != tc.want {
				t.Fatalf("dedupKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMAMQueryAndResult(t *testing.T) {
	q := string(mamQuery("x2-sync-0", "", "x2-sync", "A1", timeZero, 100, false))
	want := "<iq type='set' id='x2-sync-0'><query xmlns='urn:xmpp:mam:2' queryid='x2-sync'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max><after>A1</after></set></query></iq>"
	if q != want {
		t.Fatalf("query\n got %s\nwant %s", q, want)
	}
	r, ok := parseMAMResult([]byte("<message to='a@b/c'><result xmlns='urn:xmpp:mam:2' queryid='x2-sync' id='A2'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/><message from='b@b' type='chat'><body>hi</body></message></forwarded></result></message>"))
	if !ok || r.queryID != "x2-sync" || r.id != "A2" || r.stamp != "2026-01-01T00:00:00Z" || !strings.Contains(string(r.inner), "<body>hi</body>") {
		t.Fatalf("parseMAMResult = %+v %v", r, ok)
	}
	fin := parseMAMFin([]byte("<iq type='result' id='x2-sync-0'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><last>A9</last></set></fin></iq>"))
	if !fin.ok || fin.complete || fin.last != "A9" {
		t.Fatalf("parseMAMFin = %+v", fin)
	}
}
