package proxy

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

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
