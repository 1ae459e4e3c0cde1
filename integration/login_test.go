//go:build integration

package integration

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

func TestClassicLogin(t *testing.T) {
	tests := []struct {
		name      string
		mechanism string
		directTLS bool
	}{
		{"PLAIN over STARTTLS", "PLAIN", false},
		{"SCRAM-SHA-1 over STARTTLS", "SCRAM-SHA-1", false},
		{"SCRAM-SHA-256 over STARTTLS", "SCRAM-SHA-256", false},
		{"PLAIN over direct TLS", "PLAIN", true},
		{"SCRAM-SHA-1 over direct TLS", "SCRAM-SHA-1", true},
		{"SCRAM-SHA-256 over direct TLS", "SCRAM-SHA-256", true},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c := e.login(t, "alice", func(l *harness.Login) {
					l.Mechanism = tc.mechanism
					if tc.directTLS {
						l.DirectTLS = true
						l.Addr = e.proxy.DirectTLSAddr().String()
					}
				})
				if !strings.HasPrefix(c.JID, "alice@"+domain+"/") {
					t.Fatalf("bound JID = %q", c.JID)
				}
			})
		}
	})
}

func TestMechanismsOfferedThroughTheProxy(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		c := e.login(t, "alice")
		for _, m := range c.Mechanisms {
			if strings.HasSuffix(m, "-PLUS") {
				t.Errorf("proxy offers channel-binding mechanism %s", m)
			}
		}
		for _, want := range []string{"PLAIN", "SCRAM-SHA-1"} {
			if !slices.Contains(c.Mechanisms, want) {
				t.Errorf("mechanisms %v lack %s", c.Mechanisms, want)
			}
		}
	})
}

func TestWrongPasswordShowsUpstreamNotAuthorized(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		for _, mech := range []string{"PLAIN", "SCRAM-SHA-1"} {
			t.Run(mech, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				_, err := harness.Dial(ctx, harness.Login{
					Addr: e.proxy.Addr().String(), Domain: domain, User: "alice", Password: "wrong",
					Mechanism: mech, TLS: e.cert.ClientConfig(domain),
				})
				var se *harness.SASLError
				if !errors.As(err, &se) || se.Condition != "not-authorized" {
					t.Fatalf("err = %v, want SASL not-authorized", err)
				}
			})
		}
	})
}

func TestUpstreamTLSModes(t *testing.T) {
	tests := []struct {
		name string
		mode string
		addr func(harness.Server) string
	}{
		{"upstream over STARTTLS", proxy.UpstreamTLSStartTLS, harness.Server.Addr},
		{"upstream over direct TLS", proxy.UpstreamTLSDirect, harness.Server.DirectTLSAddr},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.addr(srv) == "" {
					t.Skipf("%s has no direct TLS port in this harness", srv.Name())
				}
				e := startProxy(t, srv, func(c *proxy.Config) {
					c.Upstream = tc.addr(srv)
					c.UpstreamTLS = tc.mode
					c.UpstreamInsecure = true
				})
				for _, mech := range []string{"PLAIN", "SCRAM-SHA-1"} {
					c := e.login(t, "bob", func(l *harness.Login) { l.Mechanism = mech })
					if c.JID == "" {
						t.Fatalf("%s: no JID bound", mech)
					}
				}
			})
		}
	})
}
