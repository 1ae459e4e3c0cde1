package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// metricsEnv is one proxy in front of the fake upstream, with a client
// dialled, for one metrics row.
type metricsEnv struct {
	srv  *Server
	fake *fakeUpstream
	logs *logBuffer
	c    *testClient   // dialled by client, once a step needs it
	cc   *countingConn // c's connection, counting what it wrote and read
	up   *fakeConn     // the client's upstream leg, once accepted
	smID string        // the client's SM id, once enabled
}

// metricValue is one series' value (a histogram's: its sample count), or
// 0 when the series does not exist yet. labels are name, value pairs and
// must be all of the series' labels.
func metricValue(t *testing.T, srv *Server, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName(), lp.GetValue())
			}
			if strings.Join(got, "\x00") != strings.Join(labels, "\x00") {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

const (
	bind2Plain  = "<bind xmlns='" + ns.Bind2 + "'><tag>m</tag></bind>"
	bind2WithSM = "<bind xmlns='" + ns.Bind2 + "'><tag>m</tag><enable xmlns='" + ns.SM + "' resume='true'/></bind>"
	bind2Sync   = "<bind xmlns='" + ns.Bind2 + "'><tag>m</tag><sync xmlns='" + ns.XMPP2 + "' within='120'/></bind>"
)

var smEnabledID = regexp.MustCompile(`<enabled xmlns='` + ns.SM + `' id='([^']+)'`)

// client returns the row's client, dialling it the first time: a row
// that measures connections measures before it.
func (e *metricsEnv) client(t *testing.T) *testClient {
	t.Helper()
	if e.c == nil {
		e.c, e.cc = dialCounted(t, e.srv)
	}
	return e.c
}

// relaying waits until the client's session relays: a stanza it sends
// reaches the upstream. (A 2.0 client has its <success/> before.)
func (e *metricsEnv) relaying(t *testing.T) {
	t.Helper()
	e.client(t).send("<iq type='get' id='relaying'><ping xmlns='urn:xmpp:ping'/></iq>")
	for u := skipUntil(t, e.up, stream.UnitElement); !strings.Contains(string(u.Raw), "relaying"); u = skipUntil(t, e.up, stream.UnitElement) {
	}
}

// sendAuthenticate2 sends a SASL2 PLAIN <authenticate/> for alice with
// inline children.
func (e *metricsEnv) sendAuthenticate2(c *testClient, inline string) {
	c.send("<authenticate xmlns='" + ns.SASL2 + "' mechanism='PLAIN'><initial-response>" +
		plainResponse("alice", "secret") + "</initial-response>" + inline + "</authenticate>")
}

// answerReplay answers the Bind2 replay the proxy sent on up: bind,
// carbons and archive metadata, plus extra, once it has read the request
// with lastID, the replay's last.
func answerReplay(t *testing.T, up *fakeConn, lastID, extra string) {
	t.Helper()
	for u := skipUntil(t, up, stream.UnitElement); !strings.Contains(string(u.Raw), "id='"+lastID+"'"); u = skipUntil(t, up, stream.UnitElement) {
	}
	up.send(t, "<iq type='result' id='"+idBind+"'><bind xmlns='"+ns.Bind+"'><jid>alice@localhost/x2</jid></bind></iq>"+
		"<iq type='result' id='"+idCarbons+"'/><iq type='result' id='"+idMetadata+"'/>"+extra)
}

// readSuccess reads a SASL2 <success/> and the features after it.
func readSuccess(t *testing.T, c *testClient) []byte {
	t.Helper()
	raw := c.nextOf(stream.UnitElement)
	if !strings.HasPrefix(string(raw), "<success xmlns='"+ns.SASL2+"'") {
		t.Fatalf("client got %q, want SASL2 <success/>", raw)
	}
	c.nextOf(stream.UnitElement) // <stream:features/>
	return raw
}

// online2 brings the client online as a 2.0 session with inline.
func (e *metricsEnv) online2(t *testing.T, inline string) {
	t.Helper()
	e.client(t).openStream()
	e.sendAuthenticate2(e.client(t), inline)
	e.up = e.fake.accept(t)
	answerReplay(t, e.up, idArchiveMark, "")
	if m := smEnabledID.FindSubmatch(readSuccess(t, e.client(t))); m != nil {
		e.smID = string(m[1])
	}
}

// vanish drops a 2.0 client with SM and waits until its session is held.
func (e *metricsEnv) vanish(t *testing.T) {
	t.Helper()
	e.online2(t, bind2WithSM)
	if e.smID == "" {
		t.Fatal("no SM id in the <success/>")
	}
	e.client(t).conn.Close()
	e.logs.wait(t, "2.0 client vanished; session held for resumption")
}

// resumeWith logs a new connection in asking to resume with h and
// returns its <success/>; a failed resumption is answered with a fresh
// bind, which the fake upstream answers.
func (e *metricsEnv) resumeWith(t *testing.T, previd string, h int, resumes bool) []byte {
	t.Helper()
	c := dialProxy(t, e.srv)
	c.openStream()
	e.sendAuthenticate2(c, fmt.Sprintf("<resume xmlns='%s' previd='%s' h='%d'/>", ns.SM, previd, h)+bind2WithSM)
	up := e.fake.accept(t)
	if !resumes {
		answerReplay(t, up, idArchiveMark, "")
	}
	return readSuccess(t, c)
}

func syncResult(id string) string {
	return "<message to='alice@localhost/x2'><result xmlns='" + ns.MAM + "' queryid='" + queryIDSync + "' id='" + id + "'>" +
		"<forwarded xmlns='urn:xmpp:forward:0'><message from='bob@localhost/r' to='alice@localhost' type='chat'><body>" + id + "</body></message></forwarded></result></message>"
}

// Each metric moves when its event happens, by exactly as much.
func TestEachMetricMovesWhenItsEventHappens(t *testing.T) {
	t.Parallel()
	const msg = "<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>"
	type row struct {
		name string
		// deadUpstream: the proxy's upstream address has nothing listening.
		deadUpstream bool
		metric       string
		labels       []string
		tweak        func(*Config)
		prepare      func(t *testing.T, e *metricsEnv) // not measured
		event        func(t *testing.T, e *metricsEnv)
		want         float64
		// wantFrom, when set, gives want once the event has run.
		wantFrom func(e *metricsEnv) float64
	}
	login := func(t *testing.T, e *metricsEnv) { e.client(t).login(); e.up = e.fake.accept(t) }
	tests := []row{
		{name: "an accepted connection counts as a started session",
			metric: "xmpp2proxy_sessions_started_total", labels: []string{"listener", "starttls"},
			event: func(t *testing.T, e *metricsEnv) { e.client(t).openStream() }, want: 1},
		{name: "a negotiating connection is open with kind none",
			metric: "xmpp2proxy_sessions", labels: []string{"kind", "none", "listener", "starttls"},
			event: func(t *testing.T, e *metricsEnv) { e.client(t).openStream() }, want: 1},
		{name: "a classic session that relays is open as classic",
			metric: "xmpp2proxy_sessions", labels: []string{"kind", "classic", "listener", "starttls"},
			event: login, want: 1},
		{name: "a 2.0 session that relays is open as v2",
			metric: "xmpp2proxy_sessions", labels: []string{"kind", "v2", "listener", "starttls"},
			event: func(t *testing.T, e *metricsEnv) { e.online2(t, bind2Plain); e.relaying(t) }, want: 1},
		{name: "a session that ends is no longer open",
			metric: "xmpp2proxy_sessions", labels: []string{"kind", "classic", "listener", "starttls"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				closeBothWays(t, e.client(t), e.up)
				waitSessions(t, e.srv, 0)
			}, want: -1},
		{name: "a classic session closed by both sides ends with outcome closed",
			metric: "xmpp2proxy_sessions_ended_total", labels: []string{"kind", "classic", "listener", "starttls", "outcome", "closed"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				closeBothWays(t, e.client(t), e.up)
				waitSessions(t, e.srv, 0)
			}, want: 1},
		{name: "a session refused for its domain ends with outcome stream_error",
			metric: "xmpp2proxy_sessions_ended_total", labels: []string{"kind", "none", "listener", "starttls", "outcome", "stream_error"},
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send(strings.Replace(testHeader, "to='localhost'", "to='elsewhere.example'", 1))
				e.client(t).nextOf(stream.UnitStreamOpen)
				e.client(t).expectStreamError(stream.CondHostUnknown)
				waitSessions(t, e.srv, 0)
			}, want: 1},
		{name: "a classic login counts as a classic success",
			metric: "xmpp2proxy_authentications_total", labels: []string{"kind", "classic", "outcome", "success"},
			event: login, want: 1},
		{name: "a wrong password counts as a classic failure",
			metric: "xmpp2proxy_authentications_total", labels: []string{"kind", "classic", "outcome", "failure"},
			prepare: func(t *testing.T, e *metricsEnv) { e.client(t).openStream() },
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send("<auth xmlns='" + ns.SASL + "' mechanism='PLAIN'>" + wrongPassword + "</auth>")
				e.client(t).expect(stream.UnitElement, saslNotAuthzd)
			}, want: 1},
		{name: "a SASL2 login counts as a sasl2 success",
			metric: "xmpp2proxy_authentications_total", labels: []string{"kind", "sasl2", "outcome", "success"},
			event: func(t *testing.T, e *metricsEnv) { e.online2(t, bind2Plain) }, want: 1},
		{name: "a 2.0 setup that completes counts as ok",
			metric: "xmpp2proxy_setups_total", labels: []string{"outcome", "ok"},
			event: func(t *testing.T, e *metricsEnv) { e.online2(t, bind2Plain) }, want: 1},
		{name: "a 2.0 setup that completes is timed",
			metric: "xmpp2proxy_setup_duration_seconds",
			event:  func(t *testing.T, e *metricsEnv) { e.online2(t, bind2Plain) }, want: 1},
		{name: "a 2.0 setup whose upstream drops counts as failed",
			metric: "xmpp2proxy_setups_total", labels: []string{"outcome", "failed"},
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).openStream()
				e.sendAuthenticate2(e.client(t), bind2Plain)
				up := e.fake.accept(t)
				for u := skipUntil(t, up, stream.UnitElement); !strings.Contains(string(u.Raw), idArchiveMark); u = skipUntil(t, up, stream.UnitElement) {
				}
				up.drop()
				e.client(t).expectStreamError(stream.CondRemoteConnectionFailed)
			}, want: 1},
		{name: "a sync delivers its archived messages into the catch-up histogram",
			metric: "xmpp2proxy_catchup_messages",
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).openStream()
				e.sendAuthenticate2(e.client(t), bind2Sync)
				up := e.fake.accept(t)
				answerReplay(t, up, queryIDSync+"-0", syncResult("a1")+syncResult("a2")+
					"<iq type='result' id='"+queryIDSync+"-0'><fin xmlns='"+ns.MAM+"' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><last>a2</last></set></fin></iq>")
				readSuccess(t, e.client(t))
				// The catch-up streams after <success/>: it is over at <synced/>.
				for !strings.HasPrefix(string(e.client(t).nextOf(stream.UnitElement)), "<synced") {
				}
				mfs, _ := e.srv.metrics.reg.Gather()
				for _, mf := range mfs {
					if mf.GetName() == "xmpp2proxy_catchup_messages" {
						if sum := mf.GetMetric()[0].GetHistogram().GetSampleSum(); sum != 2 {
							t.Errorf("catch-up sizes sum to %v, want the 2 messages delivered", sum)
						}
					}
				}
			}, want: 1},
		{name: "a resumption of a held session counts as ok",
			metric: "xmpp2proxy_resumptions_total", labels: []string{"outcome", "ok"},
			prepare: func(t *testing.T, e *metricsEnv) { e.vanish(t) },
			event: func(t *testing.T, e *metricsEnv) {
				if s := e.resumeWith(t, e.smID, 0, true); !strings.Contains(string(s), "<resumed ") {
					t.Fatalf("got %q, want <resumed/>", s)
				}
			}, want: 1},
		{name: "a resumption of a held session that cannot resume counts as failed",
			metric: "xmpp2proxy_resumptions_total", labels: []string{"outcome", "failed"},
			tweak:   func(c *Config) { c.Timeouts.Close = Duration(10 * time.Millisecond) },
			prepare: func(t *testing.T, e *metricsEnv) { e.vanish(t) },
			event: func(t *testing.T, e *metricsEnv) {
				// h counts stanzas the proxy never sent.
				if s := e.resumeWith(t, e.smID, 7, false); !strings.Contains(string(s), "<failed ") {
					t.Fatalf("got %q, want <failed/>", s)
				}
			}, want: 1},
		{name: "a resumption of a session not held counts as expired",
			metric: "xmpp2proxy_resumptions_total", labels: []string{"outcome", "expired"},
			event: func(t *testing.T, e *metricsEnv) {
				if s := e.resumeWith(t, "no-such-session", 0, false); !strings.Contains(string(s), "<failed ") {
					t.Fatalf("got %q, want <failed/>", s)
				}
			}, want: 1},
		{name: "a held session is counted while held",
			metric: "xmpp2proxy_sessions_held_for_resumption",
			event:  func(t *testing.T, e *metricsEnv) { e.vanish(t) }, want: 1},
		{name: "a message to an offline full JID counts a service-unavailable bounce",
			metric: "xmpp2proxy_bounces_total", labels: []string{"condition", "service-unavailable"},
			prepare: func(t *testing.T, e *metricsEnv) { e.online2(t, bind2Plain) },
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send("<message to='bob@localhost/gone' id='b1' type='chat'><body>hi</body></message>")
				probe := skipUntil(t, e.up, stream.UnitElement)
				for !strings.Contains(string(probe.Raw), "disco#info") {
					probe = skipUntil(t, e.up, stream.UnitElement)
				}
				// The server's answer for a resource that is not there.
				e.up.send(t, "<iq type='error' id='"+stream.AttrString(probe.Raw, "id")+"' from='bob@localhost/gone' to='alice@localhost/x2'>"+
					"<error type='cancel'><service-unavailable xmlns='"+ns.Stanzas+"'/></error></iq>")
				if raw := e.client(t).nextOf(stream.UnitElement); !strings.Contains(string(raw), "<service-unavailable") {
					t.Fatalf("client got %q, want the bounce", raw)
				}
			}, want: 1},
		{name: "a stream error sent to a client counts by its condition",
			metric: "xmpp2proxy_stream_errors_total", labels: []string{"condition", stream.CondHostUnknown},
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send(strings.Replace(testHeader, "to='localhost'", "to='elsewhere.example'", 1))
				e.client(t).nextOf(stream.UnitStreamOpen)
				e.client(t).expectStreamError(stream.CondHostUnknown)
			}, want: 1},
		{name: "a stanza from the client counts client_to_upstream",
			metric: "xmpp2proxy_stanzas_total", labels: []string{"direction", "client_to_upstream"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send(msg)
				e.up.expect(t, stream.UnitElement, msg)
			}, want: 1},
		{name: "a stanza from the upstream counts upstream_to_client",
			metric: "xmpp2proxy_stanzas_total", labels: []string{"direction", "upstream_to_client"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				e.up.send(t, msg)
				e.client(t).expect(stream.UnitElement, msg)
			}, want: 1},
		{name: "an SM element is not a stanza",
			metric: "xmpp2proxy_stanzas_total", labels: []string{"direction", "client_to_upstream"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send("<r xmlns='" + ns.SM + "'/>")
				e.up.expect(t, stream.UnitElement, "<r xmlns='"+ns.SM+"'/>")
			}, want: 0},
		{name: "an upstream that cannot be reached counts a dial failure",
			metric: "xmpp2proxy_upstream_dial_failures_total", deadUpstream: true,
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send(testHeader)
				e.client(t).nextOf(stream.UnitStreamOpen)
				e.client(t).expectStreamError(stream.CondRemoteConnectionFailed)
			}, want: 1},
		{name: "the bytes a client sends count client_to_upstream",
			metric: "xmpp2proxy_bytes_total", labels: []string{"direction", "client_to_upstream"},
			prepare: login,
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).send(msg)
				e.up.expect(t, stream.UnitElement, msg)
			}, want: float64(len(msg))},
		{name: "every byte a client sent stays counted once its session ended",
			metric: "xmpp2proxy_bytes_total", labels: []string{"direction", "client_to_upstream"},
			event:    sessionWithTraffic(msg),
			wantFrom: func(e *metricsEnv) float64 { return float64(e.cc.written.Load()) }},
		{name: "every byte a client was sent counts upstream_to_client",
			metric: "xmpp2proxy_bytes_total", labels: []string{"direction", "upstream_to_client"},
			event:    sessionWithTraffic(msg),
			wantFrom: func(e *metricsEnv) float64 { return float64(e.cc.read.Load()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			upstream := fake.addr()
			if tc.deadUpstream {
				upstream = deadAddr(t)
			}
			srv, logs := startLoggedProxy(t, upstream, LogFormatText, tc.tweak)
			e := &metricsEnv{srv: srv, fake: fake, logs: logs}
			if tc.prepare != nil {
				tc.prepare(t, e)
			}
			before := metricValue(t, srv, tc.metric, tc.labels...)
			tc.event(t, e)
			if tc.wantFrom != nil {
				tc.want = tc.wantFrom(e)
			}
			if got := metricValue(t, srv, tc.metric, tc.labels...) - before; got != tc.want {
				t.Errorf("%s%v moved by %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
}

// sessionWithTraffic logs a classic client in, has one stanza go each
// way, and ends the session: a write is counted once it returned, and
// the session's end comes after every write.
func sessionWithTraffic(msg string) func(t *testing.T, e *metricsEnv) {
	return func(t *testing.T, e *metricsEnv) {
		c := e.client(t)
		c.login()
		e.up = e.fake.accept(t)
		c.send(msg)
		e.up.expect(t, stream.UnitElement, msg)
		e.up.send(t, msg)
		c.expect(stream.UnitElement, msg)
		closeBothWays(t, c, e.up)
		waitSessions(t, e.srv, 0)
		_, _ = io.Copy(io.Discard, c.conn) // everything the proxy sent is read
	}
}

// deadAddr is a loopback address with nothing listening.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// noKeepAlive leaves no idle connection (nor its goroutines) behind.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches path from the server's metrics endpoint.
func get(t *testing.T, srv *Server, path string) (int, string) {
	t.Helper()
	resp, err := noKeepAlive.Get("http://" + srv.MetricsAddr().String() + path)
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

// startMetricsProxy is a proxy in front of upstream serving its metrics
// on a loopback port.
func startMetricsProxy(t *testing.T, upstream string, tweak func(*Config)) *Server {
	t.Helper()
	return startProxy(t, upstream, nil, func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		if tweak != nil {
			tweak(c)
		}
	})
}

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
		c.Timeouts.Write = Duration(time.Hour) // only Shutdown's deadline ends the stalled one
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
