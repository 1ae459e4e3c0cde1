package proxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// waitFor bounds every wait for an expected event. It is generous on
// purpose: the tests assert that things happen, never how fast.
const waitFor = 10 * time.Second

const (
	saslSuccess      = "<success xmlns='" + ns.SASL + "'/>"
	saslNotAuthzd    = "<failure xmlns='" + ns.SASL + "'><not-authorized/></failure>"
	fakeBindFeatures = "<stream:features><bind xmlns='" + ns.Bind + "'/></stream:features>"
	fakeBoundID      = "fake-bound-stream"
	bindRequest      = "<iq type='set' id='bind1'><bind xmlns='" + ns.Bind + "'><resource>test</resource></bind></iq>"
)

// wrongPassword is a credential the fake upstream refuses: it refuses
// the password "wrong" for any user.
var wrongPassword = base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wrong"))

func authPlain(user, pass string) string {
	return "<auth xmlns='" + ns.SASL + "' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + "</auth>"
}

func bindResult(jid string) string {
	return "<iq type='result' id='bind1'><bind xmlns='" + ns.Bind + "'><jid>" + jid + "</jid></bind></iq>"
}

func fakeHeader(id string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + ns.Stream +
		"' version='1.0' from='localhost' id='" + id + "'>"
}

// ---------------------------------------------------------------------------
// Fake upstream

// fakeUpstream is a scripted XMPP server on loopback. Per connection it
// offers mechs, answers every <auth/> with <success/> except alice's wrong
// password, restarts the stream with a bind feature, binds, and from then on
// records every unit it reads (echoing elements back when echo is set).
type fakeUpstream struct {
	ln    net.Listener
	mechs []string
	echo  bool
	conns chan *fakeConn
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	closed bool
	open   []net.Conn
}

// fakeConn is one proxy connection to the fake upstream, seen from the
// server's side.
type fakeConn struct {
	conn   net.Conn
	fr     *stream.Framer
	echo   bool
	done   chan struct{}
	events chan fakeEvent // closed when the handler returns
}

// fakeEvent is a unit the fake read after binding (or one it did not expect
// during negotiation), or, as the last event, the error that ended reading.
type fakeEvent struct {
	unit stream.Unit
	err  error
}

// errOffScript ends the fake's negotiation early; the unexpected unit has
// been recorded and the fake goes on recording.
var errOffScript = errors.New("off script")

var fakeLimits = stream.Limits{MaxBytes: 16 << 20, MaxDepth: 128}

func startFakeUpstream(t *testing.T, echo bool, mechs ...string) *fakeUpstream {
	t.Helper()
	if len(mechs) == 0 {
		mechs = []string{"PLAIN", "SCRAM-SHA-1-PLUS"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{ln: ln, mechs: mechs, echo: echo, conns: make(chan *fakeConn, 16), done: make(chan struct{})}
	f.wg.Add(1)
	go f.acceptLoop()
	t.Cleanup(f.close)
	return f
}

func (f *fakeUpstream) addr() string { return f.ln.Addr().String() }

func (f *fakeUpstream) acceptLoop() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			conn.Close()
			return
		}
		f.open = append(f.open, conn)
		f.wg.Add(1)
		f.mu.Unlock()
		c := &fakeConn{
			conn:   conn,
			fr:     stream.NewFramer(bufio.NewReader(conn), fakeLimits),
			echo:   f.echo,
			done:   f.done,
			events: make(chan fakeEvent, 4096),
		}
		go func() { defer f.wg.Done(); c.serve(f.mechs) }()
		select {
		case f.conns <- c:
		case <-f.done:
			return
		}
	}
}

// close drops every connection and waits for the handlers.
func (f *fakeUpstream) close() {
	f.mu.Lock()
	f.closed = true
	open := f.open
	f.mu.Unlock()
	close(f.done)
	f.ln.Close()
	for _, c := range open {
		c.Close()
	}
	f.wg.Wait()
}

// accept returns the next connection the proxy opened.
func (f *fakeUpstream) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(waitFor):
		t.Fatal("the proxy never connected to the upstream")
		return nil
	}
}

func (c *fakeConn) serve(mechs []string) {
	defer close(c.events)
	defer c.conn.Close()
	if err := c.negotiate(mechs); err != nil && !errors.Is(err, errOffScript) {
		c.push(fakeEvent{err: err})
		return
	}
	for {
		u, err := c.fr.Next()
		if err != nil {
			c.push(fakeEvent{err: err})
			return
		}
		raw := bytes.Clone(u.Raw)
		c.push(fakeEvent{unit: stream.Unit{Kind: u.Kind, Raw: raw}})
		if c.echo && u.Kind == stream.UnitElement {
			_ = c.write(string(raw))
		}
	}
}

func (c *fakeConn) push(ev fakeEvent) {
	select {
	case c.events <- ev:
	case <-c.done:
	}
}

// negotiate plays the server side of stream negotiation up to resource
// binding.
func (c *fakeConn) negotiate(mechs []string) error {
	if err := c.expectOpen(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(fakeHeader("fake-preauth-stream") + "<stream:features><mechanisms xmlns='" + ns.SASL + "'>")
	for _, m := range mechs {
		b.WriteString("<mechanism>" + m + "</mechanism>")
	}
	b.WriteString("</mechanisms></stream:features>")
	if err := c.write(b.String()); err != nil {
		return err
	}
	var user string
	for user == "" {
		u, err := c.element()
		if err != nil {
			return err
		}
		var auth struct {
			XMLName xml.Name `xml:"urn:ietf:params:xml:ns:xmpp-sasl auth"`
			Payload string   `xml:",chardata"`
		}
		if xml.Unmarshal(u.Raw, &auth) != nil {
			return c.offScript(u)
		}
		creds, _ := base64.StdEncoding.DecodeString(auth.Payload)
		if bytes.HasSuffix(creds, []byte("\x00wrong")) {
			if err := c.write(saslNotAuthzd); err != nil {
				return err
			}
			continue
		}
		if parts := strings.Split(string(creds), "\x00"); len(parts) == 3 {
			user = parts[1]
		}
		if user == "" {
			user = "anonymous"
		}
		if err := c.write(saslSuccess); err != nil {
			return err
		}
	}
	c.fr.Reset(nil)
	if err := c.expectOpen(); err != nil {
		return err
	}
	if err := c.write(fakeHeader(fakeBoundID) + fakeBindFeatures); err != nil {
		return err
	}
	u, err := c.element()
	if err != nil {
		return err
	}
	var iq struct {
		XMLName xml.Name `xml:"iq"`
		ID      string   `xml:"id,attr"`
		Bind    *struct {
			Resource string `xml:"resource"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	}
	if xml.Unmarshal(u.Raw, &iq) != nil || iq.Bind == nil || iq.ID != "bind1" {
		return c.offScript(u)
	}
	return c.write(bindResult(user + "@localhost/" + iq.Bind.Resource))
}

func (c *fakeConn) expectOpen() error {
	u, err := c.fr.Next()
	if err != nil {
		return err
	}
	if u.Kind != stream.UnitStreamOpen {
		return c.offScript(u)
	}
	return nil
}

// element returns the next element, skipping whitespace.
func (c *fakeConn) element() (stream.Unit, error) {
	for {
		u, err := c.fr.Next()
		if err != nil {
			return u, err
		}
		switch u.Kind {
		case stream.UnitElement:
			return u, nil
		case stream.UnitWhitespace:
		default:
			return u, c.offScript(u)
		}
	}
}

func (c *fakeConn) offScript(u stream.Unit) error {
	c.push(fakeEvent{unit: stream.Unit{Kind: u.Kind, Raw: bytes.Clone(u.Raw)}})
	return errOffScript
}

func (c *fakeConn) write(s string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	_, err := c.conn.Write([]byte(s))
	return err
}

// send writes s to the proxy, failing the test on error.
func (c *fakeConn) send(t *testing.T, s string) {
	t.Helper()
	if err := c.write(s); err != nil {
		t.Fatalf("upstream write: %v", err)
	}
}

// drop closes the TCP connection without closing the stream.
func (c *fakeConn) drop() { c.conn.Close() }

func (c *fakeConn) next(t *testing.T) fakeEvent {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatal("upstream: nothing more was read")
		}
		return ev
	case <-time.After(waitFor):
		t.Fatal("upstream: timed out waiting for the proxy")
		return fakeEvent{}
	}
}

// expect asserts the next unit the upstream read.
func (c *fakeConn) expect(t *testing.T, kind stream.UnitKind, raw string) {
	t.Helper()
	ev := c.next(t)
	if ev.err != nil {
		t.Fatalf("upstream: connection ended (%v), want %s %.200q", ev.err, kindName(kind), raw)
	}
	if ev.unit.Kind != kind || string(ev.unit.Raw) != raw {
		t.Fatalf("upstream read %s %.200q, want %s %.200q", kindName(ev.unit.Kind), ev.unit.Raw, kindName(kind), raw)
	}
}

// expectClosed asserts that the proxy closed the connection next, with
// nothing (in particular no </stream:stream>) before.
func (c *fakeConn) expectClosed(t *testing.T) {
	t.Helper()
	if ev := c.next(t); ev.err == nil {
		t.Fatalf("upstream read %s %.200q, want the connection closed", kindName(ev.unit.Kind), ev.unit.Raw)
	}
}

// waitClosed waits for the proxy to close the connection, whatever it sent.
func (c *fakeConn) waitClosed(t *testing.T) {
	t.Helper()
	for ev := c.next(t); ev.err == nil; ev = c.next(t) {
	}
}
