//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// The benchmarks compare the same traffic sent to the same server in the
// same run: once directly (client STARTTLS to the server) and once through
// the proxy (client STARTTLS to the proxy, plaintext loopback upstream, the
// deployment the proxy is built for). Results are ratios, never asserted.
//
//	make bench
//	go test -tags integration -run '^$' -bench . -benchtime 3x ./integration/

// path is one way of reaching the server: direct or through the proxy.
type path struct {
	name  string
	login func(tb testing.TB, user string) *harness.Client
}

func benchPaths(b *testing.B, srv harness.Server) []path {
	e := startProxy(b, srv)
	direct := func(tb testing.TB, user string) *harness.Client { return e.login(tb, user, directTo(srv)) }
	proxied := func(tb testing.TB, user string) *harness.Client { return e.login(tb, user) }
	return []path{{"direct", direct}, {"proxy", proxied}}
}

const roundStanzas = 2000

// BenchmarkRelayThroughput sends rounds of headline messages (delivered,
// not archived) from one client to another's full JID, alternating the
// direct and the proxied path so both see the same server state. The proxy
// runs as its own process, as deployed, and its CPU time per relayed
// stanza (in and out) is reported too. It runs twice: with every process
// sharing every core, and with the proxy on a core of its own while the
// server and the test clients share another, on both paths alike; the
// second asks whether the proxy is ever the bottleneck.
func BenchmarkRelayThroughput(b *testing.B) {
	bin := buildProxy(b)
	for _, srv := range servers {
		b.Run(srv.Name()+"/shared-cores", func(b *testing.B) { relayThroughput(b, srv, bin, false) })
		b.Run(srv.Name()+"/proxy-own-core", func(b *testing.B) { relayThroughput(b, srv, bin, true) })
	}
}

func relayThroughput(b *testing.B, srv harness.Server, bin string, ownCore bool) {
	e := startProxy(b, srv) // only for its certificate
	p := startExternalProxy(b, e, bin)
	defer p.stop()
	if ownCore {
		unpin := pinCPUs(b, srv.PID(), p.cmd.Process.Pid)
		defer unpin()
	}
	direct := [2]*harness.Client{e.login(b, "alice", directTo(srv)), e.login(b, "bob", directTo(srv))}
	proxied := [2]*harness.Client{e.loginAt(b, p.addr, "alice", false), e.loginAt(b, p.addr, "bob", false)}
	defer closeAll(proxied[:])
	var elapsed [2]time.Duration
	var cpu time.Duration
	for b.Loop() {
		elapsed[0] += sendRound(b, direct[0], direct[1], roundStanzas)
		before := p.cpuTime(b)
		elapsed[1] += sendRound(b, proxied[0], proxied[1], roundStanzas)
		cpu += p.cpuTime(b) - before
	}
	n := float64(b.N * roundStanzas)
	rDirect, rProxy := n/elapsed[0].Seconds(), n/elapsed[1].Seconds()
	b.ReportMetric(rDirect, "direct-stanzas/s")
	b.ReportMetric(rProxy, "proxy-stanzas/s")
	b.ReportMetric(rProxy/rDirect, "proxy/direct")
	b.ReportMetric(float64(cpu.Microseconds())/n, "proxy-cpu-µs/stanza")
}

// pinCPUs puts the server and this test process (the clients) on CPU 0 and
// the proxy on CPU 1, with taskset, and returns what undoes it. It skips
// the benchmark on a machine with fewer than two CPUs or no taskset.
func pinCPUs(b *testing.B, serverPID, proxyPID int) (unpin func()) {
	if runtime.NumCPU() < 2 || serverPID == 0 {
		b.Skip("needs two CPUs and the server's pid")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		b.Skip("needs taskset (util-linux)")
	}
	set := func(cpus string, pids ...int) {
		for _, pid := range pids {
			if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
				b.Fatalf("taskset %d: %v\n%s", pid, err, out)
			}
		}
	}
	set("0", serverPID, os.Getpid())
	set("1", proxyPID)
	all := "0-" + strconv.Itoa(runtime.NumCPU()-1)
	return func() { set(all, serverPID, os.Getpid()) }
}

func directTo(srv harness.Server) func(*harness.Login) {
	return func(l *harness.Login) {
		l.Addr = srv.Addr()
		l.TLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the harness's self-signed upstream
	}
}

func closeAll(cs []*harness.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// sendRound writes n stanzas as fast as the connection takes them and
// returns when the last one has arrived.
func sendRound(tb testing.TB, from, to *harness.Client, n int) time.Duration {
	tag := harness.NewID()
	var buf bytes.Buffer
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(&buf, "<message to='%s' type='headline' id='%s-%d'><body>benchmark stanza %d of round %s</body></message>", to.JID, tag, i, i, tag)
			if buf.Len() > 16<<10 || i == n-1 {
				if err := from.Send(buf.String()); err != nil {
					errc <- err
					return
				}
				buf.Reset()
			}
		}
		errc <- nil
	}()
	last := fmt.Sprintf("%s-%d", tag, n-1)
	if _, err := to.WaitFor(time.Minute, func(b []byte) bool { return bytes.Contains(b, []byte(last)) }); err != nil {
		tb.Fatalf("round %s: %v", tag, err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkRelayLatency measures ping round trips to the server on each
// path and reports p50 and p99 per path and the proxy's added p50 and p99.
func BenchmarkRelayLatency(b *testing.B) {
	for _, srv := range servers {
		b.Run(srv.Name(), func(b *testing.B) {
			paths := benchPaths(b, srv)
			clients := make([]*harness.Client, len(paths))
			for i, p := range paths {
				clients[i] = p.login(b, "carol")
			}
			samples := make([][]time.Duration, len(paths))
			b.ResetTimer()
			for b.Loop() {
				for range pingsPerIteration {
					for i, c := range clients {
						samples[i] = append(samples[i], ping(b, c))
					}
				}
			}
			b.StopTimer()
			var p50, p99 [2]time.Duration
			for i := range paths {
				p50[i], p99[i] = percentile(samples[i], 50), percentile(samples[i], 99)
				b.ReportMetric(float64(p50[i].Microseconds()), paths[i].name+"-p50-µs")
				b.ReportMetric(float64(p99[i].Microseconds()), paths[i].name+"-p99-µs")
			}
			b.ReportMetric(float64((p50[1] - p50[0]).Microseconds()), "added-p50-µs")
			b.ReportMetric(float64((p99[1] - p99[0]).Microseconds()), "added-p99-µs")
		})
	}
}

const pingsPerIteration = 200

func ping(tb testing.TB, c *harness.Client) time.Duration {
	id := harness.NewID()
	start := time.Now()
	if err := c.Send("<iq type='get' id='" + id + "' to='" + domain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.WaitFor(wait, func(b []byte) bool { return bytes.Contains(b, []byte(id)) }); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

const idleSessions = 300

// BenchmarkIdleSessionRSS runs the real xmpp2proxy binary as its own
// process, opens authenticated and bound TLS sessions through it, and
// reports the growth of the proxy's resident memory per idle session. Each
// iteration starts a fresh process so no iteration reuses memory freed by
// the one before.
func BenchmarkIdleSessionRSS(b *testing.B) {
	srv := servers[0]
	bin := buildProxy(b)
	cert, err := harness.SelfSigned(b.TempDir(), "proxy", domain)
	if err != nil {
		b.Fatal(err)
	}
	e := &env{srv: srv, cert: cert}
	for _, kind := range []string{"classic", "sasl2-bind2"} {
		b.Run(kind, func(b *testing.B) {
			var perSession []float64
			for b.Loop() {
				perSession = append(perSession, idleRSSOnce(b, e, bin, kind == "sasl2-bind2"))
			}
			slices.Sort(perSession)
			b.ReportMetric(perSession[len(perSession)/2], "KiB/idle-session")
		})
	}
}

// externalProxy is the xmpp2proxy binary running as its own process, so
// its memory and CPU can be read from /proc apart from the test's clients.
type externalProxy struct {
	addr string
	cmd  *exec.Cmd
}

// buildProxy builds the binary once per benchmark or test.
func buildProxy(tb testing.TB) string {
	bin := filepath.Join(tb.TempDir(), "xmpp2proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/xmpp2proxy").CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startExternalProxy(tb testing.TB, e *env, bin string, extra ...string) *externalProxy {
	port, _ := harness.FreePort()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return runProxy(tb, bin, addr, append([]string{"serve", "--listen", addr, "--upstream", e.srv.Addr(), "--upstream-tls", "none",
		"--domain", domain, "--cert", e.cert.CertFile, "--key", e.cert.KeyFile, "--log-level", "warn"}, extra...)...)
}

// runProxy runs the binary with args and returns once it accepts
// connections on addr.
func runProxy(tb testing.TB, bin, addr string, args ...string) *externalProxy {
	p := &externalProxy{addr: addr}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := harness.WaitForPort(ctx, p.addr, nil); err != nil {
		p.stop()
		tb.Fatal(err)
	}
	return p
}

func (p *externalProxy) stop() { _ = p.cmd.Process.Signal(os.Interrupt); _ = p.cmd.Wait() }

// kill ends the process with SIGKILL, as an OOM killer or a crash does:
// no stream errors, no stream closes, the kernel drops every socket.
func (p *externalProxy) kill() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() }

// cpuTime is the process's user plus system CPU time so far.
func (p *externalProxy) cpuTime(tb testing.TB) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

func idleRSSOnce(b *testing.B, e *env, bin string, sasl2 bool) float64 {
	port, _ := harness.FreePort()
	ops := "127.0.0.1:" + strconv.Itoa(port)
	p := startExternalProxy(b, e, bin, "--metrics-listen", ops)
	defer p.stop()
	// Warm up TLS, the allocator and the runtime's first arenas.
	for i := 0; i < 20; i++ {
		e.loginAt(b, p.addr, "dave", sasl2).Close()
	}
	openSessions(b, ops, 0) // the warm-up sessions are torn down
	before := rssKiB(b, p.cmd.Process.Pid)
	clients := make([]*harness.Client, 0, idleSessions)
	for i := 0; i < idleSessions; i++ {
		clients = append(clients, e.loginAt(b, p.addr, accounts[i%len(accounts)], sasl2))
	}
	openSessions(b, ops, idleSessions)
	// Idle is a duration, not an event: past the writers' linger
	// (proxy/relaywrite.go), as a session between two messages.
	time.Sleep(time.Second)

	after := rssKiB(b, p.cmd.Process.Pid)
	for _, c := range clients {
		c.Close()
	}
	return float64(after-before) / idleSessions
}

// loginAt logs user in through a proxy at addr.
func (e *env) loginAt(tb testing.TB, addr, user string, sasl2 bool) *harness.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l := harness.Login{Addr: addr, Domain: domain, User: user, Password: password,
		Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain)}
	if sasl2 {
		l.SASL2, l.Inline = true, bind2SM
	}
	c, err := harness.Dial(ctx, l)
	if err != nil {
		tb.Fatalf("login %s: %v", user, err)
	}
	return c
}

func rssKiB(tb testing.TB, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}
