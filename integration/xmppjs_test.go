//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// runXMPPJS starts the real xmpp.js client (@xmpp/client 0.14.0), which
// speaks SASL2 + Bind2 whenever the server offers it.
func runXMPPJS(t *testing.T, e *env, user string, args ...string) (<-chan clientEvent, func() error) {
	t.Helper()
	dir, _ := filepath.Abs("clients/xmppjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@xmpp", "client")); err != nil {
		t.Fatalf("xmpp.js is not installed: run `npm ci --prefix %s` (make deps does)", dir)
	}
	base := []string{filepath.Join(dir, "client.mjs"), "--service", "xmpp://" + e.proxy.Addr().String(),
		"--domain", domain, "--username", user, "--password", password, "--tls-insecure", "--resource-tag", "mobile"}
	return runClient(t, "node", append(base, args...)...)
}

// TestXMPPJSLogsInWithSASL2AndBind2 drives xmpp.js through the proxy: it
// must pick SASL2 with an inline Bind2 request, come online with SM enabled
// from <bound/>, and exchange messages with a classic client.
func TestXMPPJSLogsInWithSASL2AndBind2(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		goOnline(t, bob)
		out := "from xmpp.js " + harness.NewID()
		// henry is used by this test only: nothing stale waits offline.
		events, wait := runXMPPJS(t, e, "henry", "--to", bob.JID, "--message", out, "--expect", "1")
		auth := nextEvent(t, events, "authenticate")
		if !strings.Contains(auth.XML, "urn:xmpp:sasl:2") || !strings.Contains(auth.XML, "urn:xmpp:bind:0") {
			t.Fatalf("xmpp.js did not send SASL2 with Bind2: %s", auth.XML)
		}
		online := nextEvent(t, events, "online")
		if !resourceRE.MatchString(online.JID) {
			t.Fatalf("xmpp.js online as %q, want henry@localhost/mobile.HASH", online.JID)
		}
		nextEvent(t, events, "sm_enabled")
		waitFor(t, bob, "<message", out)
		in := "to xmpp.js " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", online.JID, in))
		if got := nextEvent(t, events, "message"); got.Body != in {
			t.Fatalf("xmpp.js received %q, want %q", got.Body, in)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestXMPPJSWrongPasswordFailsCleanly(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		dir, _ := filepath.Abs("clients/xmppjs")
		events, wait := runClient(t, "node", filepath.Join(dir, "client.mjs"), "--service", "xmpp://"+e.proxy.Addr().String(),
			"--domain", domain, "--username", "alice", "--password", "wrong", "--tls-insecure")
		for ev := range events {
			if ev.Event == "error" {
				if ev.Error != "not-authorized" {
					t.Fatalf("xmpp.js error %q, want not-authorized", ev.Error)
				}
				if err := wait(); err == nil {
					t.Fatal("xmpp.js exited 0 after a wrong password")
				}
				return
			}
			if ev.Event == "online" {
				t.Fatal("xmpp.js went online with a wrong password")
			}
		}
		t.Fatal("xmpp.js reported no error")
	})
}
