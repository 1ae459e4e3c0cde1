//go:build integration

// Package integration runs xmpp2proxy end to end against real Prosody and
// ejabberd servers started from the configurations in harness/.
package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

const (
	domain   = "localhost"
	password = "s3cret-Pa55"
)

// Accounts registered on every server.
var accounts = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "henry", "ivan", "judy", "ken", "lena"}

var servers []harness.Server

func TestMain(m *testing.M) {
	code := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for _, start := range []func(context.Context, string) (harness.Server, error){startProsody, startEjabberd} {
			srv, err := start(ctx, domain)
			if err != nil {
				fmt.Fprintln(os.Stderr, "integration: ", err)
				return 1
			}
			defer srv.Stop()
			for _, a := range accounts {
				if err := srv.Register(a, password); err != nil {
					fmt.Fprintln(os.Stderr, "integration: ", err)
					return 1
				}
			}
			servers = append(servers, srv)
		}
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "integration: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func startProsody(ctx context.Context, d string) (harness.Server, error) {
	return harness.StartProsody(ctx, d)
}

func startEjabberd(ctx context.Context, d string) (harness.Server, error) {
	return harness.StartEjabberd(ctx, d)
}

// env is one proxy in front of one upstream server.
type env struct {
	srv   harness.Server
	proxy *proxy.Server
	cert  *harness.Cert
	// addr, when set, is where login connects instead of proxy (a proxy
	// running as its own process).
	addr string
}

// forEachServer runs fn as a subtest per upstream server.
func forEachServer(t *testing.T, fn func(t *testing.T, srv harness.Server)) {
	for _, srv := range servers {
		t.Run(srv.Name(), func(t *testing.T) { fn(t, srv) })
	}
}

// startProxy starts a proxy in front of srv with a fresh certificate,
// its STARTTLS and direct TLS listeners on loopback, each mutate applied
// to the configuration, and its log discarded (PROXY_LOG=1 with -v shows
// it).
func startProxy(t testing.TB, srv harness.Server, mutate ...func(*proxy.Config)) *env {
	t.Helper()
	return startProxyWith(t, srv, proxyStart{mutate: mutate})
}

// proxyStart is what startProxyWith varies between tests.
type proxyStart struct {
	// mutate changes the configuration after the loopback defaults.
	mutate []func(*proxy.Config)
	// log receives the proxy's log (text, at logLevel); nil discards it.
	log      io.Writer
	logLevel slog.Level
}

// startProxyWith is the one way the tests start an in-process proxy:
// every other start function picks options and calls it.
func startProxyWith(t testing.TB, srv harness.Server, o proxyStart) *env {
	t.Helper()
	cert, err := harness.SelfSigned(t.TempDir(), "proxy", domain)
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxy.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DirectTLSListen = "127.0.0.1:0"
	cfg.Upstream = srv.Addr()
	cfg.UpstreamTLS = proxy.UpstreamTLSNone
	cfg.Domains = []string{domain}
	cfg.Cert, cfg.Key = cert.CertFile, cert.KeyFile
	for _, m := range o.mutate {
		m(&cfg)
	}
	if o.log == nil {
		o.log = io.Discard
		if testing.Verbose() && os.Getenv("PROXY_LOG") != "" {
			o.log, o.logLevel = os.Stderr, slog.LevelDebug
		}
	}
	p, err := proxy.NewServer(cfg, nil, slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: o.logLevel})))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
	})
	return &env{srv: srv, proxy: p, cert: cert}
}

// noDirectTLS turns the direct TLS listener off, for tests that use only
// one listener.
func noDirectTLS(c *proxy.Config) { c.DirectTLSListen = "" }

// login logs user in through the proxy over STARTTLS with SCRAM-SHA-1.
func (e *env) login(t testing.TB, user string, opts ...func(*harness.Login)) *harness.Client {
	t.Helper()
	addr := e.addr
	if addr == "" {
		addr = e.proxy.Addr().String()
	}
	l := harness.Login{
		Addr: addr, Domain: domain, User: user, Password: password,
		Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain),
	}
	for _, o := range opts {
		o(&l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := harness.Dial(ctx, l)
	if err != nil {
		t.Fatalf("login %s through the proxy: %v\nupstream log:\n%s", user, err, e.srv.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func contains(b []byte, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(string(b), p) {
			return false
		}
	}
	return true
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
