//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

const bind2SM = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"

// login2 logs user in through the proxy with SASL2 + Bind2 over STARTTLS.
func (e *env) login2(t testing.TB, user string, opts ...func(*harness.Login)) *harness.Client {
	t.Helper()
	return e.login(t, user, append([]func(*harness.Login){func(l *harness.Login) {
		l.SASL2 = true
		l.Inline = bind2SM
	}}, opts...)...)
}

var resourceRE = regexp.MustCompile(`^[a-z]+@localhost/mobile\.[a-z2-7]{10}$`)

func TestSASL2IsAdvertisedWithEveryInlineFeature(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		c := e.login(t, "alice")
		for _, want := range []string{
			"<authentication xmlns='urn:xmpp:sasl:2'>", "<mechanism>SCRAM-SHA-1</mechanism>",
			"<inline><bind xmlns='urn:xmpp:bind:0'><inline>",
			"<feature var='urn:xmpp:carbons:2'/>", "<feature var='urn:xmpp:sm:3'/>",
			"<feature var='urn:xmpp:csi:0'/>", "<feature var='urn:xmpp:xmpp2:0'/>",
			"<sm xmlns='urn:xmpp:sm:3'/>",
		} {
			if !contains(c.PreAuthFeatures, want) {
				t.Errorf("pre-auth features lack %s:\n%s", want, c.PreAuthFeatures)
			}
		}
		if contains(c.PreAuthFeatures, "-PLUS") {
			t.Errorf("channel binding advertised: %s", c.PreAuthFeatures)
		}
	})
}

func TestSASL2Bind2OneRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		mechanism string
	}{
		{"PLAIN", "PLAIN"},
		{"SCRAM-SHA-1 with the server signature in additional-data", "SCRAM-SHA-1"},
		{"SCRAM-SHA-256 with the server signature in additional-data", "SCRAM-SHA-256"},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c := e.login2(t, "alice", func(l *harness.Login) { l.Mechanism = tc.mechanism })
				if !resourceRE.MatchString(c.JID) {
					t.Errorf("authorization-identifier %q is not tag.hash", c.JID)
				}
				for _, want := range []string{
					"<bound xmlns='urn:xmpp:bind:0'>",
					"<enabled xmlns='urn:xmpp:sm:3' id='", "resume='true'",
					"<enabled xmlns='urn:xmpp:carbons:2'/>",
				} {
					if !contains(c.Success, want) {
						t.Errorf("<success/> lacks %s:\n%s", want, c.Success)
					}
				}
				if contains(c.Features, "bind") || contains(c.Features, "urn:xmpp:sm:3") {
					t.Errorf("features after success offer bind or sm: %s", c.Features)
				}
			})
		}
	})
}

func TestSASL2WrongPasswordIsAFailureWithTheUpstreamCondition(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-1"} {
			t.Run(mech, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				_, err := harness.Dial(ctx, harness.Login{
					Addr: e.proxy.Addr().String(), Domain: domain, User: "alice", Password: "wrong",
					Mechanism: mech, TLS: e.cert.ClientConfig(domain), SASL2: true, Inline: bind2SM,
				})
				var se *harness.SASLError
				if !errors.As(err, &se) || se.Condition != "not-authorized" {
					t.Fatalf("err = %v, want SASL2 failure not-authorized", err)
				}
			})
		}
	})
}

// configVersionRE finds the XEP-0509 token in pre-auth features.
var configVersionRE = regexp.MustCompile(`<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='([^']+)'/>`)

// TestSASL2AuthenticatePipelinedBeforeFeatures pipelines as XEP-0509 has
// it: the first session learns the config version, the next pipelines
// <authenticate/> carrying it and is online, and one carrying a stale
// version is refused with <config-version-mismatch/>.
func TestSASL2AuthenticatePipelinedBeforeFeatures(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		pipelined := func(l *harness.Login) {
			l.DirectTLS, l.Pipeline = true, true
			l.Addr = e.proxy.DirectTLSAddr().String()
		}
		c := e.login2(t, "bob", pipelined)
		if !resourceRE.MatchString(c.JID) {
			t.Fatalf("pipelined login bound %q", c.JID)
		}
		m := configVersionRE.FindSubmatch(c.PreAuthFeatures)
		if m == nil {
			t.Fatalf("pre-auth features lack the XEP-0509 <config-version/>:\n%s", c.PreAuthFeatures)
		}
		withVersion := func(v string) func(*harness.Login) {
			return func(l *harness.Login) {
				l.Inline = bind2SM + "<config-version xmlns='urn:xmpp:iap:0' scheme='opaque' value='" + v + "'/>"
			}
		}
		// STARTTLS and direct TLS offer the same features, so the same token.
		c = e.login2(t, "bob", withVersion(string(m[1])), func(l *harness.Login) { l.Pipeline = true })
		if !resourceRE.MatchString(c.JID) {
			t.Fatalf("pipelined login with the current config version bound %q", c.JID)
		}
		l := harness.Login{Domain: domain, User: "bob", Password: password, Mechanism: "SCRAM-SHA-1",
			TLS: e.cert.ClientConfig(domain), SASL2: true}
		pipelined(&l)
		withVersion("c3RhbGU")(&l)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := harness.Dial(ctx, l)
		var se *harness.SASLError
		if !errors.As(err, &se) || se.Condition != "config-version-mismatch" {
			t.Fatalf("pipelined login with a stale config version: %v, want <config-version-mismatch/>", err)
		}
	})
}

func TestSameUserAgentGetsSameResourceAndReplacesOldSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		ua := func(l *harness.Login) { l.UserAgentID = "d4a1c0de-0000-4000-8000-" + strings.Repeat("1", 12) }
		first := e.login2(t, "carol", ua)
		second := e.login2(t, "carol", ua)
		if first.JID != second.JID {
			t.Fatalf("same user-agent id bound %q then %q", first.JID, second.JID)
		}
		if strings.Contains(first.JID, "d4a1c0de") {
			t.Fatalf("the user-agent id leaks into the resource %q", first.JID)
		}
		// The old session is replaced: its stream ends.
		_, err := first.WaitFor(wait, func([]byte) bool { return false })
		if !errors.Is(err, harness.ErrStreamClosed) && !strings.Contains(fmt.Sprint(err), "EOF") {
			t.Fatalf("old session still open after replacement: %v", err)
		}
		other := e.login2(t, "carol", func(l *harness.Login) { l.UserAgentID = "another-device" })
		if other.JID == second.JID {
			t.Fatalf("a different user-agent id got the same resource %q", other.JID)
		}
	})
}

func TestSASL2SessionExchangesMessagesWithAClassicClient(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		alice := e.login2(t, "alice", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/><presence xmlns='jabber:client'/></bind>"
		})
		bob := e.login(t, "bob")
		goOnline(t, bob)
		in := "to the 2.0 client " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", alice.JID, in))
		waitFor(t, alice, "<message", in)
		out := "from the 2.0 client " + harness.NewID()
		send(t, alice, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", bob.JID, out))
		waitFor(t, bob, "<message", out)
		// The proxy's own SM on the client leg counts the client's stanzas:
		// one message so far.
		send(t, alice, "<r xmlns='urn:xmpp:sm:3'/>")
		waitFor(t, alice, "<a xmlns='urn:xmpp:sm:3' h='1'/>")
	})
}

func TestSASL2InlinePresenceReachesAContact(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		subscribeBothWays(t, e, "dave", "erin")
		erin := e.login(t, "erin")
		goOnline(t, erin)
		status := "inline presence " + harness.NewID()
		dave := e.login2(t, "dave", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>desk</tag><presence xmlns='jabber:client'><show>dnd</show><status>" + status + "</status></presence></bind>"
		})
		waitFor(t, erin, "<presence", "from='"+dave.JID+"'", status)
	})
}

// subscribeBothWays makes a and b subscribed to each other's presence.
func subscribeBothWays(t *testing.T, e *env, a, b string) {
	t.Helper()
	ca, cb := e.login(t, a), e.login(t, b)
	goOnline(t, ca)
	goOnline(t, cb)
	// From no subscription, so that the test runs again in the same spool:
	// removing the roster item cancels both directions (RFC 6121 2.5.2),
	// and a missing item answers <item-not-found/>.
	send(t, ca, fmt.Sprintf("<iq type='set' id='unroster'><query xmlns='jabber:iq:roster'><item jid='%s' subscription='remove'/></query></iq>", bare(cb.JID)))
	waitFor(t, ca, "<iq", "id='unroster'")
	for _, p := range [][2]*harness.Client{{ca, cb}, {cb, ca}} {
		from, to := p[0], p[1]
		send(t, from, fmt.Sprintf("<presence to='%s' type='subscribe'/>", bare(to.JID)))
		waitFor(t, to, "type='subscribe'", bare(from.JID))
		send(t, to, fmt.Sprintf("<presence to='%s' type='subscribed'/>", bare(from.JID)))
		// ejabberd forwards the 'subscribed'; Prosody 0.12 sends the
		// contact's presence instead. Either shows the approval landed.
		if _, err := from.WaitFor(wait, func(b []byte) bool {
			return contains(b, "<presence", "from='"+bare(to.JID)) && !contains(b, "type='subscribe'")
		}); err != nil {
			t.Fatalf("%s never saw %s approve: %v", from.JID, to.JID, err)
		}
	}
	// Gone from the server before the test logs the accounts in again.
	for _, c := range []*harness.Client{ca, cb} {
		if err := c.Leave(wait); err != nil {
			t.Fatalf("%s leaving: %v", c.JID, err)
		}
	}
}

func TestBind2CarbonsEnableDeliversSentCarbonsFromOtherResources(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		x2 := e.login2(t, "alice", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><enable xmlns='urn:xmpp:carbons:2'/><presence xmlns='jabber:client'/></bind>"
		})
		if !contains(x2.Success, "<enabled xmlns='urn:xmpp:carbons:2'/>") {
			t.Fatalf("<bound/> lacks carbons <enabled/>: %s", x2.Success)
		}
		desk := e.login(t, "alice")
		goOnline(t, desk)
		body := "sent from the desk " + harness.NewID()
		send(t, desk, fmt.Sprintf("<message to='bob@%s' type='chat'><body>%s</body></message>", domain, body))
		waitFor(t, x2, "<sent xmlns='urn:xmpp:carbons:2'>", body)
	})
}

func TestBind2InactiveStartsTheSessionInactive(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		subscribeBothWays(t, e, "frank", "grace")
		frank := e.login2(t, "frank", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>pocket</tag><inactive xmlns='urn:xmpp:csi:0'/><presence xmlns='jabber:client'/></bind>"
		})
		// Whatever the setup brought, and the server's grace period: any
		// bytes from the session (the proxy's SM ack of the server's <r/>
		// included) keep Prosody's CSI active for csi_resume_inactive_delay.
		frank.Collect(1500 * time.Millisecond)
		grace := e.login(t, "grace")
		status := "busy " + harness.NewID()
		send(t, grace, "<presence><status>"+status+"</status></presence>")
		// Inactive: the server holds the contact's presence back ...
		for _, el := range frank.Collect(time.Second) {
			if contains(el, status) {
				t.Fatalf("presence reached an inactive session at once: %s", el)
			}
		}
		// ... until something important, a message, flushes it.
		body := "wake up " + harness.NewID()
		send(t, grace, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", frank.JID, body))
		got := frank.Collect(2 * time.Second)
		var sawPresence, sawMessage bool
		for _, el := range got {
			sawPresence = sawPresence || contains(el, status)
			sawMessage = sawMessage || contains(el, body)
		}
		if !sawMessage || !sawPresence {
			t.Fatalf("after the message: message %v, held presence %v", sawMessage, sawPresence)
		}
	})
}
