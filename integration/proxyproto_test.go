//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// The PROXY protocol end to end (issue 10, item 4): HAProxy in TCP mode
// with send-proxy or send-proxy-v2 in front of a proxy whose STARTTLS
// listener requires the header, and, on ejabberd, the proxy sending one
// on to a c2s listener with use_proxy_protocol: true. The test client
// connects from 127.0.0.2 and HAProxy from 127.0.0.1, so the client's
// address can only reach the proxy's log, and ejabberd, through the
// headers.

// clientIP is the loopback address the test clients connect from.
const clientIP = "127.0.0.2"

// startLoggedProxy is startProxy (without direct TLS) with the proxy's
// log kept at debug level, and shown when the test fails.
func startLoggedProxy(t *testing.T, srv harness.Server, mutate func(*proxy.Config)) (*env, *logWatch) {
	t.Helper()
	logs := &logWatch{}
	// Registered first, so it runs last: after the shutdown has logged.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the proxy's log:\n%s", logs.String())
		}
	})
	e := startProxyWith(t, srv, proxyStart{log: logs, logLevel: slog.LevelDebug, mutate: []func(*proxy.Config){noDirectTLS, mutate}})
	return e, logs
}

// clientLine matches a log line of msg naming the test client, behind the
// balancer on 127.0.0.1.
func clientLine(msg string) string {
	return `msg=` + msg + ` conn=\d+ remote=` + regexp.QuoteMeta(clientIP) + `:\d+ via=127\.0\.0\.1:\d+ [^\n]*`
}

func TestPROXYProtocolThroughHAProxy(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		for _, version := range []int{1, 2} {
			t.Run(fmt.Sprintf("send-proxy v%d", version), func(t *testing.T) {
				ej, onEjabberd := srv.(*harness.Ejabberd)
				upstreamVersion := proxy.ProxyProtocolV2 // the other version than HAProxy's: both get a real server
				if version == 2 {
					upstreamVersion = proxy.ProxyProtocolV1
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				e, logs := startLoggedProxy(t, srv, func(c *proxy.Config) {
					c.ProxyProtocol = []string{proxy.ListenerStartTLS}
					c.ProxyProtocolFrom = []string{"127.0.0.1"} // HAProxy's address, not the client's
					if onEjabberd {
						c.Upstream, c.UpstreamProxyProtocol = ej.ProxyProtocolAddr(), upstreamVersion
					}
				})
				if onEjabberd {
					if err := harness.WaitForPort(ctx, ej.ProxyProtocolAddr(), nil); err != nil {
						t.Fatal(err)
					}
				}
				lb, err := harness.StartHAProxySendingPROXY(ctx, version, e.proxy.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = lb.Stop() })
				login := func(user, pass string) (*harness.Client, error) {
					return harness.Dial(ctx, harness.Login{Addr: lb.Addr(), Domain: domain, User: user, Password: pass,
						Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain), Source: clientIP})
				}

				// A failed login: the line fail2ban bans on names the client.
				_, err = login("frank", "wrong-"+password)
				var saslErr *harness.SASLError
				if !errors.As(err, &saslErr) {
					t.Fatalf("login with a wrong password: %v, want a SASL failure\nhaproxy:\n%s", err, lb.Log())
				}
				logs.match(t, clientLine(`"authentication failed"`)+`account=frank@localhost`)

				c, err := login("frank", password)
				if err != nil {
					t.Fatalf("login through HAProxy: %v\nhaproxy:\n%s\nupstream:\n%s", err, lb.Log(), srv.Log())
				}
				defer c.Close()
				logs.match(t, clientLine(`"session started"`))
				logs.match(t, clientLine(`authenticated`)+`account=frank@localhost`)
				// The session relays: the server answers a ping.
				if err := c.Send("<iq type='get' id='pp-ping'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
					t.Fatal(err)
				}
				if _, err := c.WaitFor(15*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte("pp-ping")) }); err != nil {
					t.Fatalf("no answer to a ping through HAProxy: %v", err)
				}
				if onEjabberd {
					info, err := ej.SessionsInfo("frank")
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(info, clientIP) {
						t.Errorf("ejabberd does not see the client at %s:\n%s", clientIP, info)
					}
				}
			})
		}
	})
}

// Straight to a listener that requires the header, bypassing the
// balancer, a client is refused: from outside proxy_protocol_from, or
// from inside it without a header.
func TestPROXYProtocolListenerRefusesClientsThatBypassTheBalancer(t *testing.T) {
	srv := servers[0]
	e, logs := startLoggedProxy(t, srv, func(c *proxy.Config) {
		c.ProxyProtocol = []string{proxy.ListenerStartTLS}
		c.ProxyProtocolFrom = []string{"127.0.0.1"}
	})
	tests := []struct {
		name, source, reason string
	}{
		{name: "a client outside proxy_protocol_from", source: clientIP, reason: "a source not in proxy_protocol_from"},
		{name: "a trusted source without a header", source: "127.0.0.1", reason: "no valid PROXY header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			c, err := harness.Dial(ctx, harness.Login{Addr: e.proxy.Addr().String(), Domain: domain, User: "frank", Password: password,
				Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain), Source: tt.source})
			if err == nil {
				c.Close()
				t.Fatal("a client that bypassed the balancer logged in")
			}
			logs.match(t, `msg="connection refused" conn=\d+ remote=`+regexp.QuoteMeta(tt.source)+`:\d+ [^\n]*reason="`+regexp.QuoteMeta(tt.reason)+`"`)
		})
	}
}
