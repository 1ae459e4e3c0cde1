//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// opsClient keeps no idle connection, so nothing outlives a test.
var opsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// opsGet fetches path from the proxy's metrics endpoint at addr.
func opsGet(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := opsClient.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape reads /metrics into series (name{labels} exactly as exposed)
// and their values, and fails on a series whose labels name a JID.
func scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	code, body := opsGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	series := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "@") {
			t.Errorf("a series names a JID: %s", line)
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// waitMetric scrapes until the series reaches at least want. Only for
// what neither the client nor the log shows (a stanza counted on its way
// upstream): a counter has no event to wait on, only its value to poll.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	pollMetrics(t, addr, fmt.Sprintf("%s reaching %v", series, want), func(s map[string]float64) bool { return s[series] >= want })
}

// openSessions waits until the proxy counts n client sessions open, of
// every kind and listener together.
func openSessions(t testing.TB, addr string, n float64) {
	t.Helper()
	pollMetrics(t, addr, fmt.Sprintf("%v open sessions", n), func(s map[string]float64) bool {
		var open float64
		for name, v := range s {
			if strings.HasPrefix(name, "xmpp2proxy_sessions{") {
				open += v
			}
		}
		return open == n
	})
}

// pollMetrics scrapes until ok accepts the series.
func pollMetrics(t testing.TB, addr, what string, ok func(map[string]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok(scrape(t, addr)) {
		if time.Now().After(deadline) {
			t.Fatalf("never saw %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling the proxy, not waiting for it
	}
}

// waitReady polls /readyz until it answers code: readiness is polled by
// design (a balancer's health check does the same), it has no event.
func waitReady(t *testing.T, addr string, code int) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, body := opsGet(t, addr, "/readyz")
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz stayed %d %q, want %d", got, body, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withMetrics serves the proxy's metrics on a loopback port.
func withMetrics(c *proxy.Config) { c.MetricsListen = "127.0.0.1:0" }

// The counters move for what real clients do against real Prosody, and
// /readyz follows the upstream and the drain. Prosody is this test's own:
// the test stops it.
func TestMetricsAndHealthAgainstProsody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := harness.StartProsody(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop()
		}
	})
	for _, a := range []string{"alice", "bob"} {
		if err := srv.Register(a, password); err != nil {
			t.Fatal(err)
		}
	}

	logs := &logWatch{}
	e := startProxyWith(t, srv, proxyStart{log: logs, mutate: []func(*proxy.Config){withMetrics}})
	ops := e.proxy.MetricsAddr().String()
	if code, body := opsGet(t, ops, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := opsGet(t, ops, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d %q with Prosody up", code, body)
	}
	before := scrape(t, ops)

	// A classic login, a 2.0 login that vanishes and resumes, a failed
	// login, and a message the proxy bounces.
	bob := e.login(t, "bob")
	previd, jid, h := vanishAfter(t, e, "alice", bob, "seen "+harness.NewID())
	// The proxy counts it held before it says so.
	logs.waitFor(t, 0, "session held for resumption", jid)
	if held := scrape(t, ops)["xmpp2proxy_sessions_held_for_resumption"]; held < 1 {
		t.Fatalf("%v sessions held for resumption after the log said one was", held)
	}
	alice := e.login(t, "alice", func(l *harness.Login) {
		l.SASL2, l.Inline = true, fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h)+bind2SM
	})
	if !contains(alice.Success, "<resumed ") || alice.JID != jid {
		t.Fatalf("alice did not resume %s: %s", jid, alice.Success)
	}
	dialCtx, dialCancel := context.WithTimeout(ctx, wait)
	defer dialCancel()
	_, err = harness.Dial(dialCtx, harness.Login{Addr: e.proxy.Addr().String(), Domain: domain, User: "bob", Password: "wrong",
		Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain)})
	var saslErr *harness.SASLError
	if !errors.As(err, &saslErr) {
		t.Fatalf("a wrong password: %v, want a SASL failure", err)
	}
	send(t, alice, "<message to='bob@"+domain+"/not-here' id='bounce1' type='chat'><body>anyone?</body></message>")
	waitFor(t, alice, "bounce1", "<service-unavailable")

	// The connection alice resumed on ends as its own session once it
	// has handed over, just after alice has her answer; the proxy counts
	// the end before it logs it.
	logs.waitFor(t, 0, "session ended", `outcome="resumed an earlier session"`)
	after := scrape(t, ops)
	moved := func(series string) float64 { return after[series] - before[series] }
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`xmpp2proxy_authentications_total{kind="classic",outcome="success"}`, 1},
		{`xmpp2proxy_authentications_total{kind="classic",outcome="failure"}`, 1},
		{`xmpp2proxy_authentications_total{kind="sasl2",outcome="success"}`, 2},
		{`xmpp2proxy_setups_total{outcome="ok"}`, 1},
		{`xmpp2proxy_setup_duration_seconds_count`, 1},
		{`xmpp2proxy_resumptions_total{outcome="ok"}`, 1},
		{`xmpp2proxy_bounces_total{condition="service-unavailable"}`, 1},
		{`xmpp2proxy_sessions{kind="classic",listener="starttls"}`, 1},
		{`xmpp2proxy_sessions{kind="v2",listener="starttls"}`, 1},
		{`xmpp2proxy_sessions_started_total{listener="starttls"}`, 4},
		{`xmpp2proxy_sessions_ended_total{kind="v2",listener="starttls",outcome="resumed_an_earlier_session"}`, 1},
	} {
		if got := moved(tc.series); got != tc.want {
			t.Errorf("%s moved by %v, want %v", tc.series, got, tc.want)
		}
	}
	for _, series := range []string{
		`xmpp2proxy_stanzas_total{direction="client_to_upstream"}`,
		`xmpp2proxy_stanzas_total{direction="upstream_to_client"}`,
		`xmpp2proxy_bytes_total{direction="client_to_upstream"}`,
		`xmpp2proxy_bytes_total{direction="upstream_to_client"}`,
	} {
		if moved(series) <= 0 {
			t.Errorf("%s did not move", series)
		}
	}

	t.Run("readyz is 503 while the proxy drains", func(t *testing.T) {
		// Prosody, stopped, acks nothing: the drain waits for the ack of
		// what alice sent, as long as Prosody is stopped.
		pid := srv.PID()
		if pid <= 1 { // 0 would signal this test's own process group
			t.Fatalf("Prosody's pid is %d", pid)
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
		defer resume()
		sent := scrape(t, ops)[`xmpp2proxy_stanzas_total{direction="client_to_upstream"}`]
		send(t, alice, "<message to='bob@"+domain+"' type='chat'><body>before the drain</body></message>")
		// Counted once it is on its way upstream, in flight.
		waitMetric(t, ops, `xmpp2proxy_stanzas_total{direction="client_to_upstream"}`, sent+1)
		shutdown := make(chan error, 1)
		go func() {
			sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
			defer scancel()
			shutdown <- e.proxy.Shutdown(sctx)
		}()
		if body := waitReady(t, ops, http.StatusServiceUnavailable); !strings.HasPrefix(body, "draining") {
			t.Errorf("/readyz said %q while draining, want draining", body)
		}
		if code, _ := opsGet(t, ops, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz %d while draining, want 200", code)
		}
		resume()
		waitFor(t, alice, "<system-shutdown")
		if err := <-shutdown; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	t.Run("readyz is 503 when the upstream is stopped", func(t *testing.T) {
		e := startProxy(t, srv, withMetrics)
		ops := e.proxy.MetricsAddr().String()
		waitReady(t, ops, http.StatusOK)
		failures := scrape(t, ops)["xmpp2proxy_upstream_dial_failures_total"]
		stopped = true
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		// A client's login makes the proxy dial, and fail, at once.
		dialCtx, dialCancel := context.WithTimeout(ctx, wait)
		defer dialCancel()
		if _, err := harness.Dial(dialCtx, harness.Login{Addr: e.proxy.Addr().String(), Domain: domain, User: "bob", Password: password,
			Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain)}); err == nil {
			t.Fatal("logged in with Prosody stopped")
		}
		if body := waitReady(t, ops, http.StatusServiceUnavailable); !strings.HasPrefix(body, "upstream unreachable") {
			t.Errorf("/readyz said %q with Prosody stopped, want upstream unreachable", body)
		}
		if got := scrape(t, ops)["xmpp2proxy_upstream_dial_failures_total"]; got != failures+1 {
			t.Errorf("upstream dial failures %v, want %v", got, failures+1)
		}
	})
}
