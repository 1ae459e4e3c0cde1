package proxy

import (
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

func TestRoutingHelpers(t *testing.T) {
	v := &session2{
		jid:     "alice@localhost/one",
		served:  func(d string) bool { return d == "localhost" },
		isLocal: func(jid string) bool { return jid == "bob@localhost/desk" },
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"a message to an offline full JID of a served domain bounces with service-unavailable",
			strings.Contains(string(bounceIfUnbound(v, []byte("<message to='bob@localhost/gone' id='x1'><body>hi</body></message>"))), "<service-unavailable")},
		{"the bounce comes from the offline JID, to the sender, with the id",
			strings.HasPrefix(string(bounceIfUnbound(v, []byte("<message to='bob@localhost/gone' id='x1'/>"))), "<message type='error' from='bob@localhost/gone' to='alice@localhost/one' id='x1'>")},
		{"a message to a bound full JID does not bounce",
			bounceIfUnbound(v, []byte("<message to='bob@localhost/desk'><body>hi</body></message>")) == nil},
		{"a message to a bare JID does not bounce",
			bounceIfUnbound(v, []byte("<message to='bob@localhost'><body>hi</body></message>")) == nil},
		{"a message to a full JID of a domain not served (a MUC occupant) does not bounce",
			bounceIfUnbound(v, []byte("<message to='room@conference.localhost/nick'><body>hi</body></message>")) == nil},
		{"a 2.0-marked message for another full JID delivered here was rerouted and is dropped",
			reroutedFullJID([]byte("<message to='alice@localhost/two'><body>hi</body><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>"), v.jid)},
		{"a 2.0-marked message for this full JID is not dropped",
			!reroutedFullJID([]byte("<message to='alice@localhost/one'><body>hi</body><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>"), v.jid)},
		{"a 2.0-marked message for the bare JID is not dropped",
			!reroutedFullJID([]byte("<message to='alice@localhost'><body>hi</body><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>"), v.jid)},
		{"an unmarked 1.0 message for another full JID is not dropped by this rule",
			!reroutedFullJID([]byte("<message to='alice@localhost/two' type='chat'><body>hi</body></message>"), v.jid)},
		{"a plain copy gets the entering rules (xmpp-1)",
			strings.Contains(string(entering([]byte("<message to='alice@localhost' type='chat'><body>hi</body></message>"))), "<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>")},
		{"a sent carbon stays as it is",
			!strings.Contains(string(entering([]byte("<message to='alice@localhost/one' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message to='bob@localhost'><body>hi</body></message></forwarded></sent></message>"))), "xmpp-1")},
		{"a MAM result stays as it is",
			!strings.Contains(string(entering([]byte("<message to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='q' id='1'><forwarded xmlns='urn:xmpp:forward:0'><message><body>hi</body></message></forwarded></result></message>"))), "xmpp-1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatal("rule violated")
			}
		})
	}
}

func TestCountStanzas(t *testing.T) {
	b := []byte("<inactive xmlns='urn:xmpp:csi:0'/><presence/><iq type='get' id='1'><q/></iq><message><body>x</body></message><enable xmlns='urn:xmpp:sm:3'/>")
	if n := stream.CountStanzas(b); n != 3 {
		t.Fatalf("CountStanzas = %d, want 3", n)
	}
}

// bounceIfUnbound is the bounce rule for a server that knows no resource
// but those bound through the proxy: what the client gets for raw, or nil.
func bounceIfUnbound(v *session2, raw []byte) []byte {
	if to, check := v.fullJIDToCheck(raw); check {
		return v.bounce(raw, to)
	}
	return nil
}

// serverSaysOffline answers every question about a full JID with offline.
func serverSaysOffline(*relay, string) bool { return false }
