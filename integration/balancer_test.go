//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// The tests of issue 10 (items 3, 5 and 6): three xmpp2proxy instances in
// front of one upstream server, behind HAProxy in TCP mode, balancing
// roundrobin. The instances share nothing but the server, the certificate
// and the Bind2 resource secret, as instances of one deployment do. The
// tests wait for events (an element arrived, a stream ended, HAProxy's
// admin socket reports a state), never for a while; deadlines only turn a
// hang into a failure that says how far the counts got.

// cluster is n proxy instances behind one HAProxy.
type cluster struct {
	srv     harness.Server
	proxies []*env
	lb      *harness.HAProxy
	cert    *harness.Cert
}

// startCluster starts n proxies in front of srv, each on its own loopback
// port, and HAProxy in front of them.
func startCluster(t *testing.T, srv harness.Server, n int) *cluster {
	t.Helper()
	cert, err := harness.SelfSigned(t.TempDir(), "proxy", domain)
	if err != nil {
		t.Fatal(err)
	}
	// One deployment: one certificate (a client cannot know which instance
	// it reaches) and one secret (a device keeps its resource whichever
	// instance binds it).
	secret := "balancer-" + harness.NewID()
	cl := &cluster{srv: srv, cert: cert}
	addrs := make([]string, n)
	for i := range n {
		e := startProxy(t, srv, func(c *proxy.Config) {
			c.Cert, c.Key, c.Secret = cert.CertFile, cert.KeyFile, secret
		})
		cl.proxies = append(cl.proxies, e)
		addrs[i] = e.proxy.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lb, err := harness.StartHAProxy(ctx, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lb.Stop(); err != nil {
			t.Errorf("haproxy: %v", err)
		}
	})
	cl.lb = lb
	return cl
}

// totals returns how many connections HAProxy has sent to each instance.
func (cl *cluster) totals(t *testing.T) []int {
	t.Helper()
	st, err := cl.lb.Servers()
	if err != nil {
		t.Fatalf("haproxy stats: %v", err)
	}
	out := make([]int, len(st))
	for i, s := range st {
		out[i] = s.Total
	}
	return out
}

// login logs user in through the balancer (STARTTLS, SCRAM-SHA-1) and
// returns the client and the instance it landed on, as HAProxy's own
// connection counts tell. Logins through the balancer must not overlap.
func (cl *cluster) login(t *testing.T, user string, opts ...func(*harness.Login)) (*harness.Client, int) {
	t.Helper()
	before := cl.totals(t)
	c := cl.dial(t, user, cl.lb.Addr(), cl.cert.ClientConfig(domain), opts...)
	after := cl.totals(t)
	landed := -1
	for i := range after {
		switch d := after[i] - before[i]; {
		case d == 0:
		case d == 1 && landed < 0:
			landed = i
		default:
			t.Fatalf("one login made HAProxy connect to the instances %v times", diff(after, before))
		}
	}
	if landed < 0 {
		t.Fatalf("HAProxy counted no connection for a login")
	}
	return c, landed
}

// direct logs user in straight to the server, not through any proxy.
func (cl *cluster) direct(t *testing.T, user string, opts ...func(*harness.Login)) *harness.Client {
	t.Helper()
	return cl.dial(t, user, cl.srv.Addr(), &tls.Config{InsecureSkipVerify: true}, opts...) //nolint:gosec // the harness's self-signed upstream
}

func (cl *cluster) dial(t *testing.T, user, addr string, tc *tls.Config, opts ...func(*harness.Login)) *harness.Client {
	t.Helper()
	l := harness.Login{Addr: addr, Domain: domain, User: user, Password: password, Mechanism: "SCRAM-SHA-1", TLS: tc}
	for _, o := range opts {
		o(&l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := harness.Dial(ctx, l)
	if err != nil {
		t.Fatalf("login %s at %s: %v\nhaproxy log:\n%s\nupstream log:\n%s", user, addr, err, cl.lb.Log(), cl.srv.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func diff(a, b []int) []int {
	out := make([]int, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// peer is a client of the routing tests, read on a goroutine of its own
// from the moment it is followed, keeping every element it receives. A
// classic peer answers disco#info questions as real clients do (the
// proxy's offline check asks them, docs/protocol.md); a 2.0 peer must
// never see one.
type peer struct {
	name    string
	c       *harness.Client
	classic bool

	mu        sync.Mutex
	els       [][]byte
	questions [][]byte
	err       error
	changed   chan struct{}
	done      chan struct{}
}

func follow(t *testing.T, name string, c *harness.Client, classic bool) *peer {
	t.Helper()
	p := &peer{name: name, c: c, classic: classic, changed: make(chan struct{}), done: make(chan struct{})}
	go p.read()
	t.Cleanup(func() {
		_ = p.c.Close()
		<-p.done
	})
	return p
}

func (p *peer) read() {
	defer close(p.done)
	for {
		el, err := p.c.Next()
		var answer string
		p.mu.Lock()
		if err != nil {
			p.err = err
		} else {
			p.els = append(p.els, el)
			if id, from, ok := discoQuestion(el); ok {
				p.questions = append(p.questions, el)
				if p.classic {
					answer = fmt.Sprintf("<iq type='result' id='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'>"+
						"<identity category='client' type='pc'/><feature var='http://jabber.org/protocol/disco#info'/></query></iq>", escapeAttr(id), escapeAttr(from))
				}
			}
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if err != nil {
			return
		}
		if answer != "" {
			_ = p.c.Send(answer)
		}
	}
}

// discoQuestion reports whether el is a disco#info get, with its id and
// sender.
func discoQuestion(el []byte) (id, from string, ok bool) {
	if !bytes.HasPrefix(el, []byte("<iq")) || !bytes.Contains(el, []byte("http://jabber.org/protocol/disco#info")) {
		return "", "", false
	}
	var iq struct {
		Type  string    `xml:"type,attr"`
		ID    string    `xml:"id,attr"`
		From  string    `xml:"from,attr"`
		Query *struct{} `xml:"http://jabber.org/protocol/disco#info query"`
	}
	if xml.Unmarshal(el, &iq) != nil || iq.Type != "get" || iq.Query == nil {
		return "", "", false
	}
	return iq.ID, iq.From, true
}

func escapeAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// waitCount waits until p has received n elements carrying marker, its
// stream ends, or ctx ends, and reports whether it got them.
func (p *peer) waitCount(ctx context.Context, marker string, n int) bool {
	return p.waitUntil(ctx, func() bool { return len(elementsWith(p.els, marker)) >= n })
}

// waitUntil waits until cond (called with p.mu held) holds, reading
// stops, or ctx ends.
func (p *peer) waitUntil(ctx context.Context, cond func() bool) bool {
	return waitChanged(ctx, func() (bool, <-chan struct{}, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return cond(), p.changed, p.err != nil
	})
}

// with returns the elements received so far that carry marker.
func (p *peer) with(marker string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return elementsWith(p.els, marker)
}

// state says whether p's stream is open.
func (p *peer) state() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return "ended: " + p.err.Error()
	}
	return "open"
}

// wellFormed decodes el with encoding/xml, the oracle for "well-formed".
func wellFormed(el []byte) error {
	d := xml.NewDecoder(bytes.NewReader(el))
	for {
		if _, err := d.Token(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// stanzaAttrs decodes a stanza's top-level attributes and its error
// condition, if any.
type stanzaAttrs struct {
	XMLName xml.Name
	ID      string `xml:"id,attr"`
	To      string `xml:"to,attr"`
	From    string `xml:"from,attr"`
	Type    string `xml:"type,attr"`
	Error   *struct {
		Conditions []struct{ XMLName xml.Name } `xml:",any"`
	} `xml:"error"`
}

func decodeStanza(el []byte) (stanzaAttrs, error) {
	var s stanzaAttrs
	err := xml.Unmarshal(el, &s)
	return s, err
}

func (s stanzaAttrs) condition() string {
	if s.Error == nil {
		return ""
	}
	for _, c := range s.Error.Conditions {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// archiveIDIn returns the archive id (of account's archive) that el
// carries: a live message's <stanza-id by=account>, a catch-up result's
// id, or <synced last=...>.
func archiveIDIn(el []byte, account string) string {
	if !bytes.HasPrefix(el, []byte("<message")) && !bytes.HasPrefix(el, []byte("<synced")) {
		return ""
	}
	d := xml.NewDecoder(bytes.NewReader(el))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Name.Local == name && a.Name.Space == "" {
						return a.Value
					}
				}
				return ""
			}
			switch {
			case depth == 1 && tok.Name.Local == "synced":
				return attr("last")
			case depth == 2 && tok.Name.Local == "stanza-id" && tok.Name.Space == "urn:xmpp:sid:0" && attr("by") == account:
				return attr("id")
			case depth == 2 && tok.Name.Local == "result" && tok.Name.Space == "urn:xmpp:mam:2":
				return attr("id")
			}
		case xml.EndElement:
			depth--
		}
	}
}

// unmarked1 reports a live numbered chat (the classic bob's) that reached
// a 2.0 device without the <xmpp-1/> marker of contract section 6. Catch-up
// results and carbons forward the message as archived: not checked.
func unmarked1(el []byte) bool {
	return bytes.HasPrefix(el, []byte("<message")) && seqBodyRE.Match(el) &&
		!bytes.Contains(el, []byte("<result")) && !bytes.Contains(el, []byte("<forwarded")) &&
		!bytes.Contains(el, []byte("<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>"))
}

// checkMarked fails the test for each 2.0 connection that got live copies
// of marker's 1.0 messages without <xmpp-1/>.
func checkMarked(t *testing.T, marker string, conns ...*device) {
	t.Helper()
	for _, d := range conns {
		d.mu.Lock()
		bad := elementsWith(d.unmarked, marker)
		d.mu.Unlock()
		if len(bad) > 0 {
			var seqs []string
			for _, el := range bad {
				if m := seqBodyRE.FindSubmatch(el); m != nil {
					seqs = append(seqs, string(m[2]))
				}
			}
			t.Errorf("section 6: %s got %d live copies without <xmpp-1/> (numbers %s), first: %s", d.name, len(bad), strings.Join(seqs, ","), bad[0])
		}
	}
}

// watchArchive is watch for a device that also follows the archive ids of
// account it receives, for its next <sync after=.../>.
func watchArchive(t *testing.T, name string, c *harness.Client, account string) *device {
	t.Helper()
	d := &device{name: name, c: c, account: account, copies: map[string]map[int]int{}, changed: make(chan struct{}), done: make(chan struct{})}
	go d.read()
	t.Cleanup(d.stop)
	return d
}

// archiveID is the newest archive id d has received.
func (d *device) archiveID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastArchiveID
}

// snapshot returns a copy of what d has counted of marker.
func (d *device) snapshot(marker string) map[int]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[int]int{}
	for seq, n := range d.copies[marker] {
		out[seq] = n
	}
	return out
}

// countAcross tallies one physical device over its connections: what
// each connection received of marker's numbers 1..sent, added up.
func countAcross(who, marker string, sent int, conns ...*device) tally {
	merged := &device{name: who, copies: map[string]map[int]int{marker: {}}}
	for _, d := range conns {
		for seq, n := range d.snapshot(marker) {
			merged.copies[marker][seq] += n
		}
	}
	return merged.count(marker, sent)
}

// lbFixture is the cast of contract sections 5 and 6 spread over three
// instances: alice's three 2.0 sessions a[0..2], one per instance; a
// classic session of alice; bob as a classic client through the balancer
// and as bob/Desk connected straight to the server; carol, a 2.0 peer.
type lbFixture struct {
	cl                   *cluster
	a                    [3]*peer
	inst                 [3]int // the instance each of a[i] is on
	ac, bob, desk, carol *peer
	all                  []*peer // a[0], a[1], a[2], ac, bob, desk, carol
	// start is alice's archive end before the rows.
	start string
}

func newLBFixture(t *testing.T, srv harness.Server) *lbFixture {
	t.Helper()
	cl := startCluster(t, srv, 3)
	f := &lbFixture{cl: cl}
	id := harness.NewID()
	where := map[string]int{}
	for i, tag := range []string{"one", "two", "three"} {
		c, inst := cl.login(t, "alice", deviceLogin("lb-"+tag+"-"+id, online2(tag, "")))
		if i == 0 {
			f.start = archiveEndIn(c.Success)
		}
		f.a[i], f.inst[i] = follow(t, fmt.Sprintf("a%d", i), c, false), inst
		where[f.a[i].name] = inst
	}
	if f.inst[0] == f.inst[1] || f.inst[1] == f.inst[2] || f.inst[0] == f.inst[2] {
		t.Fatalf("alice's three 2.0 sessions landed on instances %v, want three different ones (roundrobin)", f.inst)
	}
	// Classic clients as they usually are: carbons on, online.
	classic := func(name string, c *harness.Client) *peer {
		send(t, c, "<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
		waitFor(t, c, "carbons", "result")
		goOnline(t, c)
		return follow(t, name, c, true)
	}
	var inst int
	var c *harness.Client
	c, inst = cl.login(t, "alice")
	f.ac, where["ac"] = classic("ac", c), inst
	c, inst = cl.login(t, "bob")
	f.bob, where["bob"] = classic("bob", c), inst
	f.desk = classic("desk", cl.direct(t, "bob", func(l *harness.Login) { l.Resource = "Desk" }))
	c, inst = cl.login(t, "carol", deviceLogin("lb-carol-"+id, online2("peer", "")))
	f.carol, where["carol"] = follow(t, "carol", c, false), inst
	f.all = []*peer{f.a[0], f.a[1], f.a[2], f.ac, f.bob, f.desk, f.carol}
	t.Logf("instances: %v (desk is connected straight to the server)", where)
	return f
}

// settle has sender send a control chat to every other account's bare JID,
// and waits until every peer but the sender has one (directly or as a
// sent carbon). The server handles the sender's stanzas in order and each
// session's leg is a queue, so once a peer has the control it has every
// copy of what the sender sent before.
func (f *lbFixture) settle(ctx context.Context, t *testing.T, sender *peer) {
	t.Helper()
	control := "ctl-" + harness.NewID()
	for _, account := range []string{"alice", "bob", "carol"} {
		if to := account + "@" + domain; to != bare(sender.c.JID) {
			sendChat(sender.c, to, "chat", control)
		}
	}
	for _, p := range f.all {
		if p != sender && !p.waitCount(ctx, control, 1) {
			t.Errorf("%s never got the control message sent after the row (%s), so its count may be short", p.name, p.state())
		}
	}
}

// lbWant is how many copies of a row's message each peer receives.
type lbWant struct {
	a                    [3]int
	ac, bob, desk, carol int
}

func (w lbWant) of(i int) int {
	return append(w.a[:], w.ac, w.bob, w.desk, w.carol)[i]
}

// lbRow is one routing row: from sends a message carrying the marker (in
// its id, and in its body when it has one).
type lbRow struct {
	name string
	from func(f *lbFixture) *peer
	send func(t *testing.T, f *lbFixture, m string)
	want lbWant
	// archived: the row's message is in alice's archive, so in a later
	// catch-up, exactly once.
	archived bool
	check    func(t *testing.T, f *lbFixture, m string)
}

// chat is a message of type typ from the raw attribute values given.
func chat(to, typ, id, body string) string {
	return fmt.Sprintf("<message to='%s' type='%s' id=\"%s\"><body>%s</body></message>", to, typ, id, body)
}

// lbRows are the rows of contract sections 5 and 6, each across instances.
func lbRows(f *lbFixture) []lbRow {
	alice := "alice@" + domain
	all2 := [3]int{1, 1, 1}
	only := func(i int) [3]int { var a [3]int; a[i] = 1; return a }
	others := func(i int) [3]int { a := all2; a[i] = 0; return a }
	bob := func(f *lbFixture) *peer { return f.bob }
	carol := func(f *lbFixture) *peer { return f.carol }
	rows := []lbRow{
		{
			name: "section 5: a classic peer's bare-JID chat reaches every 2.0 session once, on every instance",
			from: bob,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.bob.c, chat(alice, "chat", m, m)) },
			// desk: bob's other resource gets the 1.0 sent carbon.
			want: lbWant{a: all2, ac: 1, desk: 1}, archived: true,
		},
		{
			name: "section 5: a 2.0 peer's bare-JID chat reaches every 2.0 session once, on every instance",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.carol.c, chat(alice, "chat", m, m)) },
			want: lbWant{a: all2, ac: 1}, archived: true,
		},
	}
	for i := range 3 {
		rows = append(rows, lbRow{
			name: fmt.Sprintf("section 5: a 2.0 peer's message to a%d's full JID (instance %d) is delivered there only", i, f.inst[i]),
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.carol.c, chat(f.a[i].c.JID, "chat", m, m)) },
			want: lbWant{a: only(i)},
			check: func(t *testing.T, f *lbFixture, m string) {
				for _, el := range f.a[i].with(m) {
					if contains(el, "urn:xmpp:carbons:2") || contains(el, "urn:xmpp:hints") || !contains(el, "<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>") {
						t.Errorf("a%d's copy: want xmpp-2 and no 1.0 modifiers: %s", i, el)
					}
				}
			},
		})
	}
	for i := range 3 {
		rows = append(rows, lbRow{
			name: fmt.Sprintf("section 6 entering: a classic peer's full-JID chat to a%d (instance %d) is rerouted to every 2.0 session once", i, f.inst[i]),
			from: bob,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.bob.c, chat(f.a[i].c.JID, "chat", m, m)) },
			// ac: the 1.0 received carbon; desk: the 1.0 sent carbon.
			want: lbWant{a: all2, ac: 1, desk: 1}, archived: true,
			check: func(t *testing.T, f *lbFixture, m string) {
				for j := range 3 {
					for _, el := range f.a[j].with(m) {
						if !contains(el, "to='"+alice+"'") {
							t.Errorf("a%d: the rerouted copy is not addressed to the bare JID: %s", j, el)
						}
					}
				}
			},
		})
	}
	for i := range 3 {
		rows = append(rows, lbRow{
			name: fmt.Sprintf("section 5: a%d's message (instance %d) reaches its siblings on the other instances as sent carbons", i, f.inst[i]),
			from: func(f *lbFixture) *peer { return f.a[i] },
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.a[i].c, chat("bob@"+domain, "chat", m, m)) },
			want: lbWant{a: others(i), ac: 1, bob: 1, desk: 1}, archived: true,
			check: func(t *testing.T, f *lbFixture, m string) {
				for j := range 3 {
					for _, el := range f.a[j].with(m) {
						if !contains(el, "<sent xmlns='urn:xmpp:carbons:2'>") {
							t.Errorf("a%d did not get a sent carbon: %s", j, el)
						}
					}
				}
			},
		})
	}
	rows = append(rows, []lbRow{
		{
			name: "section 5: a classic session's message reaches the 2.0 sessions on every instance as sent carbons",
			from: func(f *lbFixture) *peer { return f.ac },
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.ac.c, chat("bob@"+domain, "chat", m, m)) },
			want: lbWant{a: all2, bob: 1, desk: 1}, archived: true,
		},
		{
			name: "section 5: a 2.0 message to a sibling's full JID on another instance is delivered there only",
			from: func(f *lbFixture) *peer { return f.a[0] },
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.a[0].c, chat(f.a[1].c.JID, "chat", m, m)) },
			want: lbWant{a: only(1)},
		},
		{
			name: "section 5: a 2.0 message to an offline full JID is bounced, and nothing is delivered",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.carol.c, chat(alice+"/gone-"+m, "chat", m, m)) },
			want: lbWant{carol: 1},
			check: func(t *testing.T, f *lbFixture, m string) {
				checkBounce(t, f.carol.with(m), m, alice+"/gone-"+m)
			},
		},
		{
			name: "section 5: no false bounce for a resource bound directly on the server",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.carol.c, chat(f.desk.c.JID, "chat", m, m)) },
			want: lbWant{desk: 1},
		},
		{
			name: "section 5: no false bounce for a classic resource through another instance",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) { send(t, f.carol.c, chat(f.ac.c.JID, "chat", m, m)) },
			want: lbWant{ac: 1},
		},
		{
			name: "section 5: a resource differing only in case is offline: bounced, nothing reaches the other",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.carol.c, chat(strings.Replace(f.desk.c.JID, "/Desk", "/desk", 1), "chat", m, m))
			},
			want: lbWant{carol: 1},
			check: func(t *testing.T, f *lbFixture, m string) {
				checkBounce(t, f.carol.with(m), m, "bob@"+domain+"/desk")
			},
		},
		{
			name: "hostile id from a 2.0 client: a to='...' inside the id neither bounces nor misroutes",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.carol.c, chat(f.a[1].c.JID, "chat", m+" to='"+alice+"/gone'", m))
			},
			want: lbWant{a: only(1)},
			check: func(t *testing.T, f *lbFixture, m string) {
				checkID(t, "a1", f.a[1].with(m), m+" to='"+alice+"/gone'")
			},
		},
		{
			name: "hostile id from a 2.0 client: the bounce of an id with quotes, > and entities is well-formed",
			from: carol,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.carol.c, chat(alice+"/gone-"+m, "chat", m+"' to='"+alice+"/x'&gt;>&amp;&lt;", m))
			},
			want: lbWant{carol: 1},
			check: func(t *testing.T, f *lbFixture, m string) {
				checkBounce(t, f.carol.with(m), m+"' to='"+alice+"/x'>>&<", alice+"/gone-"+m)
			},
		},
		{
			name: "hostile id from upstream: a full-JID headline whose id names the bare JID stays with that session",
			from: bob,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.bob.c, chat(f.a[2].c.JID, "headline", m+" to='"+alice+"'", m))
			},
			want: lbWant{a: only(2)},
			check: func(t *testing.T, f *lbFixture, m string) {
				checkID(t, "a2", f.a[2].with(m), m+" to='"+alice+"'")
			},
		},
		{
			name: "hostile id from upstream: a full-JID chat whose id says headline and another resource is rerouted to every 2.0 session",
			from: bob,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.bob.c, chat(f.a[0].c.JID, "chat", m+" type='headline' to='"+alice+"/elsewhere'>", m))
			},
			want: lbWant{a: all2, ac: 1, desk: 1}, archived: true,
			check: func(t *testing.T, f *lbFixture, m string) {
				for j := range 3 {
					checkID(t, fmt.Sprintf("a%d", j), f.a[j].with(m), m+" type='headline' to='"+alice+"/elsewhere'>")
				}
			},
		},
		{
			name: "hostile id from upstream: a bare-JID chat whose id names one full JID reaches every 2.0 session",
			from: bob,
			send: func(t *testing.T, f *lbFixture, m string) {
				send(t, f.bob.c, chat(alice, "chat", m+" to='"+f.a[1].c.JID+"'&gt;&apos;", m))
			},
			want: lbWant{a: all2, ac: 1, desk: 1}, archived: true,
			check: func(t *testing.T, f *lbFixture, m string) {
				for j := range 3 {
					checkID(t, fmt.Sprintf("a%d", j), f.a[j].with(m), m+" to='"+f.a[1].c.JID+"'>'")
				}
			},
		},
	}...)
	return rows
}

// checkBounce checks the proxy's bounce among els: well-formed, an error
// of type cancel with <service-unavailable/>, from the offline JID, with
// the original id.
func checkBounce(t *testing.T, els [][]byte, id, from string) {
	t.Helper()
	if len(els) != 1 {
		t.Errorf("want one bounce, got %q", els)
		return
	}
	s, err := decodeStanza(els[0])
	switch {
	case err != nil:
		t.Errorf("the bounce is not well-formed XML (%v): %s", err, els[0])
	case s.XMLName.Local != "message" || s.Type != "error" || s.condition() != "service-unavailable":
		t.Errorf("want a message error with <service-unavailable/>, got: %s", els[0])
	case s.ID != id:
		t.Errorf("the bounce's id is %q, want %q: %s", s.ID, id, els[0])
	case s.From != from:
		t.Errorf("the bounce is from %q, want %q: %s", s.From, from, els[0])
	}
}

// checkID checks that who got its copies with the id as sent.
func checkID(t *testing.T, who string, els [][]byte, id string) {
	t.Helper()
	for _, el := range els {
		s, err := decodeStanza(el)
		if err != nil {
			t.Errorf("%s: not well-formed XML (%v): %s", who, err, el)
		} else if s.ID != id {
			t.Errorf("%s: id %q, want %q: %s", who, s.ID, id, el)
		}
	}
}

// TestBalancerRoutingRows: every routing row of contract sections 5 and 6,
// once each, for an account whose 2.0 sessions are on three instances
// behind HAProxy, then a fresh bind through the balancer whose <sync/>
// catch-up holds exactly the archivable rows, once each.
func TestBalancerRoutingRows(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newLBFixture(t, srv)
		archived := map[string]bool{} // marker -> in alice's archive
		var order []string
		for _, row := range lbRows(f) {
			m := "lb-" + harness.NewID()
			archived[m] = row.archived
			order = append(order, m)
			t.Run(row.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				sender := row.from(f)
				row.send(t, f, m)
				for i, p := range f.all {
					if n := row.want.of(i); n > 0 && !p.waitCount(ctx, m, n) {
						t.Errorf("%s got %d copies by the deadline, want %d (%s)", p.name, len(p.with(m)), n, p.state())
					}
				}
				f.settle(ctx, t, sender)
				var counts []string
				for i, p := range f.all {
					got := p.with(m)
					counts = append(counts, fmt.Sprintf("%s %d", p.name, len(got)))
					if len(got) != row.want.of(i) {
						t.Errorf("%s got the message %d times, want %d: %q", p.name, len(got), row.want.of(i), got)
					}
					for _, el := range got {
						if err := wellFormed(el); err != nil {
							t.Errorf("%s received XML that is not well-formed (%v): %s", p.name, err, el)
						}
					}
				}
				for j := range 3 {
					for _, el := range f.a[j].with(m) {
						if contains(el, "<received xmlns='urn:xmpp:carbons:2'") {
							t.Errorf("a%d saw a <received> carbon wrapper: %s", j, el)
						}
					}
				}
				t.Log(strings.Join(counts, ", "))
				if row.check != nil {
					row.check(t, f, m)
				}
			})
		}
		for _, p := range f.all {
			p.mu.Lock()
			q := p.questions
			p.mu.Unlock()
			switch {
			case !p.classic && len(q) != 0:
				t.Errorf("2.0 client %s saw the proxies' online questions: %q", p.name, q)
			case p.classic && len(q) != 0:
				t.Logf("classic client %s answered %d online questions", p.name, len(q))
			}
		}

		t.Run("section 4: a fresh bind through the balancer catches up every archivable row once, and no transient one", func(t *testing.T) {
			c, inst := f.cl.login(t, "alice", deviceLogin("lb-late-"+harness.NewID(), online2("late", syncAfter(f.start))))
			late := follow(t, "late", c, false)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if !late.waitUntil(ctx, func() bool { return len(elementsWith(late.els, "<synced")) > 0 }) {
				t.Fatalf("no <synced/> (%s)", late.state())
			}
			late.mu.Lock()
			var before [][]byte
			var synced []byte
			for _, el := range late.els {
				if bytes.HasPrefix(el, []byte("<synced")) {
					synced = el
					break
				}
				before = append(before, el)
			}
			late.mu.Unlock()
			if mm := syncedRE.FindSubmatch(synced); mm == nil || string(mm[3]) != "true" {
				t.Errorf("synced = %s, want complete", synced)
			}
			var inCatchup, wrong int
			for _, m := range order {
				n, want := len(elementsWith(before, m)), 0
				if archived[m] {
					want = 1
					inCatchup += n
				}
				if n != want {
					wrong++
					t.Errorf("the catch-up has row %s %d times, want %d", m, n, want)
				}
			}
			t.Logf("landed on instance %d; the catch-up holds %d of the %d archivable rows, %d rows wrong", inst, inCatchup, countTrue(archived), wrong)
		})
	})
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// resumeAndBind is the one request of a device that comes back: resume the
// old session if this instance holds it, else bind afresh (same tag and
// user-agent id) with a catch-up after the last archive id it saw.
func resumeAndBind(ua, tag, previd string, h uint32, lastSeen string) func(*harness.Login) {
	return deviceLogin(ua, fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h)+online2(tag, syncAfter(lastSeen)))
}

// TestBalancerRollingRestart: issue 10, item 5. alice has six 2.0 devices
// with stream management, two per instance; bob, connected straight to the
// server, sends a numbered series of chats to alice's bare JID before,
// during and after one instance is drained: taken out of HAProxy (the
// series goes on), then shut down in process (what SIGTERM does through
// ListenAndServe) while the series goes on. Its
// devices get <system-shutdown/>, reconnect through the balancer (landing
// on the other instances) and bind afresh with <sync after=LAST-ARCHIVE-ID/>
// in the same round trip. Every device, its two connections added up, gets
// every number exactly once.
func TestBalancerRollingRestart(t *testing.T) {
	const (
		perPhase = 10
		devices  = 6
	)
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		cl := startCluster(t, srv, 3)
		account := "alice@" + domain
		bob := cl.direct(t, "bob")
		watch(t, "bob", bob) // bounces of what a closed leg never acked may come back to him
		id := harness.NewID()
		type dev struct {
			name, ua, tag string
			inst          int
			conns         []*device
			// after is the archive id its catch-up started after.
			after string
		}
		devs := make([]*dev, devices)
		perInstance := make([]int, len(cl.proxies))
		for k := range devs {
			d := &dev{name: fmt.Sprintf("device %d", k), ua: fmt.Sprintf("rr-%d-%s", k, id), tag: fmt.Sprintf("rr%d", k)}
			c, inst := cl.login(t, "alice", deviceLogin(d.ua, online2(d.tag, "")))
			d.inst = inst
			d.conns = []*device{watchArchive(t, d.name, c, account)}
			perInstance[inst]++
			devs[k] = d
		}
		for _, n := range perInstance {
			if n != devices/len(cl.proxies) {
				t.Fatalf("the devices are spread %v over the instances, want %d each (roundrobin)", perInstance, devices/len(cl.proxies))
			}
		}
		victim := devs[0].inst
		last := func(d *dev) *device { return d.conns[len(d.conns)-1] }

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		marker := "fault-" + harness.NewID()
		to := func(int) string { return account }
		sent := 0
		series := func(phase string, n int) {
			t.Helper()
			k, err := sendNumbered(ctx, bob, to, "chat", marker, sent+1, sent+n, 0)
			if err != nil {
				t.Fatalf("%s: bob wrote %d of %d: %v", phase, k, n, err)
			}
			t.Logf("%s: bob sent %d-%d", phase, sent+1, sent+n)
			sent += n
		}

		series("before the drain", perPhase)
		for _, d := range devs {
			if !last(d).waitAll(ctx, marker, sent) {
				t.Fatalf("before the drain, %s (%s)", last(d).count(marker, sent), last(d).state())
			}
		}

		// The operator takes the instance out of the balancer, then stops it.
		if err := cl.lb.Drain(ctx, victim); err != nil {
			t.Fatal(err)
		}
		shutdown := make(chan error, 1)
		series("drained from the balancer, still serving its clients", perPhase)
		for _, d := range devs {
			if !last(d).waitAll(ctx, marker, sent) {
				t.Fatalf("while the instance was out of the balancer but serving, %s (%s)", last(d).count(marker, sent), last(d).state())
			}
		}
		// The instance stops while those are on their way to its clients,
		// and bob goes on sending.
		go func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			shutdown <- cl.proxies[victim].proxy.Shutdown(sctx)
		}()
		series("while the instance shuts down", perPhase)
		var drained []*dev
		for _, d := range devs {
			if d.inst != victim {
				continue
			}
			drained = append(drained, d)
			old := last(d)
			if !old.ended(ctx) {
				t.Fatalf("%s is still connected to the drained instance", d.name)
			}
			if !old.gotStreamError() || !strings.Contains(old.state(), "system-shutdown") {
				t.Errorf("%s's stream %s, want <system-shutdown/>", d.name, old.state())
			}
		}
		if err := <-shutdown; err != nil {
			t.Errorf("the drained instance's Shutdown: %v", err)
		}
		series("while the drained devices are away", perPhase)

		// They come back through the balancer, each with the last archive
		// id it saw, and land on the instances still in service.
		for _, d := range drained {
			old := last(d)
			lastSeen := old.archiveID()
			d.after = lastSeen
			c, inst := cl.login(t, "alice", deviceLogin(d.ua, online2(d.tag, syncAfter(lastSeen))))
			if inst == victim {
				t.Errorf("%s reconnected to the drained instance", d.name)
			}
			if !contains(c.Success, "<bound xmlns='urn:xmpp:bind:0'") {
				t.Errorf("%s: no <bound/> in %s", d.name, c.Success)
			}
			t.Logf("%s: instance %d drained, back on instance %d with <sync after='%s'/>; its old connection received %d of the %d sent so far",
				d.name, d.inst, inst, lastSeen, old.count(marker, sent).got, sent)
			d.inst = inst
			d.conns = append(d.conns, watchArchive(t, d.name+" (reconnected)", c, account))
		}
		series("after the drain", perPhase)

		// Every number, on one connection or the other, by the deadline; a
		// copy a sibling's leg hands over may come after later ones. Then
		// bob's control chat: once a device has it, whatever came twice
		// has come.
		current := make([]*device, 0, len(devs))
		for _, d := range devs {
			got := map[int]int{}
			for _, c := range d.conns[:len(d.conns)-1] {
				for seq, n := range c.snapshot(marker) {
					got[seq] += n
				}
			}
			now := last(d)
			if !now.waitUntil(ctx, func() bool {
				for seq := 1; seq <= sent; seq++ {
					if got[seq]+now.copies[marker][seq] == 0 {
						return false
					}
				}
				return true
			}) {
				t.Errorf("by the deadline, %s (%s)", countAcross(d.name, marker, sent, d.conns...), now.state())
			}
			current = append(current, now)
		}
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		settle(sctx, t, bob, account, current...)
		var wrong []*dev
		for _, d := range devs {
			c := countAcross(d.name, marker, sent, d.conns...)
			exactlyOnce(t, c)
			if c.lost+c.dup > 0 && d.after != "" {
				wrong = append(wrong, d)
			}
		}
		for _, d := range devs {
			checkMarked(t, marker, d.conns...)
		}
		// Where a catch-up went wrong, what does the archive itself hold
		// after the id that catch-up started from? Asked straight from
		// the server, once every count is taken.
		for _, d := range wrong {
			now := last(d)
			now.mu.Lock()
			synced := now.synced
			now.mu.Unlock()
			t.Logf("%s: its catch-up ended with %s; alice's archive after %s, asked straight from the server afterwards: %s",
				d.name, synced, d.after, archiveSeries(t, cl, d.after, marker))
		}
	})
}

// archiveSeries asks alice's archive, with a classic session connected
// straight to the server, for what follows the archive id after, and
// describes how many times it holds each number of marker's series.
func archiveSeries(t *testing.T, cl *cluster, after, marker string) string {
	t.Helper()
	c := cl.direct(t, "alice")
	defer c.Close()
	id := harness.NewID()
	send(t, c, "<iq type='set' id='mam-"+id+"'><query xmlns='urn:xmpp:mam:2' queryid='q-"+id+"'>"+
		"<set xmlns='http://jabber.org/protocol/rsm'><max>500</max><after>"+escapeAttr(after)+"</after></set></query></iq>")
	held := map[int][]string{} // number -> archive ids
	for {
		el := waitFor(t, c, "")
		if contains(el, "queryid='q-"+id+"'") {
			for _, m := range seqBodyRE.FindAllSubmatch(el, -1) {
				if string(m[1]) == marker {
					n := 0
					_, _ = fmt.Sscan(string(m[2]), &n)
					held[n] = append(held[n], archiveIDIn(el, "alice@"+domain))
				}
			}
			continue
		}
		if contains(el, "<iq", "id='mam-"+id+"'") {
			break
		}
	}
	var seqs, odd []int
	for n := range held {
		seqs = append(seqs, n)
	}
	slices.Sort(seqs)
	var b strings.Builder
	for _, n := range seqs {
		if len(held[n]) != 1 {
			odd = append(odd, n)
		}
	}
	if len(seqs) == 0 {
		return "none of the series"
	}
	fmt.Fprintf(&b, "numbers %s, the first (#%d) with archive id %v", ranges(seqs), seqs[0], held[seqs[0]])
	for _, n := range odd {
		fmt.Fprintf(&b, "; #%d %d times (archive ids %v)", n, len(held[n]), held[n])
	}
	return b.String()
}

// TestBalancerResumeOnAnotherInstance: contract section 8. A device's TCP
// connection is reset, so its instance holds the session; bob sends chats
// meanwhile. The device resumes through the balancer, which sends it to
// another instance: in the same round trip it gets <failed/> and <bound/>,
// and its <sync after=.../> brings everything it missed, exactly once, as
// its siblings on the other instances get everything live.
func TestBalancerResumeOnAnotherInstance(t *testing.T) {
	const perPhase = 10
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		cl := startCluster(t, srv, 3)
		account := "alice@" + domain
		bob := cl.direct(t, "bob")
		watch(t, "bob", bob)
		id := harness.NewID()
		// The device logs in last, so that the balancer's next connection
		// goes to the first sibling's instance, not to its own.
		s1c, i1 := cl.login(t, "alice", deviceLogin("sib1-"+id, online2("sib1", "")))
		s2c, i2 := cl.login(t, "alice", deviceLogin("sib2-"+id, online2("sib2", "")))
		ua := "phone-" + id
		hc, ih := cl.login(t, "alice", deviceLogin(ua, online2("phone", "")))
		if i1 == i2 || i2 == ih || i1 == ih {
			t.Fatalf("the sessions landed on instances %d, %d and %d, want three different ones (roundrobin)", i1, i2, ih)
		}
		previd := smID(t, hc)
		s1 := watch(t, "sibling 1", s1c)
		s2 := watch(t, "sibling 2", s2c)
		held := watchArchive(t, "the device", hc, account)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		marker := "fault-" + harness.NewID()
		to := func(int) string { return account }
		sent := 0
		series := func(phase string) {
			t.Helper()
			if k, err := sendNumbered(ctx, bob, to, "chat", marker, sent+1, sent+perPhase, 0); err != nil {
				t.Fatalf("%s: bob wrote %d of %d: %v", phase, k, perPhase, err)
			}
			t.Logf("%s: bob sent %d-%d", phase, sent+1, sent+perPhase)
			sent += perPhase
		}
		series("before the reset")
		for _, d := range []*device{s1, s2, held} {
			if !d.waitAll(ctx, marker, sent) {
				t.Fatalf("before the reset, %s (%s)", d.count(marker, sent), d.state())
			}
		}
		_ = hc.Reset()
		if !held.ended(ctx) {
			t.Fatal("the reset connection is still read")
		}
		h, lastSeen := hc.Received, held.archiveID()

		series("while the session is held")
		// Once the siblings have them, the server has routed them to the
		// held session's leg too.
		for _, d := range []*device{s1, s2} {
			if !d.waitAll(ctx, marker, sent) {
				t.Fatalf("while the session was held, %s (%s)", d.count(marker, sent), d.state())
			}
		}

		c, inst := cl.login(t, "alice", resumeAndBind(ua, "phone", previd, h, lastSeen))
		if inst == ih {
			t.Fatalf("the resumption landed on instance %d, which holds the session: the balancer did not rotate", inst)
		}
		s := string(c.Success)
		failed, bound := strings.Index(s, "<failed xmlns='urn:xmpp:sm:3'>"), strings.Index(s, "<bound xmlns='urn:xmpp:bind:0'")
		if failed < 0 || bound < 0 || failed > bound || strings.Contains(s, "<resumed") {
			t.Errorf("want <failed/> then <bound/> and no <resumed/> in one <success/>: %s", s)
		}
		if c.JID != hc.JID {
			t.Errorf("the fresh bind on instance %d is %s, on instance %d it was %s: one secret, one resource", inst, c.JID, ih, hc.JID)
		}
		t.Logf("held on instance %d, came back on instance %d: <failed/> + <bound/>, <sync after='%s'/>, h=%d", ih, inst, lastSeen, h)
		back := watchArchive(t, "the device (fresh bind)", c, account)

		series("after the fresh bind")
		old := held.snapshot(marker) // its reader has ended
		if !back.waitUntil(ctx, func() bool {
			for seq := 1; seq <= sent; seq++ {
				if old[seq]+back.copies[marker][seq] == 0 {
					return false
				}
			}
			return true
		}) {
			t.Errorf("by the deadline, %s (%s)", countAcross("the device", marker, sent, held, back), back.state())
		}
		for _, d := range []*device{s1, s2} {
			if !d.waitAll(ctx, marker, sent) {
				t.Errorf("by the deadline, %s (%s)", d.count(marker, sent), d.state())
			}
		}
		sctx, scancel := context.WithTimeout(context.Background(), wait)
		defer scancel()
		settle(sctx, t, bob, account, s1, s2, back)
		exactlyOnce(t, s1.count(marker, sent))
		exactlyOnce(t, s2.count(marker, sent))
		exactlyOnce(t, countAcross("the device, both connections", marker, sent, held, back))
		checkMarked(t, marker, held, back)
		t.Logf("the device's reset connection received %d of the %d", held.count(marker, sent).got, sent)
	})
}
