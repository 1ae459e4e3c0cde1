package proxy

import (
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The end line says how long the session lasted, what kind it was, how
// it ended and how many bytes went each way.
func TestTheSessionEndLineSaysWhatHappened(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		run     func(t *testing.T, c *testClient, fake *fakeUpstream, srv *Server)
		kind    string
		outcome string
	}{
		{"a classic session both sides closed", func(t *testing.T, c *testClient, fake *fakeUpstream, _ *Server) {
			c.login()
			closeBothWays(t, c, fake.accept(t))
		}, kindClassic, "closed"},
		{"a 2.0 session both sides closed", func(t *testing.T, c *testClient, fake *fakeUpstream, _ *Server) {
			c.openStream()
			c.send(authenticate2("PLAIN", plainResponse("alice", "secret")))
			up := fake.accept(t)
			bringOnline2(t, c, up)
			closeBothWays(t, c, up)
		}, kind2, "closed"},
		{"the upstream dropped", func(t *testing.T, c *testClient, fake *fakeUpstream, _ *Server) {
			c.login()
			fake.accept(t).drop()
			c.expectStreamError(stream.CondRemoteConnectionFailed)
			c.expectStreamClose()
		}, kindClassic, "stream error: " + stream.CondRemoteConnectionFailed},
		{"the client vanished", func(t *testing.T, c *testClient, fake *fakeUpstream, _ *Server) {
			c.login()
			up := fake.accept(t)
			c.conn.Close()
			up.waitClosed(t)
		}, kindClassic, "client vanished"},
		{"the proxy shut down", func(t *testing.T, c *testClient, _ *fakeUpstream, srv *Server) {
			c.login()
			go func() { _ = srv.Shutdown(context.Background()) }()
			c.expectStreamError(stream.CondSystemShutdown)
		}, kindClassic, "stream error: " + stream.CondSystemShutdown},
		{"a domain the proxy does not serve", func(t *testing.T, c *testClient, _ *fakeUpstream, _ *Server) {
			c.send(strings.Replace(testHeader, "to='localhost'", "to='elsewhere.example'", 1))
			c.nextOf(stream.UnitStreamOpen)
			c.expectStreamError(stream.CondHostUnknown)
		}, kindNone, "stream error: " + stream.CondHostUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv, logs := startLoggedProxy(t, fake.addr(), LogFormatJSON, nil)
			c, counted := dialCounted(t, srv)
			tc.run(t, c, fake, srv)
			rec := logs.record(t, "session ended")
			// Everything the proxy sent has been read once the
			// connection is closed.
			_, _ = io.Copy(io.Discard, c.conn)
			for k, v := range map[string]any{"level": "INFO", "kind": tc.kind, "outcome": tc.outcome, "listener": "starttls"} {
				if rec[k] != v {
					t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
				}
			}
			if d, ok := rec["duration"].(float64); !ok || d <= 0 {
				t.Errorf("duration = %v, want a positive duration", rec["duration"])
			}
			if got, want := rec["bytes_in"], float64(counted.written.Load()); got != want {
				t.Errorf("bytes_in = %v, want the %v bytes the client sent", got, want)
			}
			if got, want := rec["bytes_out"], float64(counted.read.Load()); got != want {
				t.Errorf("bytes_out = %v, want the %v bytes the client received", got, want)
			}
			if start := logs.record(t, "session started"); start["listener"] != "starttls" || start["remote"] != c.conn.LocalAddr().String() {
				t.Errorf("start line %v, want the listener and the client's address", start)
			}
		})
	}
}

func TestSASLAccount(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	auth := func(mech, ir string) []byte {
		return []byte("<auth xmlns='" + ns.SASL + "' mechanism='" + mech + "'>" + ir + "</auth>")
	}
	tests := []struct {
		name string
		auth []byte
		mech string
		want string
	}{
		{"PLAIN gives the authentication identity", auth("PLAIN", b64("\x00Alice\x00pw")), "PLAIN", "alice@example.org"},
		{"PLAIN ignores the authorization identity", auth("PLAIN", b64("admin@example.org\x00bob\x00pw")), "PLAIN", "bob@example.org"},
		{"SCRAM gives n=", auth("SCRAM-SHA-256", b64("n,,n=bob,r=abc")), "SCRAM-SHA-256", "bob@example.org"},
		{"a username with a domain keeps it", auth("PLAIN", b64("\x00bob@other.example\x00pw")), "PLAIN", "bob@other.example"},
		{"no initial response gives none", auth("PLAIN", ""), "PLAIN", ""},
		{"an empty initial response gives none", auth("PLAIN", "="), "PLAIN", ""},
		{"another mechanism gives none", auth("X-OAUTH2", b64("\x00bob\x00token")), "X-OAUTH2", ""},
		{"bad base64 gives none", auth("PLAIN", "!!!"), "PLAIN", ""},
		{"a long username is cut", auth("PLAIN", b64("\x00"+strings.Repeat("a", 300)+"\x00pw")), "PLAIN",
			strings.Repeat("a", maxLoggedAccount) + "..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := saslAccount(tc.auth, tc.mech, "example.org"); got != tc.want {
				t.Errorf("account %q, want %q", got, tc.want)
			}
		})
	}
}
