//go:build integration

package integration

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// protocolDoc is the client-facing protocol, whose examples this file
// plays against the proxy.
const protocolDoc = "../docs/protocol.md"

// docStep is one move of a scenario: do runs first, then the example
// named send goes to the proxy, then what the proxy sends next must match
// the example named expect, one top-level element after the other.
type docStep struct {
	do     func(t *testing.T, r *docRun)
	send   string
	expect string
}

// docScenario plays examples of docs/protocol.md in order on one
// connection. Every scenario first opens the stream with the document's
// stream header, checks the features before TLS and, unless plaintext,
// runs STARTTLS and checks the features on TLS.
type docScenario struct {
	name      string
	plaintext bool
	prepare   func(t *testing.T, r *docRun)
	steps     []docStep
}

// docRun is one scenario's connection and the values its placeholders
// take.
type docRun struct {
	e        *env
	logs     *logWatch
	examples map[string]harness.DocExample
	// user and peer are fresh accounts; the document calls them
	// alice@example.org and bob@example.org.
	user, peer, room string
	c                *harness.Client
	vars             map[string]string
	// answer is what the proxy sent for the last expected example, for
	// steps that answer it.
	answer [][]byte
	neg    *sasl.Negotiator
}

var docScenarios = []docScenario{
	{
		name:      "authenticate before STARTTLS is refused with encryption-required",
		plaintext: true,
		steps:     []docStep{{send: "authenticate-plain", expect: "failure-encryption-required"}},
	},
	{
		name:  "a PLAIN login with a small bind is online in one round trip",
		steps: []docStep{{send: "authenticate-plain", expect: "success-plain"}},
	},
	{
		name: "a SCRAM login answers a challenge and ends with the server signature",
		steps: []docStep{
			{do: scramFirst, send: "authenticate-scram", expect: "challenge-scram"},
			{do: scramFinal, send: "response-scram", expect: "success-scram"},
			{do: scramVerify},
		},
	},
	{
		name:  "a wrong password is the server's not-authorized",
		steps: []docStep{{send: "authenticate-wrong-password", expect: "failure-not-authorized"}},
	},
	{
		name:  "a mechanism the server does not offer is invalid-mechanism",
		steps: []docStep{{send: "authenticate-unknown-mechanism", expect: "failure-invalid-mechanism"}},
	},
	{
		name:  "a stale XEP-0509 config version is refused without prejudice",
		steps: []docStep{{send: "authenticate-stale-config-version", expect: "failure-config-version-mismatch"}},
	},
	{
		name:  "a stanza before authentication is a not-authorized stream error",
		steps: []docStep{{send: "stanza-before-auth", expect: "stream-error-not-authorized"}},
	},
	{
		name:    "every Bind2 child: bound, catch-up of the account and the room, then synced",
		prepare: prepareCatchup,
		steps:   []docStep{{send: "authenticate-bind2", expect: "success-bind2"}},
	},
	{
		name:  "a room that cannot be joined is join-failed with the stanza error, and the session is online",
		steps: []docStep{{send: "authenticate-join-failed", expect: "success-join-failed"}},
	},
	{
		name:    "a resume of a held session answers resumed and no bound",
		prepare: prepareResume,
		steps:   []docStep{{send: "authenticate-resume", expect: "success-resumed"}},
	},
	{
		name: "a resume of an unknown session falls back to a fresh bind in the same answer",
		prepare: func(_ *testing.T, r *docRun) {
			r.vars["previd"], r.vars["h"] = "no-such-session", "0"
		},
		steps: []docStep{{send: "authenticate-resume", expect: "success-resume-failed"}},
	},
	{
		name: "a message to an offline full JID bounces; SM counts it; an h too high ends the stream",
		steps: []docStep{
			{send: "authenticate-plain", expect: "success-plain"},
			{send: "message-to-offline-resource", expect: "bounce"},
			{send: "sm-request", expect: "sm-answer"},
			{send: "sm-ack-too-high", expect: "stream-error-handled-count-too-high"},
		},
	},
}

// TestEveryProtocolDocExampleIsPlayed keeps the document and the scenarios
// in step: an example no scenario plays would be checked by nothing.
func TestEveryProtocolDocExampleIsPlayed(t *testing.T) {
	examples, err := harness.ReadDocExamples(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{"stream-header": true, "features-before-tls": true, "starttls": true, "proceed": true, "features": true}
	for _, sc := range docScenarios {
		for _, st := range sc.steps {
			used[st.send], used[st.expect] = true, true
		}
	}
	have := map[string]bool{}
	for _, ex := range examples {
		have[ex.Name] = true
		if !used[ex.Name] {
			t.Errorf("%s:%d: example %q is played by no scenario", protocolDoc, ex.Line, ex.Name)
		}
	}
	for name := range used {
		if name != "" && !have[name] {
			t.Errorf("a scenario plays example %q, which %s lacks", name, protocolDoc)
		}
	}
}

// TestProtocolDocExamplesMatchTheProxy sends each client request of
// docs/protocol.md through the proxy and checks each answer against what
// the proxy sent, on both servers.
func TestProtocolDocExamplesMatchTheProxy(t *testing.T) {
	list, err := harness.ReadDocExamples(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	examples := map[string]harness.DocExample{}
	for _, ex := range list {
		examples[ex.Name] = ex
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		logs := &logWatch{}
		e := startProxyWith(t, srv, proxyStart{log: logs, mutate: []func(*proxy.Config){noDirectTLS}})
		for _, sc := range docScenarios {
			t.Run(sc.name, func(t *testing.T) {
				r := newDocRun(t, e, logs, examples)
				if sc.prepare != nil {
					sc.prepare(t, r)
				}
				r.open(t, sc.plaintext)
				for _, st := range sc.steps {
					if st.do != nil {
						st.do(t, r)
					}
					if st.send != "" {
						r.send(t, st.send)
					}
					if st.expect != "" {
						r.expect(t, st.expect)
					}
				}
			})
		}
	})
}

// newDocRun registers the scenario's fresh accounts, so archives and
// sessions hold only what the scenario put there.
func newDocRun(t *testing.T, e *env, logs *logWatch, examples map[string]harness.DocExample) *docRun {
	t.Helper()
	id := harness.NewID()[:8]
	r := &docRun{e: e, logs: logs, examples: examples, user: "doca" + id, peer: "docb" + id,
		room: "docroom" + id + "@" + e.srv.MUCService()}
	for _, u := range []string{r.user, r.peer} {
		if err := e.srv.Register(u, password); err != nil {
			t.Fatal(err)
		}
	}
	r.vars = map[string]string{
		"plain":       base64.StdEncoding.EncodeToString([]byte("\x00" + r.user + "\x00" + password)),
		"plain-wrong": base64.StdEncoding.EncodeToString([]byte("\x00" + r.user + "\x00wrong")),
	}
	return r
}

// localise maps the document's names (example.org, alice, bob, the room)
// to this run's.
func (r *docRun) localise(s string) string {
	return strings.NewReplacer(
		"room@conference.example.org", r.room,
		"alice@example.org", r.user+"@"+domain,
		"bob@example.org", r.peer+"@"+domain,
		"example.org", domain,
	).Replace(s)
}

func (r *docRun) example(t *testing.T, name string) harness.DocExample {
	t.Helper()
	ex, ok := r.examples[name]
	if !ok {
		t.Fatalf("%s has no example %q", protocolDoc, name)
	}
	return ex
}

// open connects and plays the stream header, STARTTLS and the features.
func (r *docRun) open(t *testing.T, plaintext bool) {
	t.Helper()
	conn, err := net.Dial("tcp", r.e.proxy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * wait))
	r.c = harness.NewClient(conn)
	t.Cleanup(func() { r.c.Close() })
	r.header(t)
	r.expect(t, "features-before-tls")
	if plaintext {
		return
	}
	r.send(t, "starttls")
	r.expect(t, "proceed")
	if err := r.c.UpgradeTLS(r.e.cert.ClientConfig(domain)); err != nil {
		t.Fatal(err)
	}
	r.header(t)
	r.expect(t, "features")
}

func (r *docRun) header(t *testing.T) {
	t.Helper()
	r.send(t, "stream-header")
	if err := r.c.ReadStreamOpen(); err != nil {
		t.Fatal(err)
	}
}

func (r *docRun) send(t *testing.T, name string) {
	t.Helper()
	ex := r.example(t, name)
	out, err := harness.FillExample(r.localise(ex.XML), r.vars)
	if err != nil {
		t.Fatalf("%s:%d (%s): %v", protocolDoc, ex.Line, name, err)
	}
	if err := r.c.Send(out); err != nil {
		t.Fatalf("sending %s: %v", name, err)
	}
}

// expect reads one element per top-level element of the example and
// matches them in order.
func (r *docRun) expect(t *testing.T, name string) {
	t.Helper()
	ex := r.example(t, name)
	want, err := harness.ParseWire(r.localise(ex.XML))
	if err != nil {
		t.Fatalf("%s:%d (%s) does not parse: %v", protocolDoc, ex.Line, name, err)
	}
	r.answer = nil
	for i, w := range want {
		got, err := r.c.Next()
		if err != nil {
			t.Fatalf("%s:%d (%s): element %d of %d: %v", protocolDoc, ex.Line, name, i+1, len(want), err)
		}
		r.answer = append(r.answer, got)
		nodes, err := harness.ParseWire(string(got))
		if err != nil || len(nodes) != 1 {
			t.Fatalf("the proxy sent what does not parse as one element (%v): %s", err, got)
		}
		if err := harness.MatchWire(w, nodes[0], r.vars); err != nil {
			t.Fatalf("%s:%d (%s) drifted from the proxy, element %d: %v\nthe proxy sent:\n%s", protocolDoc, ex.Line, name, i+1, err, got)
		}
	}
}

// scramFirst starts a SCRAM-SHA-1 exchange for the user.
func scramFirst(t *testing.T, r *docRun) {
	r.neg = sasl.NewClient(sasl.ScramSha1, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(r.user), []byte(password), nil
	}))
	_, first, err := r.neg.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.vars["scram-client-first"] = base64.StdEncoding.EncodeToString(first)
}

// scramFinal answers the challenge the proxy relayed.
func scramFinal(t *testing.T, r *docRun) {
	_, final, err := r.neg.Step(decodeText(t, r.answer[0]))
	if err != nil {
		t.Fatal(err)
	}
	r.vars["scram-client-final"] = base64.StdEncoding.EncodeToString(final)
}

// scramVerify checks the server signature in <additional-data>: the
// upstream, not the proxy, knows the password.
func scramVerify(t *testing.T, r *docRun) {
	m := regexp.MustCompile(`<additional-data>([^<]*)</additional-data>`).FindSubmatch(r.answer[0])
	if m == nil {
		t.Fatalf("no additional-data in %s", r.answer[0])
	}
	data, err := base64.StdEncoding.DecodeString(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.neg.Step(data); err != nil {
		t.Fatalf("server final message: %v", err)
	}
}

func decodeText(t *testing.T, el []byte) []byte {
	t.Helper()
	start, end := bytes.IndexByte(el, '>'), bytes.LastIndexByte(el, '<')
	if start < 0 || end <= start {
		t.Fatalf("no text in %s", el)
	}
	data, err := base64.StdEncoding.DecodeString(string(el[start+1 : end]))
	if err != nil {
		t.Fatalf("%s: %v", el, err)
	}
	return data
}

// prepareCatchup puts two messages in the user's archive and two in a
// fresh room's, and syncs after the first of each: the catch-up is then
// exactly one account message and one room message.
func prepareCatchup(t *testing.T, r *docRun) {
	peer := r.e.login(t, r.peer)
	marker := harness.NewID()
	for i := 1; i <= 2; i++ {
		send(t, peer, fmt.Sprintf("<message to='%s@%s' type='chat' id='doc%d-%s'><body>chat %d %s</body></message>", r.user, domain, i, marker, i, marker))
	}
	ids := archivedIDs(t, r.e, r.user, marker, 2)
	openRoom(t, peer, r.room, "bob")
	var roomIDs []string
	for i := 1; i <= 2; i++ {
		body := fmt.Sprintf("room %d %s", i, marker)
		send(t, peer, fmt.Sprintf("<message to='%s' type='groupchat'><body>%s</body></message>", r.room, body))
		m := stanzaIDRE.FindSubmatch(waitFor(t, peer, "<message", body))
		if m == nil {
			t.Fatal("room echo without stanza-id")
		}
		roomIDs = append(roomIDs, string(m[1]))
	}
	r.vars["after"], r.vars["room-after"] = ids[0], roomIDs[0]
	r.vars["last"] = ids[1]
}

// archiveResultRE and archiveIDRE read a MAM result's archive id whatever
// the order of its attributes (the classic relay keeps the server's).
var archiveResultRE = regexp.MustCompile(`<result\s[^>]*>`)
var archiveIDRE = regexp.MustCompile(`\sid=['"]([^'"]+)['"]`)

// archivedIDs asks the user's archive, as a classic client, until it
// holds n messages carrying marker, and returns their archive ids in
// order. The question is the event to wait on: the server archives
// asynchronously from the sender's point of view.
func archivedIDs(t *testing.T, e *env, user, marker string, n int) []string {
	t.Helper()
	c := e.login(t, user)
	defer c.Close()
	deadline := time.Now().Add(wait)
	for q := 0; time.Now().Before(deadline); q++ {
		qid := fmt.Sprintf("docq%d", q)
		send(t, c, "<iq type='set' id='"+qid+"'><query xmlns='urn:xmpp:mam:2' queryid='"+qid+"'/></iq>")
		var ids []string
		for {
			el := waitFor(t, c, "")
			if contains(el, "<iq", "id='"+qid+"'") {
				break
			}
			if res := archiveResultRE.Find(el); res != nil && contains(el, marker) {
				ids = append(ids, string(archiveIDRE.FindSubmatch(res)[1]))
			}
		}
		if len(ids) >= n {
			return ids
		}
	}
	t.Fatalf("%s's archive never held %d messages marked %s", user, n, marker)
	return nil
}

// prepareResume logs the user in with SM, drops the connection without
// closing the stream, and waits until the proxy holds the session.
func prepareResume(t *testing.T, r *docRun) {
	c := r.e.login(t, r.user, func(l *harness.Login) {
		l.SASL2 = true
		l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>"
	})
	m := smIDRE.FindSubmatch(c.Success)
	if m == nil {
		t.Fatalf("no SM id in %s", c.Success)
	}
	held := r.logs.mark()
	_ = c.Reset()
	r.logs.waitFor(t, held, "session held for resumption", c.JID)
	r.vars["previd"], r.vars["h"] = string(m[1]), fmt.Sprint(c.Received)
}
