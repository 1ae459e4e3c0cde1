package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"regexp"
	"slices"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

func TestConfigVersionRules(t *testing.T) {
	features := []byte("<stream:features><mechanisms xmlns='" + ns.SASL + "'><mechanism>PLAIN</mechanism></mechanisms>" +
		string(sasl2.Advertisement([]string{"PLAIN"})))
	current := configVersion(features)
	tests := []struct {
		name string
		ok   bool
	}{
		{"the same features give the same token", configVersion(bytes.Clone(features)) == current},
		{"another mechanism gives another token",
			configVersion([]byte("<stream:features>"+string(sasl2.Advertisement([]string{"PLAIN", "SCRAM-SHA-1"})))) !=
				configVersion([]byte("<stream:features>"+string(sasl2.Advertisement([]string{"PLAIN"}))))},
		{"offering STARTTLS too gives another token",
			configVersion(append([]byte("<starttls xmlns='"+ns.TLS+"'/>"), features...)) != current},
		{"the token is 128 bits of base64 without padding", len(current) == 22 && !bytes.ContainsAny([]byte(current), "=")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatal("rule broken")
			}
		})
	}
}

func TestConfigVersionMismatch(t *testing.T) {
	const current = "Q3VycmVudCB0b2tlbg"
	auth := func(inner string) []byte {
		return []byte("<authenticate xmlns='" + ns.SASL2 + "' mechanism='PLAIN'><initial-response>AGEAYg==</initial-response>" +
			inner + "</authenticate>")
	}
	tests := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"no config-version proceeds as SASL2 always did", auth(""), false},
		{"an identical value matches", auth("<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='" + current + "'/>"), false},
		{"an identical value without a scheme matches", auth("<config-version xmlns='urn:xmpp:iap:0' value='" + current + "'/>"), false},
		{"any scheme is compared as opaque", auth("<config-version xmlns='urn:xmpp:iap:0' scheme='future' value='" + current + "'/>"), false},
		{"a stale value mismatches", auth("<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='b2xk'/>"), true},
		{"matching is octet for octet, case included", auth("<config-version xmlns='urn:xmpp:iap:0' value='q3VycmVudCB0b2tlbg'/>"), true},
		{"matching is octet for octet, spaces included", auth("<config-version xmlns='urn:xmpp:iap:0' value=' " + current + "'/>"), true},
		{"a missing value mismatches", auth("<config-version xmlns='urn:xmpp:iap:0'/>"), true},
		{"one stale value among several mismatches", auth("<config-version xmlns='urn:xmpp:iap:0' value='" + current +
			"'/><config-version xmlns='urn:xmpp:iap:0' value='b2xk'/>"), true},
		{"the element in another namespace is not XEP-0509's", auth("<config-version xmlns='urn:example' value='b2xk'/>"), false},
		{"a config-version inside bind is not the one XEP-0509 reads", auth("<bind xmlns='" + ns.Bind2 +
			"'><config-version xmlns='urn:xmpp:iap:0' value='b2xk'/></bind>"), false},
		{"an unparsable authenticate is left to authenticate2", []byte("<authenticate xmlns='" + ns.SASL2 + "'><oops></authenticate>"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := configVersionMismatch(tc.raw, current); got != tc.want {
				t.Fatalf("configVersionMismatch = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfigVersionFailureIsAbortedWithTheMismatchCondition(t *testing.T) {
	var f struct {
		XMLName  xml.Name
		Children []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal(configVersionFailure(), &f); err != nil {
		t.Fatal(err)
	}
	var got []xml.Name
	text := ""
	for _, c := range f.Children {
		got = append(got, c.XMLName)
		text += c.Text
	}
	want := []xml.Name{{Space: ns.SASL, Local: "aborted"}, {Space: ns.IAP, Local: "config-version-mismatch"}, {Space: ns.SASL2, Local: "text"}}
	if f.XMLName != (xml.Name{Space: ns.SASL2, Local: "failure"}) || !slices.Equal(got, want) || text == "" {
		t.Fatalf("failure %s\nwant a SASL2 <failure/> with <aborted/>, <config-version-mismatch/> and <text/>", configVersionFailure())
	}
}

var configVersionRE = regexp.MustCompile(`<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='([^']*)'/></stream:features>$`)

// advertisedConfigVersion returns the token at the end of raw features and
// the features before it, failing the test when there is none.
func advertisedConfigVersion(t *testing.T, raw []byte) (value string, before []byte) {
	t.Helper()
	m := configVersionRE.FindSubmatchIndex(raw)
	if m == nil {
		t.Fatalf("features lack a trailing XEP-0509 <config-version/>: %s", raw)
	}
	return string(raw[m[2]:m[3]]), raw[:m[0]]
}

func TestConfigVersionIsAdvertisedLastAndHashesTheFeaturesBeforeIt(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), nil, nil)
	var seen []string
	for range 2 {
		c := dialProxy(t, srv)
		c.send(testHeader)
		c.nextOf(stream.UnitStreamOpen)
		value, before := advertisedConfigVersion(t, c.nextOf(stream.UnitElement))
		if want := configVersion(before); value != want {
			t.Fatalf("advertised %q, want %q: the hash of the features before it", value, want)
		}
		seen = append(seen, value)
	}
	if seen[0] != seen[1] {
		t.Fatalf("two connections got tokens %q and %q: a client could never reuse one", seen[0], seen[1])
	}
}

func TestPipelinedAuthenticateWithAStaleConfigVersionIsRefusedWithoutPrejudice(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), nil, nil)
	c := dialProxy(t, srv)
	// Stream header and <authenticate/> in one write, with good
	// credentials: had they gone upstream, the fake would have answered
	// them with <success/> and refused the classic <auth/> below.
	creds := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	c.send(testHeader + "<authenticate xmlns='" + ns.SASL2 + "' mechanism='PLAIN'><initial-response>" + creds +
		"</initial-response><config-version xmlns='" + ns.IAP + "' scheme='opaque' value='c3RhbGU'/></authenticate>")
	c.nextOf(stream.UnitStreamOpen)
	advertisedConfigVersion(t, c.nextOf(stream.UnitElement)) // the new token comes before the failure
	c.expect(stream.UnitElement, string(configVersionFailure()))

	// The stream stays open and nothing was counted upstream: the next
	// attempt authenticates as the first one the server sees.
	c.send(authPlain("alice", "secret"))
	c.expect(stream.UnitElement, saslSuccess)
	c.restartAndBind()
}

func TestConfigVersionIsNotAdvertisedNorCheckedWhereSASL2IsNotOffered(t *testing.T) {
	t.Parallel()
	serverTLS, _ := testCertificate(t)
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), serverTLS, func(c *Config) { c.AllowPlaintext = false })
	c := dialProxy(t, srv)
	c.send(testHeader + "<authenticate xmlns='" + ns.SASL2 + "' mechanism='PLAIN'><initial-response>AGEAYg==</initial-response>" +
		"<config-version xmlns='" + ns.IAP + "' value='c3RhbGU'/></authenticate>")
	c.nextOf(stream.UnitStreamOpen)
	if raw := c.nextOf(stream.UnitElement); bytes.Contains(raw, []byte(ns.IAP)) {
		t.Fatalf("STARTTLS-only features advertise XEP-0509: %s", raw)
	}
	raw := c.nextOf(stream.UnitElement)
	if name, conds := parseConditions(t, raw, ns.SASL); name != (xml.Name{Space: ns.SASL2, Local: "failure"}) || !slices.Equal(conds, []string{"encryption-required"}) {
		t.Fatalf("pipelined <authenticate/> before TLS got %s, want <encryption-required/>", raw)
	}
}
