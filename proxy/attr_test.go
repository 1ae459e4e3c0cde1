package proxy

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The stanza that fooled the proxy's old byte sniffing: the id holds a
// "to='…'" that was taken for the message's to.
const hostileTo = `<message id="x to='bob@localhost/gone'" to='bob@localhost/sn' type='chat'><body>hi</body></message>`

// wellFormed decodes b to its end with encoding/xml and returns the
// attributes of its top element, or fails the test.
func wellFormed(t *testing.T, b []byte) map[string]string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	attrs := map[string]string{}
	for depth := 0; ; {
		tok, err := d.Token()
		if err == io.EOF {
			return attrs
		}
		if err != nil {
			t.Fatalf("not well-formed (%v): %s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth++; depth == 1 {
				for _, a := range tok.Attr {
					attrs[a.Name.Local] = a.Value
				}
			}
		case xml.EndElement:
			depth--
		}
	}
}

func TestRoutingReadsAttributesByTheGrammar(t *testing.T) {
	v := &session2{
		jid:     "alice@localhost/one",
		served:  func(d string) bool { return d == "localhost" },
		isLocal: func(jid string) bool { return jid == "bob@localhost/sn" },
	}
	hint, hinted := hintOf([]byte(`<message id="m1 to='alice@localhost/two'" to='alice@localhost/one'><private xmlns='urn:xmpp:carbons:2'/></message>`), "carol@localhost/peer")
	tests := []struct {
		name string
		ok   bool
	}{
		{"a to inside another attribute's value is not the to: no bounce for a bound recipient",
			bounceIfUnbound(v, []byte(hostileTo)) == nil},
		{"a to inside another attribute's value is not the to: a 2.0 copy for this session is not taken for a rerouted one",
			!reroutedFullJID([]byte(`<message id="x to='alice@localhost/two'" to='alice@localhost/one'><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>`), v.jid)},
		{"a to inside another attribute's value is not the to: a presence with one is still broadcast",
			isBroadcastPresence([]byte(`<presence id="x to='bob@localhost'"><show>away</show></presence>`))},
		{"a type inside another attribute's value is not the type: the presence is still broadcast",
			isBroadcastPresence([]byte(`<presence id="type='unavailable'"/>`))},
		{"a presence with a real to is directed",
			!isBroadcastPresence([]byte(`<presence id='p1' to='room@conference.localhost/me'/>`))},
		{"a hint names the real to and the whole id",
			hinted && hint.to == "alice@localhost/one" && hint.id == "m1 to='alice@localhost/two'"},
		{"entities in the value are resolved before routing compares",
			bounceIfUnbound(v, []byte(`<message to='bob&#64;localhost&#x2F;sn'/>`)) == nil},
		{"a > inside a quoted value does not end the tag: the to after it is read",
			bounceIfUnbound(v, []byte(`<message id='a>b' to='bob@localhost/gone'/>`)) != nil},
		{"the SM counter is read with its references resolved",
			stream.AttrString([]byte(`<a xmlns='urn:xmpp:sm:3' h='1&#48;'/>`), "h") == "10"},
		{"a missing attribute reads as empty and absent",
			stream.AttrString([]byte(`<r xmlns='urn:xmpp:sm:3'/>`), "h") == "" && !stream.HasAttr([]byte(`<r xmlns='urn:xmpp:sm:3'/>`), "h")},
		{"the classic tap compares to case-insensitively, as before",
			stream.AttrEqualFold([]byte(`<message to='Alice@LocalHost'/>`), "to", "alice@localhost")},
		{"the classic tap does not take a to inside the id for the to",
			!stream.AttrEqualFold([]byte(`<message id="to='alice@localhost'" to='alice@localhost/desk'/>`), "to", "alice@localhost")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatal("rule violated")
			}
		})
	}
}

// The report: a 2.0 client's message whose id holds "to='…'" was taken
// for a message to that JID and bounced, and the bounce copied the id
// between single quotes, which broke the client's stream. Through the 2.0
// filter: the message goes upstream when its real to is online, and when
// its real to is offline the client gets one well-formed bounce from that
// JID, with the id intact.
func TestAHostileIDNeitherMisroutesNorBreaksTheBounce(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	srv.registry.bind("bob@localhost/sn")
	v := &session2{sm: sm.New(sm.Config{}), jid: carolX2, served: func(d string) bool { return d == "localhost" }, isLocal: srv.registry.isLocal, online: serverSaysOffline}
	r := quietRelay(srv, nil, carolX2)
	r.s.v2 = v
	r.hooks = r.s.v2

	v.fromClient(r, []byte(hostileTo))
	if up := queued(&r.up); len(up) != 1 {
		t.Fatalf("upstream got %q, want the message to an online full JID", up)
	}
	if got := queued(&r.client); len(got) != 0 {
		t.Fatalf("the client got %q for a message to an online full JID", got)
	}

	const toOffline = `<message id="x to='bob@localhost/sn'" to='bob@localhost/gone' type='chat'><body>hi</body></message>`
	v.fromClient(r, []byte(toOffline))
	if up := queued(&r.up); len(up) != 0 {
		t.Fatalf("a message to an offline full JID went upstream: %q", up)
	}
	got := queued(&r.client)
	if len(got) != 1 {
		t.Fatalf("the client got %q, want one bounce", got)
	}
	attrs := wellFormed(t, []byte(got[0]))
	if attrs["from"] != "bob@localhost/gone" || attrs["id"] != "x to='bob@localhost/sn'" || attrs["type"] != "error" {
		t.Fatalf("bounce attributes %q: %s", attrs, got[0])
	}
}

func TestTheBounceIsWellFormedWhateverTheIDHolds(t *testing.T) {
	v := &session2{
		jid:     "alice@localhost/one",
		served:  func(d string) bool { return d == "localhost" },
		isLocal: func(string) bool { return false },
	}
	for _, tc := range []struct{ name, raw, id string }{
		{"a single quote in a double-quoted id", `<message id="it's" to='bob@localhost/gone'/>`, "it's"},
		{"a to inside the id", `<message id="x to='bob@localhost/sn'" to='bob@localhost/gone'/>`, "x to='bob@localhost/sn'"},
		{"entities in the id", `<message id='a&amp;b&lt;c&gt;d&apos;e&quot;f' to='bob@localhost/gone'/>`, `a&b<c>d'e"f`},
		{"character references in the id", `<message id='&#x27;&#60;' to='bob@localhost/gone'/>`, `'<`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bounceIfUnbound(v, []byte(tc.raw))
			if b == nil {
				t.Fatalf("no bounce for %s", tc.raw)
			}
			attrs := wellFormed(t, b)
			if attrs["id"] != tc.id || attrs["from"] != "bob@localhost/gone" || attrs["to"] != v.jid || attrs["type"] != "error" {
				t.Fatalf("bounce attributes %q, want id %q from the offline JID: %s", attrs, tc.id, b)
			}
		})
	}
}
