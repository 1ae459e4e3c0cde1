//go:build integration

package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

var smIDRE = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)'`)

// vanishAfter logs a 2.0 client in, has a peer send it one message it
// reads, and drops its connection without closing the stream. It returns
// the SM id, the full JID and the client's h.
func vanishAfter(t *testing.T, e *env, user string, peer *harness.Client, seen string) (id, jid string, h uint32) {
	t.Helper()
	c := e.login2(t, user)
	m := smIDRE.FindSubmatch(c.Success)
	if m == nil {
		t.Fatalf("no SM id in %s", c.Success)
	}
	send(t, peer, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", c.JID, seen))
	waitFor(t, c, "<message", seen)
	c.Collect(300 * time.Millisecond) // read whatever else came, so h is exact
	c.Conn.Close()
	return string(m[1]), c.JID, c.Received
}

func TestResumeReattachesTheSessionAndReplaysOnlyWhatWasMissed(t *testing.T) {
	tests := []struct {
		name   string
		inline func(previd string, h uint32) string
	}{
		{"resume inline in authenticate", func(previd string, h uint32) string {
			return fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h) + bind2SM
		}},
		{"resume inside bind", func(previd string, h uint32) string {
			return fmt.Sprintf("<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/><resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/></bind>", previd, h)
		}},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e, logs := startLoggedProxy(t, srv, func(*proxy.Config) {})
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				bob := e.login(t, "bob")
				seen, missed := "seen "+harness.NewID(), "missed "+harness.NewID()
				held := logs.mark()
				previd, jid, h := vanishAfter(t, e, "alice", bob, seen)
				// While alice is away the proxy holds her upstream session.
				logs.waitFor(t, held, "session held for resumption", jid)
				send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", jid, missed))
				ping(t, bob) // the server has routed the message to the held session
				again := e.login(t, "alice", func(l *harness.Login) { l.SASL2, l.Inline = true, tc.inline(previd, h) })
				if !contains(again.Success, "<resumed xmlns='urn:xmpp:sm:3' previd='"+previd+"'") || contains(again.Success, "<bound") {
					t.Fatalf("want <resumed/> and no <bound/>: %s", again.Success)
				}
				if again.JID != jid {
					t.Fatalf("resumed as %q, want %q", again.JID, jid)
				}
				got := again.Collect(time.Second)
				var missedN, seenN int
				for _, el := range got {
					missedN += strings.Count(string(el), missed)
					seenN += strings.Count(string(el), seen)
				}
				if missedN != 1 || seenN != 0 {
					t.Fatalf("after resume: the missed message %d times, the acked one %d times; want 1 and 0", missedN, seenN)
				}
				// The resumed session is live both ways.
				live := "live " + harness.NewID()
				send(t, again, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", bob.JID, live))
				waitFor(t, bob, "<message", live)
			})
		}
	})
}

func TestFailedResumeFallsBackToAFreshBindInTheSameRoundTrip(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		c := e.login(t, "carol", func(l *harness.Login) {
			l.SASL2 = true
			l.Inline = "<resume xmlns='urn:xmpp:sm:3' previd='no-such-session' h='0'/>" + bind2SM
		})
		s := string(c.Success)
		failed, bound := strings.Index(s, "<failed xmlns='urn:xmpp:sm:3'>"), strings.Index(s, "<bound")
		if failed < 0 || bound < 0 || failed > bound || !strings.Contains(s, "item-not-found") {
			t.Fatalf("want <failed/> with item-not-found before <bound/>: %s", s)
		}
		if contains(c.Success, "<resumed") {
			t.Fatalf("<resumed/> and <bound/> together: %s", s)
		}
		send(t, c, "<iq type='get' id='alive' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
		waitFor(t, c, "alive", "result")
	})
}

func TestAnotherAccountCannotResumeASession(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		previd, _, h := vanishAfter(t, e, "dave", bob, "hi "+harness.NewID())
		mallory := e.login(t, "erin", func(l *harness.Login) {
			l.SASL2 = true
			l.Inline = fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h) + bind2SM
		})
		if !contains(mallory.Success, "<failed xmlns='urn:xmpp:sm:3'>") || !strings.HasPrefix(mallory.JID, "erin@") {
			t.Fatalf("another account resumed dave's session: %s", mallory.Success)
		}
	})
}

func TestExpiredSessionIsClosedUpstreamAndLosesNothing(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e, logs := startLoggedProxy(t, srv, func(c *proxy.Config) { c.Timeouts.Resume = proxy.Duration(time.Second) })
		bob := e.login(t, "bob")
		previd, jid, h := vanishAfter(t, e, "frank", bob, "seen "+harness.NewID())
		missed := "held then expired " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", jid, missed))
		logs.waitFor(t, 0, "resumption window over")
		again := e.login(t, "frank", func(l *harness.Login) {
			l.SASL2 = true
			l.Inline = fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h) +
				"<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>" +
				"<sync xmlns='urn:xmpp:xmpp2:0' within='120'/><presence xmlns='jabber:client'/></bind>"
		})
		if !contains(again.Success, "<failed xmlns='urn:xmpp:sm:3'>") {
			t.Fatalf("resumed after the window closed: %s", again.Success)
		}
		// The proxy closed the upstream session without acking the
		// message. Whatever the server did with it (Prosody stores it
		// offline; ejabberd, having archived it, does not), the fresh
		// session's catch-up and the offline flush together deliver it
		// exactly once.
		before, _, after := catchup(t, again)
		if n := len(bodiesWith(before, missed)) + len(bodiesWith(after, missed)); n != 1 {
			t.Fatalf("the message held during the window arrived %d times, want once", n)
		}
	})
}
