//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// TestBadInputAfterAuthGetsAStreamErrorAndLosesNothing sends a good
// message followed by a bad stanza: the client gets the stream error named
// by the rule, and the good message still reaches its recipient.
func TestBadInputAfterAuthGetsAStreamErrorAndLosesNothing(t *testing.T) {
	tests := []struct {
		name      string
		bad       string
		condition string
	}{
		{"a stanza over 256 KiB is a policy violation", "<message to='x@localhost'><body>" + strings.Repeat("A", 300<<10) + "</body></message>", "policy-violation"},
		{"nesting deeper than the cap is a policy violation", "<message to='x@localhost'>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</message>", "policy-violation"},
		{"an XML comment is restricted XML", "<message><!-- no --></message>", "restricted-xml"},
		{"a processing instruction is restricted XML", "<?evil ?>", "restricted-xml"},
		{"a DOCTYPE is restricted XML", "<!DOCTYPE x>", "restricted-xml"},
		{"mismatched tags are not well-formed", "<message><body></message>", "not-well-formed"},
		{"a control character is not well-formed", "<message to='x@localhost'><body>a\x01b</body></message>", "not-well-formed"},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				alice, bob := e.login(t, "alice"), e.login(t, "bob")
				body := "sent before the bad stanza " + harness.NewID()
				send(t, alice, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", bob.JID, body))
				_ = alice.Send(tc.bad) // the proxy may close while we write
				expectStreamError(t, alice, tc.condition)
				waitFor(t, bob, "<message", body)
			})
		}
	})
}

// expectStreamError reads until the stream error and the stream close.
func expectStreamError(t *testing.T, c *harness.Client, condition string) {
	t.Helper()
	b, err := c.WaitFor(wait, func(b []byte) bool { return contains(b, "error", "urn:ietf:params:xml:ns:xmpp-streams") })
	if err != nil {
		t.Fatalf("waiting for <%s/>: %v", condition, err)
	}
	if !contains(b, "<"+condition+" ") && !contains(b, "<"+condition+"/") {
		t.Fatalf("stream error %s, want %s", b, condition)
	}
	if _, err := c.Next(); !errors.Is(err, harness.ErrStreamClosed) {
		t.Fatalf("after the stream error: %v, want the stream closed", err)
	}
}

func TestBadInputBeforeAuth(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		t.Run("a stanza before authentication is not-authorized", func(t *testing.T) {
			c := rawStream(t, e.proxy.DirectTLSAddr().String(), e.cert)
			send(t, c, "<message to='bob@localhost'><body>sneaky</body></message>")
			expectStreamError(t, c, "not-authorized")
		})
		t.Run("an element over the pre-auth cap is a policy violation", func(t *testing.T) {
			c := rawStream(t, e.proxy.DirectTLSAddr().String(), e.cert)
			_ = c.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + strings.Repeat("A", 20000) + "</auth>")
			expectStreamError(t, c, "policy-violation")
		})
		t.Run("a stream to a domain the proxy does not serve is host-unknown", func(t *testing.T) {
			c := rawConn(t, e.proxy.DirectTLSAddr().String(), e.cert)
			err := c.OpenStream("elsewhere.example")
			if err == nil || !strings.Contains(err.Error(), "host-unknown") {
				t.Fatalf("open stream: %v, want host-unknown", err)
			}
		})
	})
}

func TestPlaintextAuthIsRefusedUnlessAllowed(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := harness.Dial(ctx, harness.Login{
			Addr: e.proxy.Addr().String(), Domain: domain, User: "alice", Password: password, Mechanism: "PLAIN",
		})
		var se *harness.SASLError
		if !errors.As(err, &se) || se.Condition != "encryption-required" {
			t.Fatalf("plaintext login: %v, want SASL encryption-required", err)
		}
		open := startProxy(t, srv, func(c *proxy.Config) { c.AllowPlaintext = true })
		c, err := harness.Dial(ctx, harness.Login{
			Addr: open.proxy.Addr().String(), Domain: domain, User: "alice", Password: password, Mechanism: "PLAIN",
		})
		if err != nil {
			t.Fatalf("plaintext login with allow_plaintext: %v", err)
		}
		c.Close()
	})
}

func TestUnreachableUpstreamIsRemoteConnectionFailed(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		port, err := harness.FreePort() // nothing listens there
		if err != nil {
			t.Fatal(err)
		}
		e := startProxy(t, srv, func(c *proxy.Config) { c.Upstream = fmt.Sprintf("127.0.0.1:%d", port) })
		c := rawConn(t, e.proxy.DirectTLSAddr().String(), e.cert)
		err = c.OpenStream(domain)
		if err == nil || !strings.Contains(err.Error(), "remote-connection-failed") {
			t.Fatalf("open stream: %v, want remote-connection-failed", err)
		}
	})
}

// rawConn connects over direct TLS without opening a stream.
func rawConn(t *testing.T, addr string, cert *harness.Cert) *harness.Client {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, cert.ClientConfig(domain))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * wait))
	t.Cleanup(func() { conn.Close() })
	return harness.NewClient(conn)
}

// rawStream connects over direct TLS and opens a stream, unauthenticated.
func rawStream(t *testing.T, addr string, cert *harness.Cert) *harness.Client {
	t.Helper()
	c := rawConn(t, addr, cert)
	if err := c.OpenStream(domain); err != nil {
		t.Fatal(err)
	}
	return c
}
