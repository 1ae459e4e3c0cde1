//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

const (
	// archiveUser's archive holds archiveSize messages; the catch-up
	// reads the last catchupSize of them.
	archiveUser = "judy"
	archiveSize = 5000
	catchupSize = 2000
	// classicPage is what the classic client asks per MAM page (the
	// server may cap it: Prosody 0.12 at 50 by default).
	classicPage = 250
)

// BenchmarkCatchup measures a catch-up of catchupSize archived messages
// from an archive of archiveSize, in the same run: a 2.0 client's
// <sync after='...'/> through the proxy (a process of its own), and a
// classic client paging the same archive directly with MAM (RSM pages of
// classicPage, each sent when the last one ended). Both log in (STARTTLS,
// SCRAM-SHA-1) through a relay adding 25 ms each way; the proxy sits next
// to the server, as deployed. Times run from TCP connect to the last
// message. It reports messages per second for each, their ratio, and the
// proxy's peak RSS growth during the 2.0 catch-up next to the catch-up's
// size, and the most archived messages the proxy held at once in one
// catch-up (its own count, xmpp2proxy_catchup_held_stanzas).
func BenchmarkCatchup(b *testing.B) {
	const oneWay = 25 * time.Millisecond
	bin := buildProxy(b)
	for _, srv := range servers {
		b.Run(srv.Name(), func(b *testing.B) {
			e := startProxy(b, srv)
			port, _ := harness.FreePort()
			metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
			p := startExternalProxy(b, e, bin, "--metrics-listen", metricsAddr)
			defer p.stop()
			after := seedArchive(b, e, srv).after2000
			toServer := newRelay(b, srv.Addr(), oneWay)
			toProxy := newRelay(b, p.addr, oneWay)
			var classic, x2 time.Duration
			var peakKiB, sizeKiB, held float64
			for b.Loop() {
				classic += classicPaging(b, toServer.Addr(), after)
				const heldSeries = "xmpp2proxy_catchup_held_stanzas"
				m0 := scrape(b, metricsAddr)
				d, size, peak := x2Catchup(b, e, p, toProxy.Addr(), after)
				m1 := scrape(b, metricsAddr)
				if n := m1[heldSeries+"_count"] - m0[heldSeries+"_count"]; n != 1 {
					b.Fatalf("the proxy recorded %v catch-ups, want 1", n)
				}
				held = max(held, m1[heldSeries+"_sum"]-m0[heldSeries+"_sum"])
				x2 += d
				sizeKiB = max(sizeKiB, float64(size)/1024)
				peakKiB = max(peakKiB, float64(peak)/1024)
			}
			n := float64(b.N) * catchupSize
			b.ReportMetric(n/classic.Seconds(), "classic-msgs/s")
			b.ReportMetric(n/x2.Seconds(), "x2-msgs/s")
			b.ReportMetric(classic.Seconds()/x2.Seconds(), "x2/classic")
			b.ReportMetric(sizeKiB, "catchup-KiB")
			b.ReportMetric(peakKiB, "proxy-peak-rss-KiB")
			b.ReportMetric(held, "proxy-held-max-stanzas")
		})
	}
}

// archiveFixture is archiveUser's archive of archiveSize chats from
// grace, seeded once per server and process: after2000 and after50 are the
// archive ids after which the last catchupSize and the last setupMessages
// of them follow.
type archiveFixture struct{ after2000, after50 string }

var archives sync.Map // server name -> *archiveFixture

// seedArchive seeds archiveUser's archive on srv, once. archiveUser is
// online while the chats arrive, so nothing piles up in offline storage;
// each phase ends when its last message has arrived and is archived.
func seedArchive(b *testing.B, e *env, srv harness.Server) *archiveFixture {
	if fx, ok := archives.Load(srv.Name()); ok {
		return fx.(*archiveFixture)
	}
	judy := e.login(b, archiveUser, directTo(srv))
	defer judy.Close()
	grace := e.login(b, "grace", directTo(srv))
	defer grace.Close()
	goOnline(b, judy)
	phase := func(from, to int) string {
		var batch strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&batch, "<message to='%s@%s' type='chat' id='seed%d'><body>seed %d</body></message>", archiveUser, domain, i, i)
			if i%100 == 99 || i == to-1 {
				send(b, grace, batch.String())
				batch.Reset()
			}
		}
		// Thousands of archive writes take a while on a loaded machine.
		got, last := 0, ""
		if _, err := judy.WaitFor(2*time.Minute, func(el []byte) bool {
			if contains(el, "<body>seed ") {
				got++
				last = string(el)
			}
			return contains(el, fmt.Sprintf("<body>seed %d</body>", to-1))
		}); err != nil {
			b.Fatalf("seeding %d..%d: %d arrived, the last %s: %v", from, to, got, last, err)
		}
		return lastArchived(b, judy, fmt.Sprintf("seed %d", to-1))
	}
	fx := &archiveFixture{}
	fx.after2000 = phase(0, archiveSize-catchupSize)
	fx.after50 = phase(archiveSize-catchupSize, archiveSize-setupMessages)
	phase(archiveSize-setupMessages, archiveSize)
	archives.Store(srv.Name(), fx)
	return fx
}

var resultIDRE = regexp.MustCompile(`<result [^>]*\bid=['"]([^'"]+)['"]`)

// lastArchived asks the archive for its last message until it is the one
// with body, and returns its archive id: the server may store a message a
// moment after delivering it.
func lastArchived(b testing.TB, c *harness.Client, body string) string {
	deadline := time.Now().Add(wait)
	for n := 0; time.Now().Before(deadline); n++ {
		id := fmt.Sprintf("last%d", n)
		send(b, c, "<iq type='set' id='"+id+"'><query xmlns='urn:xmpp:mam:2' queryid='"+id+"'>"+
			"<set xmlns='http://jabber.org/protocol/rsm'><max>1</max><before/></set></query></iq>")
		var got string
		for {
			el := waitFor(b, c, "")
			if contains(el, "queryid='"+id+"'") && contains(el, "<body>"+body+"</body>") {
				if m := resultIDRE.FindSubmatch(el); m != nil {
					got = string(m[1])
				}
			}
			if contains(el, "id='"+id+"'") && bytes.HasPrefix(el, []byte("<iq")) {
				break
			}
		}
		if got != "" {
			return got
		}
	}
	b.Fatalf("%q never became the archive's last message", body)
	return ""
}

// classicPaging logs in directly and pages the archive after after until
// it has catchupSize messages, one page at a time.
func classicPaging(b *testing.B, addr, after string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := harness.Dial(ctx, harness.Login{Addr: addr, Domain: domain, User: archiveUser, Password: password,
		Mechanism: "SCRAM-SHA-1", TLS: &tls.Config{InsecureSkipVerify: true}, Resource: "classic"}) //nolint:gosec // test server
	if err != nil {
		b.Fatalf("classic login: %v", err)
	}
	defer c.Close()
	got := 0
	for page := 0; got < catchupSize; page++ {
		id := "page" + strconv.Itoa(page)
		send(b, c, fmt.Sprintf("<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'><set xmlns='http://jabber.org/protocol/rsm'>"+
			"<max>%d</max><after>%s</after></set></query></iq>", id, id, min(classicPage, catchupSize-got), after))
		for {
			el := waitFor(b, c, "")
			if contains(el, "queryid='"+id+"'") {
				got++
				if m := resultIDRE.FindSubmatch(el); m != nil {
					after = string(m[1])
				}
				continue
			}
			if contains(el, "id='"+id+"'") && bytes.HasPrefix(el, []byte("<iq")) {
				if !contains(el, "type='result'") {
					b.Fatalf("classic page failed: %s", el)
				}
				break
			}
		}
	}
	return time.Since(start)
}

// x2Catchup logs in through the proxy with <sync after='...'/> and reads
// until <synced/>. It returns the time, the bytes of archived messages
// received, and how much the proxy's peak RSS grew meanwhile.
func x2Catchup(b *testing.B, e *env, p *externalProxy, addr, after string) (time.Duration, int, int) {
	rssBefore := resetPeakRSS(b, p.cmd.Process.Pid)
	inline := "<bind xmlns='urn:xmpp:bind:0'><tag>catchup</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>" +
		"<sync xmlns='urn:xmpp:xmpp2:0' after='" + after + "'/></bind>"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := harness.Dial(ctx, harness.Login{Addr: addr, Domain: domain, User: archiveUser, Password: password,
		Mechanism: "SCRAM-SHA-1", TLS: e.cert.ClientConfig(domain), SASL2: true, Pipeline: true, Inline: inline})
	if err != nil {
		b.Fatalf("2.0 login: %v", err)
	}
	defer c.Close()
	results, size := 0, 0
	for {
		el := waitFor(b, c, "")
		if contains(el, "queryid='x2-sync'") {
			results++
			size += len(el)
			continue
		}
		if bytes.HasPrefix(el, []byte("<synced")) {
			if m := syncedRE.FindSubmatch(el); m == nil || string(m[2]) != strconv.Itoa(catchupSize) || results != catchupSize {
				b.Fatalf("synced = %s after %d results, want count='%d'", el, results, catchupSize)
			}
			break
		}
	}
	elapsed := time.Since(start)
	return elapsed, size, peakRSS(b, p.cmd.Process.Pid) - rssBefore
}

// resetPeakRSS sets the process's peak RSS to its current RSS
// (proc(5), clear_refs 5) and returns that, in bytes.
func resetPeakRSS(b *testing.B, pid int) int {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
	return procStatusKiB(b, pid, "VmRSS:") * 1024
}

func peakRSS(b *testing.B, pid int) int { return procStatusKiB(b, pid, "VmHWM:") * 1024 }

func procStatusKiB(b *testing.B, pid int, field string) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
