//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

const wait = 10 * time.Second

func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// TestClassicStanzasRelayUnchanged runs the everyday classic scenarios
// through the proxy against each real server.
func TestClassicStanzasRelayUnchanged(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		t.Run("a message from alice reaches bob with its body and id", func(t *testing.T) {
			alice, bob := e.login(t, "alice"), e.login(t, "bob")
			id, body := harness.NewID(), "hello bob "+harness.NewID()
			send(t, alice, fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s</body></message>", bob.JID, id, body))
			got := waitFor(t, bob, "message", body)
			if !contains(got, "id='"+id+"'") && !contains(got, `id="`+id+`"`) {
				t.Errorf("message id lost: %s", got)
			}
		})
		t.Run("directed presence arrives and session end sends unavailable", func(t *testing.T) {
			alice, bob := e.login(t, "carol"), e.login(t, "dave")
			send(t, alice, fmt.Sprintf("<presence to='%s'><status>here</status></presence>", bob.JID))
			waitFor(t, bob, "<presence", alice.JID, "here")
			alice.Close()
			// The upstream session ended cleanly: the server itself tells
			// bob that alice's resource went away.
			waitFor(t, bob, "<presence", alice.JID, "unavailable")
		})
		t.Run("roster get returns a roster result", func(t *testing.T) {
			c := e.login(t, "alice")
			send(t, c, "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
			waitFor(t, c, "roster1", "result", "jabber:iq:roster")
		})
		t.Run("MAM query finds a message just sent", func(t *testing.T) {
			alice, bob := e.login(t, "alice"), e.login(t, "bob")
			goOnline(t, bob)
			body := "archive me " + harness.NewID()
			send(t, alice, fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s</body></message>", bare(bob.JID), harness.NewID(), body))
			waitFor(t, bob, "message", body)
			send(t, alice, fmt.Sprintf("<iq type='set' id='mam1'><query xmlns='urn:xmpp:mam:2' queryid='q1'>"+
				"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"+
				"<field var='with'><value>%s</value></field></x>"+
				"<set xmlns='http://jabber.org/protocol/rsm'><max>20</max><before/></set></query></iq>", bare(bob.JID)))
			var found bool
			for {
				b, err := alice.WaitFor(wait, func(b []byte) bool { return contains(b, "q1") || contains(b, "mam1") })
				if err != nil {
					t.Fatalf("waiting for MAM results: %v", err)
				}
				if contains(b, "urn:xmpp:mam:2", body) {
					found = true
				}
				if contains(b, "mam1") {
					if !contains(b, "result", "fin") {
						t.Fatalf("MAM query failed: %s", b)
					}
					break
				}
			}
			if !found {
				t.Fatal("the archive result did not contain the message")
			}
		})
		t.Run("MUC join returns self-presence", func(t *testing.T) {
			c := e.login(t, "erin")
			room := fmt.Sprintf("room-%s@%s", harness.NewID(), srv.MUCService())
			send(t, c, fmt.Sprintf("<presence to='%s/erin'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room))
			waitFor(t, c, "<presence", room+"/erin", "code='110'")
		})
		t.Run("SM enable and ack count relayed stanzas end to end", func(t *testing.T) {
			c := e.login(t, "alice")
			send(t, c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
			waitFor(t, c, "<enabled", "urn:xmpp:sm:3")
			send(t, c, "<iq type='get' id='ping1' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>")
			waitFor(t, c, "<a ", "h='1'")
		})
	})
}

// TestStreamResumptionThroughTheProxy shows the client leg vanishing
// leaves the upstream session resumable, as with a direct connection.
func TestStreamResumptionThroughTheProxy(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		c := e.login(t, "bob")
		send(t, c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
		enabled := waitFor(t, c, "<enabled")
		previd := attrValue(string(enabled), "id")
		if previd == "" {
			t.Fatalf("no SM id in %s", enabled)
		}
		fullJID := c.JID
		c.Conn.Close() // vanish without closing the stream

		peer := e.login(t, "alice")
		body := "while you were away " + harness.NewID()
		send(t, peer, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", fullJID, body))

		again := e.login(t, "bob", func(l *harness.Login) { l.NoBind = true })
		send(t, again, fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>", previd))
		waitFor(t, again, "<resumed", previd)
		waitFor(t, again, "<message", body)
	})
}

// goOnline sends initial presence and waits for the server's echo, so that
// bare-JID messages are delivered to this resource.
func goOnline(t testing.TB, c *harness.Client) {
	t.Helper()
	send(t, c, "<presence/>")
	waitFor(t, c, "<presence", "from='"+c.JID+"'")
}

func attrValue(el, name string) string {
	for _, q := range []string{"'", `"`} {
		if i := strings.Index(el, " "+name+"="+q); i >= 0 {
			rest := el[i+len(name)+3:]
			if j := strings.Index(rest, q); j >= 0 {
				return rest[:j]
			}
		}
	}
	return ""
}

func send(t testing.TB, c *harness.Client, s string) {
	t.Helper()
	if err := c.Send(s); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// waitFor waits for an element containing every part.
func waitFor(t testing.TB, c *harness.Client, parts ...string) []byte {
	t.Helper()
	b, err := c.WaitFor(wait, func(b []byte) bool { return contains(b, parts...) })
	if err != nil {
		t.Fatalf("waiting for %q: %v", parts, err)
	}
	return b
}
