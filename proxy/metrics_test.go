package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

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
		{name: "a catch-up records the most archived messages it held",
			metric: "xmpp2proxy_catchup_held_stanzas",
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).openStream()
				e.sendAuthenticate2(e.client(t), bind2Sync)
				up := e.fake.accept(t)
				answerReplay(t, up, queryIDSync+"-0", syncResult("a1")+syncResult("a2")+
					"<iq type='result' id='"+queryIDSync+"-0'><fin xmlns='"+ns.MAM+"' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><last>a2</last></set></fin></iq>")
				readSuccess(t, e.client(t))
				for !strings.HasPrefix(string(e.client(t).nextOf(stream.UnitElement)), "<synced") {
				}
			}, want: 1},
		{name: "a message the second look at the archive found for a session counts",
			metric: "xmpp2proxy_catchup_recheck_found_total",
			tweak:  func(c *Config) { c.Timeouts.CatchupRecheck = time.Millisecond },
			event: func(t *testing.T, e *metricsEnv) {
				e.client(t).openStream()
				e.sendAuthenticate2(e.client(t), bind2Sync)
				up := e.fake.accept(t)
				answerReplay(t, up, queryIDSync+"-0", syncResult("a1")+
					"<iq type='result' id='"+queryIDSync+"-0'><fin xmlns='"+ns.MAM+"' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><last>a1</last></set></fin></iq>")
				readSuccess(t, e.client(t))
				for u := skipUntil(t, up, stream.UnitElement); !strings.Contains(string(u.Raw), recheckQueryID); u = skipUntil(t, up, stream.UnitElement) {
				}
				late := strings.ReplaceAll(syncResult("a2"), queryIDSync, recheckQueryID)
				up.send(t, late+"<iq type='result' id='"+recheckIQID+"'><fin xmlns='"+ns.MAM+"' complete='true'/></iq>")
				for !strings.Contains(string(e.client(t).nextOf(stream.UnitElement)), "<body>a2</body>") {
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
			tweak:   func(c *Config) { c.Timeouts.Close = 10 * time.Millisecond },
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
