package proxy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The exposition follows Prometheus' naming rules, every name is the
// proxy's own, and no label value is a JID or an address, after sessions
// of both kinds with traffic, a failed login and a bounce.
func TestTheExpositionIsTheProxysOwnAndNamesNoOne(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv, logs := startLoggedProxy(t, fake.addr(), LogFormatText, func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	classic := dialProxy(t, srv)
	classic.login()
	up := fake.accept(t)
	up.send(t, "<message from='bob@localhost/r' to='alice@localhost/test'><body>hi</body></message>")
	classic.nextOf(stream.UnitElement)
	failed := dialProxy(t, srv)
	failed.openStream()
	failed.send("<auth xmlns='" + ns.SASL + "' mechanism='PLAIN'>" + wrongPassword + "</auth>")
	failed.expect(stream.UnitElement, saslNotAuthzd)
	fake.accept(t) // its upstream leg
	e := &metricsEnv{srv: srv, fake: fake, logs: logs}
	e.vanish(t)

	problems, err := testutil.GatherAndLint(srv.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if n, err := testutil.GatherAndCount(srv.metrics.reg); err != nil || n < 10 {
		t.Fatalf("%d series (%v), want the proxy's", n, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasPrefix(line, "xmpp2proxy_") {
			t.Errorf("a series not named xmpp2proxy_: %s", line)
		}
		if strings.Contains(line, "@") || strings.Contains(line, "127.0.0.1") || strings.Contains(line, "localhost") {
			t.Errorf("a series names a JID or an address: %s", line)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		dead     bool
		wantCode int
		wantBody string
	}{
		{"healthz answers while the process runs", "/healthz", false, http.StatusOK, "ok"},
		{"healthz answers even when the upstream cannot be reached", "/healthz", true, http.StatusOK, "ok"},
		{"readyz is ready when the upstream accepts connections", "/readyz", false, http.StatusOK, "ready"},
		{"readyz is 503 when the upstream cannot be reached", "/readyz", true, http.StatusServiceUnavailable, "upstream unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			upstream := deadAddr(t)
			if !tc.dead {
				upstream = startFakeUpstream(t, false).addr()
			}
			srv := startMetricsProxy(t, upstream, nil)
			code, body := get(t, srv, tc.path)
			if code != tc.wantCode || !strings.HasPrefix(body, tc.wantBody) {
				t.Fatalf("%s: %d %q, want %d %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// A session's failed upstream dial is what readyz says next, without
// waiting for its own dial to be due.
func TestASessionsFailedDialMakesReadyzFailAtOnce(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startMetricsProxy(t, fake.addr(), nil)
	if code, _ := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("readyz %d before the upstream went away", code)
	}
	fake.ln.Close() // new connections are refused
	c := dialProxy(t, srv)
	c.send(testHeader)
	c.nextOf(stream.UnitStreamOpen)
	c.expectStreamError(stream.CondRemoteConnectionFailed)
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "upstream") {
		t.Fatalf("readyz %d %q after a session could not reach the upstream, want 503", code, body)
	}
}

// readyz turns 503 as Shutdown begins, before any session is told, and
// the endpoint serves through the drain; it is gone once Shutdown returns.
func TestReadyzIsDrainingFromTheStartOfShutdownUntilItEnds(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	ln := &tapListener{Listener: listenLoopback(t), accepted: make(chan *stallConn, 16)}
	srv := newTestServer(t, fake.addr(), nil, func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.QueueSize = 1
		c.Timeouts.Write = time.Hour // only Shutdown's deadline ends the stalled one
	})
	if err := srv.startOps(); err != nil {
		t.Fatal(err)
	}
	if !srv.serve(ln, false) {
		t.Fatal("serve refused the listener")
	}
	ups := &upstreams{fake: fake}
	stalled := loginTapped(t, srv, ln, ups)
	stalled.stall(t)
	told := loginTapped(t, srv, ln, ups)
	if code, _ := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("readyz %d before the shutdown", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(ctx) }()
	// By the time a client is told, readyz says draining.
	told.c.expectStreamError(stream.CondSystemShutdown)
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "draining") {
		t.Fatalf("readyz %d %q while draining, want 503 draining", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d while draining, want 200", code)
	}
	addr := srv.MetricsAddr().String()
	cancel() // the deadline: the stalled session is dropped
	<-shutdownErr
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("the metrics endpoint still accepts connections after Shutdown")
	}
}
