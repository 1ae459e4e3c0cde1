//go:build integration

package integration

import (
	"fmt"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// TestAFullJIDTheServerKnowsIsNeverBounced covers the bounce row of
// contract section 5: "online" is what the upstream server knows. carol,
// a 2.0 client of one proxy, writes to full JIDs this proxy has never
// bound: a classic resource connected straight to the server, a resource
// that differs from it only in case, and a 2.0 session on another proxy
// instance.
func TestAFullJIDTheServerKnowsIsNeverBounced(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		other := startProxy(t, srv) // a second instance in front of the same server
		carol := e.login2(t, "carol")
		desk := e.login(t, "bob", directTo(srv), func(l *harness.Login) { l.Resource = "Desk" })
		goOnline(t, desk)
		far := other.login2(t, "alice")
		bare := "@" + domain

		t.Run("a resource connected straight to the server gets the message once", func(t *testing.T) {
			marker := "desk-" + harness.NewID()
			sendChat(carol, "bob"+bare+"/Desk", "chat", marker)
			// The proxy asks the server; bob's client, a real one, answers
			// the disco#info question like any other.
			answerDiscoInfo(t, desk)
			waitFor(t, desk, marker) // a bounce would never deliver it
			control := "control-" + harness.NewID()
			sendChat(carol, "bob"+bare+"/Desk", "chat", control)
			answerDiscoInfo(t, desk)
			if n := len(elementsWith(readThrough(t, desk, control), marker)); n != 0 {
				t.Errorf("bob/Desk got the message %d more times", n)
			}
		})

		t.Run("a resource that differs only in case is offline: bounced, and nothing reaches the other", func(t *testing.T) {
			marker := "case-" + harness.NewID()
			id := harness.NewID()
			send(t, carol, fmt.Sprintf("<message to='bob%s/desk' type='chat' id='%s'><body>%s</body></message>", bare, id, marker))
			bounce := waitFor(t, carol, "type='error'", id, "service-unavailable")
			if !contains(bounce, "from='bob"+bare+"/desk'") {
				t.Errorf("the bounce is not from the offline JID: %s", bounce)
			}
			control := "control-" + harness.NewID()
			sendChat(carol, "bob"+bare+"/Desk", "chat", control)
			seen := readThroughAnswering(t, desk, control)
			if n := len(elementsWith(seen, marker)); n != 0 {
				t.Errorf("bob/Desk got the message to bob/desk %d times", n)
			}
		})

		t.Run("a 2.0 session on another instance gets the message once and never sees the question", func(t *testing.T) {
			marker := "far-" + harness.NewID()
			sendChat(carol, far.JID, "chat", marker)
			control := "control-" + harness.NewID()
			sendChat(carol, far.JID, "chat", control)
			seen := readThrough(t, far, control)
			if n := len(elementsWith(seen, marker)); n != 1 {
				t.Errorf("the session on the other instance got the message %d times, want 1", n)
			}
			if q := elementsWith(seen, "disco#info"); len(q) != 0 {
				t.Errorf("its client saw the proxy's question: %q", q)
			}
		})
	})
}

// answerDiscoInfo waits for a disco#info question and answers it, as any
// real client does.
func answerDiscoInfo(t *testing.T, c *harness.Client) {
	t.Helper()
	q := waitFor(t, c, "<iq", "type='get'", "http://jabber.org/protocol/disco#info")
	send(t, c, fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/></query></iq>",
		attrValue(string(q), "id"), attrValue(string(q), "from")))
}

// readThroughAnswering is readThrough for a client that answers the
// disco#info questions it gets on the way.
func readThroughAnswering(t *testing.T, c *harness.Client, marker string) [][]byte {
	t.Helper()
	var read [][]byte
	_, err := c.WaitFor(wait, func(el []byte) bool {
		read = append(read, el)
		if contains(el, "<iq", "type='get'", "disco#info") {
			_ = c.Send(fmt.Sprintf("<iq type='result' id='%s' to='%s'/>", attrValue(string(el), "id"), attrValue(string(el), "from")))
		}
		return contains(el, marker)
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", marker, err)
	}
	return read
}
