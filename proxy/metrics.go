package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// What the proxy counts for Prometheus. Each event is recorded at the one
// place in the code where it happens, through the methods below, so the
// proxy's code reads s.srv.metrics.xxx(...) and nothing else about
// Prometheus. Every name starts with xmpp2proxy_. Label values come from
// short fixed lists (kinds, listeners, outcomes, conditions): never a
// JID, a resource, an address or anything a client wrote, so a scrape
// shows no one's identity and the number of series stays bounded.
//
// Each Server owns its registry, so that tests, and several servers in
// one process, never see each other's counts.

// metrics is one Server's recorder. Its methods are no-ops on a nil
// *metrics, for the tests that build a Server by hand.
type metrics struct {
	reg *prometheus.Registry

	sessions        *prometheus.GaugeVec   // kind, listener
	sessionsStarted *prometheus.CounterVec // listener
	sessionsEnded   *prometheus.CounterVec // kind, listener, outcome
	auths           *prometheus.CounterVec // kind, outcome
	setups          *prometheus.CounterVec // outcome
	setupDuration   prometheus.Histogram
	catchup         prometheus.Histogram
	catchupHeld     prometheus.Histogram
	recheckFound    prometheus.Counter
	resumptions     *prometheus.CounterVec // outcome
	bounces         *prometheus.CounterVec // condition
	streamErrors    *prometheus.CounterVec // condition
	stanzas         [2]prometheus.Counter  // read from each leg, by legSide
	dialFailures    prometheus.Counter
}

// Label values.
const (
	dirClientToUpstream = "client_to_upstream"
	dirUpstreamToClient = "upstream_to_client"

	outcomeOK      = "ok"
	outcomeFailed  = "failed"
	outcomeExpired = "expired"
)

// newMetrics registers the proxy's metrics in a registry of their own.
// The byte counters read the server's sessions when scraped.
func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &metrics{
		reg: reg,
		sessions: f.gauge("xmpp2proxy_sessions",
			"Client sessions open now, by kind (none while negotiating, classic, v2) and listener.", "kind", "listener"),
		sessionsStarted: f.counter("xmpp2proxy_sessions_started_total",
			"Client connections accepted, by listener.", "listener"),
		sessionsEnded: f.counter("xmpp2proxy_sessions_ended_total",
			"Client sessions ended, by kind, listener and outcome.", "kind", "listener", "outcome"),
		auths: f.counter("xmpp2proxy_authentications_total",
			"Authentications the upstream answered, by SASL profile (classic, sasl2) and outcome (success, failure).", "kind", "outcome"),
		setups: f.counter("xmpp2proxy_setups_total",
			"XMPP 2.0 session setups (the Bind2 replay after a successful SASL2 authentication), by outcome (ok, failed).", "outcome"),
		setupDuration: f.histogram("xmpp2proxy_setup_duration_seconds",
			"Time from the upstream's SASL success to the client's <success/> of a 2.0 session setup.",
			prometheus.ExponentialBuckets(0.005, 2, 12)),
		catchup: f.histogram("xmpp2proxy_catchup_messages",
			"Archived messages one Bind2 <sync/> delivered (the count of its <synced/>).",
			[]float64{0, 1, 10, 50, 100, 250, 500, 1000, 2000}),
		catchupHeld: f.histogram("xmpp2proxy_catchup_held_stanzas",
			"The most archived messages one catch-up held at once, taken by the client or not (at most two of the server's pages).",
			[]float64{10, 50, 100, 250, 500, 1000, 2000}),
		recheckFound: f.counter("xmpp2proxy_catchup_recheck_found_total",
			"Archived messages that the second look after a catch-up (timeouts.catchup_recheck) delivered to a session that had missed them: the server made them visible late.").WithLabelValues(),
		resumptions: f.counter("xmpp2proxy_resumptions_total",
			"2.0 session resumptions asked for, by outcome (ok; failed: held but could not resume; expired: not held, or not this account's).", "outcome"),
		bounces: f.counter("xmpp2proxy_bounces_total",
			"Stanza errors the proxy itself answered a client's stanza with, by condition.", "condition"),
		streamErrors: f.counter("xmpp2proxy_stream_errors_total",
			"Stream errors the proxy itself sent to clients, by condition (an upstream's own stream error is relayed, not counted).", "condition"),
		dialFailures: f.counter("xmpp2proxy_upstream_dial_failures_total",
			"Connections to the upstream that failed before authentication (connect, TLS or stream features).").WithLabelValues(),
	}
	stanzas := f.counter("xmpp2proxy_stanzas_total",
		"Stanzas (message, presence, iq) relayed after authentication, by direction.", "direction")
	m.stanzas = [2]prometheus.Counter{stanzas.WithLabelValues(dirClientToUpstream), stanzas.WithLabelValues(dirUpstreamToClient)}
	for _, dir := range []struct {
		name       string
		fromClient bool
	}{{dirClientToUpstream, true}, {dirUpstreamToClient, false}} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "xmpp2proxy_bytes_total",
			Help:        "XML bytes on the client leg: read from clients (client_to_upstream) and written to them (upstream_to_client), as the session end line counts them.",
			ConstLabels: prometheus.Labels{"direction": dir.name},
		}, func() float64 { return float64(s.clientBytes(dir.fromClient)) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xmpp2proxy_sessions_held_for_resumption",
		Help: "2.0 sessions whose client vanished, held for resumption now.",
	}, func() float64 { return float64(s.detached.Len()) }))
	for _, outcome := range []string{outcomeOK, outcomeFailed, outcomeExpired} {
		m.resumptions.WithLabelValues(outcome)
	}
	for _, outcome := range []string{outcomeOK, outcomeFailed} {
		m.setups.WithLabelValues(outcome)
	}
	return m
}

// factory registers metrics as it makes them.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// kindLabel is a session kind as the metrics name it.
func kindLabel(kind string) string {
	switch kind {
	case kindClassic:
		return "classic"
	case kind2:
		return "v2"
	}
	return kindNone
}

// authKindLabel is the SASL profile of an authentication.
func authKindLabel(kind string) string {
	if kind == kind2 {
		return "sasl2"
	}
	return "classic"
}

// sessionStarted counts a new connection, open and not yet authenticated.
func (m *metrics) sessionStarted(listener string) {
	if m == nil {
		return
	}
	m.sessionsStarted.WithLabelValues(listener).Inc()
	m.sessions.WithLabelValues(kindNone, listener).Inc()
}

// sessionOnline moves an open session from the unauthenticated count to
// its kind's, once it relays.
func (m *metrics) sessionOnline(kind, listener string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(kindNone, listener).Dec()
	m.sessions.WithLabelValues(kindLabel(kind), listener).Inc()
}

// sessionEnded counts an ended session: openKind is the kind it was
// counted open under (kindNone unless it relayed).
func (m *metrics) sessionEnded(openKind, kind, listener, outcome string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(kindLabel(openKind), listener).Dec()
	m.sessionsEnded.WithLabelValues(kindLabel(kind), listener, outcome).Inc()
}

// authenticated counts an authentication the upstream answered.
func (m *metrics) authenticated(kind string, ok bool) {
	if m == nil {
		return
	}
	outcome := "failure"
	if ok {
		outcome = "success"
	}
	m.auths.WithLabelValues(authKindLabel(kind), outcome).Inc()
}

// setupDone counts a 2.0 session setup that began at start.
func (m *metrics) setupDone(start time.Time, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.setups.WithLabelValues(outcomeFailed).Inc()
		return
	}
	m.setups.WithLabelValues(outcomeOK).Inc()
	m.setupDuration.Observe(time.Since(start).Seconds())
}

// caughtUp records how many archived messages a <sync/> delivered.
func (m *metrics) caughtUp(n int) {
	if m == nil {
		return
	}
	m.catchup.Observe(float64(n))
}

// catchupHeldAtMost records the most archived messages a catch-up held
// at once: delivered but not taken by the client, or buffered.
func (m *metrics) catchupHeldAtMost(n int) {
	if m == nil {
		return
	}
	m.catchupHeld.Observe(float64(n))
}

// recheckFoundOne counts a message the second look at the archive
// delivered to a session that had missed it.
func (m *metrics) recheckFoundOne() {
	if m == nil {
		return
	}
	m.recheckFound.Inc()
}

// resumed counts a resumption attempt's outcome.
func (m *metrics) resumed(outcome string) {
	if m == nil {
		return
	}
	m.resumptions.WithLabelValues(outcome).Inc()
}

// bounced counts a stanza error the proxy answered a client with.
func (m *metrics) bounced(condition string) {
	if m == nil {
		return
	}
	m.bounces.WithLabelValues(condition).Inc()
}

// streamError counts a stream error sent to a client.
func (m *metrics) streamError(condition string) {
	if m == nil {
		return
	}
	m.streamErrors.WithLabelValues(condition).Inc()
}

// stanza counts an element relayed from leg when it is a stanza.
func (m *metrics) stanza(leg legSide, raw []byte) {
	if m == nil {
		return
	}
	// The name only: no attribute is read on the classic hot path.
	if t := rewrite.ScanTag(raw); stream.IsStanza(t.Name()) {
		m.stanzas[leg].Inc()
	}
}

// upstreamDialFailed counts a failed connection to the upstream.
func (m *metrics) upstreamDialFailed() {
	if m == nil {
		return
	}
	m.dialFailures.Inc()
}

// clientBytes sums the client-leg bytes of every session, running or
// ended, read from clients (fromClient) or written to them. The ended
// sessions' sum moves under the same lock that removes them from the
// running set, so the total never goes back.
func (s *Server) clientBytes(fromClient bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.endedBytes[0]
	if !fromClient {
		n = s.endedBytes[1]
	}
	for sess := range s.sessions {
		if fromClient {
			n += sess.stats.fromClient.Load()
		} else {
			n += sess.stats.toClient.Load()
		}
	}
	return n
}

// addEndedBytes keeps an ended session's bytes in the totals; the caller
// holds s.mu.
func (s *Server) addEndedBytes(sess *session) {
	s.endedBytes[0] += sess.stats.fromClient.Load()
	s.endedBytes[1] += sess.stats.toClient.Load()
}
