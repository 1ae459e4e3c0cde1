package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
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

// ---------------------------------------------------------------------------
// Proxy and client

func startProxy(t *testing.T, upstream string, tlsConfig *tls.Config, tweak func(*Config)) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newServerForTest(t, testConfig(upstream, tweak), tlsConfig, log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// testConfig is what the unit tests run a proxy with: plaintext on
// loopback, in front of upstream, then tweak.
func testConfig(upstream string, tweak func(*Config)) Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Upstream = upstream
	cfg.UpstreamTLS = UpstreamTLSNone
	cfg.Domains = []string{"localhost"}
	cfg.AllowPlaintext = true
	if tweak != nil {
		tweak(&cfg)
	}
	return cfg
}

// newServerForTest makes a server that the test's cleanup shuts down.
func newServerForTest(t *testing.T, cfg Config, tlsConfig *tls.Config, log *slog.Logger) *Server {
	t.Helper()
	srv, err := NewServer(cfg, tlsConfig, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return srv
}

// waitSessions waits until the server runs exactly n sessions.
func waitSessions(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		srv.mu.Lock()
		got := len(srv.sessions)
		srv.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions running, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// relayOf returns the relay of the server's only session.
func relayOf(t *testing.T, srv *Server) *relay {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(srv.sessions))
	}
	for s := range srv.sessions {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.relay != nil {
			return s.relay
		}
	}
	t.Fatal("the session is not relaying")
	return nil
}

var clientLimits = stream.Limits{MaxBytes: 16 << 20, MaxDepth: 128}

// testClient drives the client side of the proxy with raw XML.
type testClient struct {
	t    *testing.T
	conn net.Conn
	fr   *stream.Framer
}

func dialProxy(t *testing.T, srv *Server) *testClient {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testClient{t: t, conn: conn, fr: stream.NewFramer(bufio.NewReader(conn), clientLimits)}
}

func (c *testClient) write(s string) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	_, err := c.conn.Write([]byte(s))
	return err
}

func (c *testClient) send(s string) {
	c.t.Helper()
	if err := c.write(s); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *testClient) read() (stream.Unit, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(waitFor))
	u, err := c.fr.Next()
	return stream.Unit{Kind: u.Kind, Raw: bytes.Clone(u.Raw)}, err
}

func (c *testClient) next() stream.Unit {
	c.t.Helper()
	u, err := c.read()
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	return u
}

func (c *testClient) nextOf(kind stream.UnitKind) []byte {
	c.t.Helper()
	u := c.next()
	if u.Kind != kind {
		c.t.Fatalf("client read %s %.300q, want %s", kindName(u.Kind), u.Raw, kindName(kind))
	}
	return u.Raw
}

func (c *testClient) expect(kind stream.UnitKind, raw string) {
	c.t.Helper()
	if u := c.next(); u.Kind != kind || string(u.Raw) != raw {
		c.t.Fatalf("client read %s %.300q, want %s %.300q", kindName(u.Kind), u.Raw, kindName(kind), raw)
	}
}

// expectStreamError asserts a <stream:error/> with exactly the condition.
func (c *testClient) expectStreamError(condition string) {
	c.t.Helper()
	raw := c.nextOf(stream.UnitElement)
	name, conds := parseConditions(c.t, raw, ns.Streams)
	if name != (xml.Name{Space: ns.Stream, Local: "error"}) || !slices.Equal(conds, []string{condition}) {
		c.t.Fatalf("client read %q, want a stream error <%s/>", raw, condition)
	}
}

func (c *testClient) expectStreamClose() {
	c.t.Helper()
	c.expect(stream.UnitStreamClose, stream.CloseTag)
}

// expectConnClosed asserts that the proxy closed the connection with
// nothing more sent.
func (c *testClient) expectConnClosed() {
	c.t.Helper()
	u, err := c.read()
	if err == nil {
		c.t.Fatalf("client read %s %.300q, want the connection closed", kindName(u.Kind), u.Raw)
	}
	if isTimeout(err) {
		c.t.Fatalf("the proxy did not close the client connection: %v", err)
	}
}

// openStream sends a stream header and returns the proxy's features.
func (c *testClient) openStream() streamFeatures {
	c.t.Helper()
	c.send(testHeader)
	c.nextOf(stream.UnitStreamOpen)
	return parseFeatures(c.t, c.nextOf(stream.UnitElement))
}

// login authenticates as alice and binds, through the fake upstream.
func (c *testClient) login() {
	c.t.Helper()
	c.openStream()
	c.send(authPlain("alice", "secret"))
	c.expect(stream.UnitElement, saslSuccess)
	c.restartAndBind()
}

// restartAndBind restarts the stream after <success/> and binds.
func (c *testClient) restartAndBind() {
	c.t.Helper()
	c.fr.Reset(nil)
	c.send(testHeader)
	if h, err := stream.ParseHeader(c.nextOf(stream.UnitStreamOpen)); err != nil || h.ID != fakeBoundID {
		c.t.Fatalf("post-auth stream header: id %q, %v; want the upstream's id %q", h.ID, err, fakeBoundID)
	}
	c.expect(stream.UnitElement, fakeBindFeatures)
	c.send(bindRequest)
	c.expect(stream.UnitElement, bindResult("alice@localhost/test"))
}

// streamFeatures is what the tests look at in <stream:features/>.
type streamFeatures struct {
	StartTLS *struct {
		Required *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms *struct {
		Mechanism []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanism"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms"`
}

// decodeFragment decodes one top-level element read from a stream, with
// the namespace declarations of the stream header in scope.
func decodeFragment(t *testing.T, raw []byte, v any) xml.Name {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<w xmlns='jabber:client' xmlns:stream='" + ns.Stream + "'>" + string(raw) + "</w>"))
	for depth := 0; ; {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("decoding %q: %v", raw, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if depth++; depth == 2 {
				if err := d.DecodeElement(v, &start); err != nil {
					t.Fatalf("decoding %q: %v", raw, err)
				}
				return start.Name
			}
		}
	}
}

func parseFeatures(t *testing.T, raw []byte) streamFeatures {
	t.Helper()
	var f streamFeatures
	if name := decodeFragment(t, raw, &f); name != (xml.Name{Space: ns.Stream, Local: "features"}) {
		t.Fatalf("got %q, want <stream:features/>", raw)
	}
	return f
}

// parseConditions returns an error element's name and its children in ns
// other than <text/>: the defined conditions.
func parseConditions(t *testing.T, raw []byte, ns string) (xml.Name, []string) {
	t.Helper()
	var v struct {
		Children []struct{ XMLName xml.Name } `xml:",any"`
	}
	name := decodeFragment(t, raw, &v)
	var conds []string
	for _, c := range v.Children {
		if c.XMLName.Space == ns && c.XMLName.Local != "text" {
			conds = append(conds, c.XMLName.Local)
		}
	}
	return name, conds
}

func kindName(k stream.UnitKind) string {
	switch k {
	case stream.UnitElement:
		return "element"
	case stream.UnitStreamOpen:
		return "stream header"
	case stream.UnitStreamClose:
		return "stream close"
	case stream.UnitWhitespace:
		return "whitespace"
	}
	return fmt.Sprintf("kind %d", k)
}

// setup starts a fake upstream and a proxy in front of it, connects a
// client and logs it in. tweak adjusts the proxy's configuration.
func setup(t *testing.T, tweak func(*Config)) (*Server, *testClient, *fakeConn) {
	t.Helper()
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), nil, tweak)
	c := dialProxy(t, srv)
	c.login()
	return srv, c, fake.accept(t)
}

// ---------------------------------------------------------------------------
// Negotiation

func TestClientIsOfferedUpstreamMechanismsMinusPLUS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		upstream []string
		want     []string
	}{
		{
			name:     "SCRAM-SHA-1-PLUS is dropped",
			upstream: []string{"PLAIN", "SCRAM-SHA-1-PLUS"},
			want:     []string{"PLAIN"},
		},
		{
			name:     "every -PLUS variant is dropped and the order kept",
			upstream: []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"},
			want:     []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"},
		},
		{
			name:     "a lower-case -plus is dropped too",
			upstream: []string{"scram-sha-256-plus", "X-OAUTH2", "PLAIN"},
			want:     []string{"X-OAUTH2", "PLAIN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false, tt.upstream...)
			srv := startProxy(t, fake.addr(), nil, nil)
			f := dialProxy(t, srv).openStream()
			if f.StartTLS != nil {
				t.Error("STARTTLS offered without a certificate")
			}
			if f.Mechanisms == nil {
				t.Fatal("no <mechanisms/> offered")
			}
			if !slices.Equal(f.Mechanisms.Mechanism, tt.want) {
				t.Errorf("mechanisms %q, want %q", f.Mechanisms.Mechanism, tt.want)
			}
		})
	}
}

func TestWrongPasswordFailsAndClientMayRetryOnSameStream(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, true)
	srv := startProxy(t, fake.addr(), nil, nil)
	c := dialProxy(t, srv)
	c.openStream()

	c.send(authPlain("alice", "wrong"))
	c.expect(stream.UnitElement, saslNotAuthzd) // the upstream's <failure/>, unchanged
	c.send(authPlain("alice", "secret"))
	c.expect(stream.UnitElement, saslSuccess)
	c.restartAndBind()

	// The session relays: the fake echoes.
	msg := "<message to='bob@localhost' id='m1'><body>hello</body></message>"
	c.send(msg)
	c.expect(stream.UnitElement, msg)
	up := fake.accept(t)
	up.expect(t, stream.UnitElement, msg)
}

func TestSilentClientGetsConnectionTimeoutDuringHandshake(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), nil, func(c *Config) { c.Timeouts.Handshake = Duration(300 * time.Millisecond) })
	c := dialProxy(t, srv)
	if h, err := stream.ParseHeader(c.nextOf(stream.UnitStreamOpen)); err != nil || h.From != "localhost" {
		t.Fatalf("stream header from %q, %v; want from localhost", h.From, err)
	}
	c.expectStreamError(stream.CondConnectionTimeout)
	c.expectStreamClose()
	c.expectConnClosed()
}

func TestUnreachableUpstreamGivesRemoteConnectionFailed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := ln.Addr().String()
	ln.Close()
	srv := startProxy(t, nothing, nil, nil)
	c := dialProxy(t, srv)
	c.send(testHeader)
	c.nextOf(stream.UnitStreamOpen)
	c.expectStreamError(stream.CondRemoteConnectionFailed)
	c.expectStreamClose()
	c.expectConnClosed()
}

func TestStartTLSRequiredRefusesAuthBeforeTLS(t *testing.T) {
	t.Parallel()
	serverTLS, roots := testCertificate(t)
	fake := startFakeUpstream(t, false)
	srv := startProxy(t, fake.addr(), serverTLS, func(c *Config) { c.AllowPlaintext = false })
	c := dialProxy(t, srv)

	f := c.openStream()
	if f.StartTLS == nil || f.StartTLS.Required == nil {
		t.Error("pre-TLS features lack <starttls><required/></starttls>")
	}
	if f.Mechanisms != nil {
		t.Errorf("pre-TLS features offer mechanisms %q", f.Mechanisms.Mechanism)
	}

	c.send(authPlain("alice", "secret"))
	raw := c.nextOf(stream.UnitElement)
	if name, conds := parseConditions(t, raw, ns.SASL); name != (xml.Name{Space: ns.SASL, Local: "failure"}) || !slices.Equal(conds, []string{"encryption-required"}) {
		t.Fatalf("auth before STARTTLS got %q, want a SASL <failure><encryption-required/></failure>", raw)
	}

	// The stream survives the refusal: STARTTLS, then log in.
	c.send("<starttls xmlns='" + ns.TLS + "'/>")
	c.expect(stream.UnitElement, "<proceed xmlns='"+ns.TLS+"'/>")
	tc := tls.Client(c.conn, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(waitFor))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.fr.Reset(bufio.NewReader(tc))
	f = c.openStream()
	if f.StartTLS != nil {
		t.Error("STARTTLS offered again over TLS")
	}
	if f.Mechanisms == nil || !slices.Equal(f.Mechanisms.Mechanism, []string{"PLAIN"}) {
		t.Fatalf("features over TLS offer %+v, want the mechanisms [PLAIN]", f.Mechanisms)
	}
	c.send(authPlain("alice", "secret"))
	c.expect(stream.UnitElement, saslSuccess)
	c.restartAndBind()
}

// testCertificate returns a server config with a fresh self-signed
// certificate for localhost, and a pool that trusts it.
func testCertificate(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}, roots
}

// ---------------------------------------------------------------------------
// How an authenticated session ends

func TestShutdownSendsSystemShutdownAndClosesUpstreamStream(t *testing.T) {
	t.Parallel()
	srv, c, up := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expectStreamError(stream.CondSystemShutdown)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestShutdownDuringNegotiationSendsSystemShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// negotiate brings the client to the stage where Shutdown hits.
		negotiate func(t *testing.T, c *testClient, srv *Server)
		// header: the proxy has yet to send its stream header.
		header bool
		// upstream: the proxy has an upstream stream to close.
		upstream bool
	}{
		{
			name:      "before the client's stream header",
			negotiate: func(t *testing.T, _ *testClient, srv *Server) { waitSessions(t, srv, 1) },
			header:    true,
		},
		{
			name:      "while the client is to authenticate",
			negotiate: func(_ *testing.T, c *testClient, _ *Server) { c.openStream() },
			upstream:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv := startProxy(t, fake.addr(), nil, nil)
			c := dialProxy(t, srv)
			tt.negotiate(t, c, srv)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if tt.header {
				c.nextOf(stream.UnitStreamOpen)
			}
			c.expectStreamError(stream.CondSystemShutdown)
			c.expectStreamClose()
			c.expectConnClosed()
			if tt.upstream {
				up := fake.accept(t)
				up.expect(t, stream.UnitStreamClose, stream.CloseTag)
				up.expectClosed(t)
			}
		})
	}
}

func TestShutdownCompletesWhenClientWriteFailsDuringFinalFlush(t *testing.T) {
	t.Parallel()
	srv, c, up := setup(t, func(c *Config) { c.Timeouts.Write = Duration(time.Second) })
	// The client reads nothing more, through a small window, while the
	// upstream sends more than the sockets between them hold.
	if err := c.conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	up.send(t, "<message><body>"+strings.Repeat("x", 8<<20)+"</body></message>")
	// Once the client writer is stuck on it, further stanzas queue up.
	r := relayOf(t, srv)
	for i := 0; r.client.out.len() == 0; i++ {
		if i == 1000 {
			t.Fatal("the client writer never got stuck")
		}
		up.send(t, fmt.Sprintf("<presence id='p%d'/>", i))
		time.Sleep(10 * time.Millisecond)
	}
	// The end is decided (client writer to flush <system-shutdown/>,
	// upstream writer </stream:stream>) before the client write times out.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; want the session ended once the client write failed", err)
	}
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestIdleClientGetsConnectionTimeoutAndUpstreamStreamIsClosed(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(c *Config) { c.Timeouts.Idle = Duration(300 * time.Millisecond) })
	c.expectStreamError(stream.CondConnectionTimeout)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestActiveClientIsNotTimedOutAsIdle(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, true)
	srv := startProxy(t, fake.addr(), nil, func(c *Config) { c.Timeouts.Idle = Duration(800 * time.Millisecond) })
	c := dialProxy(t, srv)
	c.login()
	// Twice the idle timeout, never silent for more than a fraction of it.
	for i := range 16 {
		time.Sleep(100 * time.Millisecond)
		p := fmt.Sprintf("<presence id='p%d'/>", i)
		c.send(p)
		c.expect(stream.UnitElement, p) // echoed, not a stream error
	}
}

func TestVanishedClientDropsUpstreamWithoutClosingItsStream(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	msg := "<message to='bob@localhost' id='last'><body>last words</body></message>"
	c.send(msg)
	c.conn.Close()
	up.expect(t, stream.UnitElement, msg) // flushed before the drop
	up.expectClosed(t)                    // no </stream:stream>: the session stays resumable
}

func TestClientStreamCloseIsRelayedAndUpstreamCloseAnswersIt(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	c.send(stream.CloseTag)
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.send(t, stream.CloseTag)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expectClosed(t)
}

func TestUnansweredClientCloseIsClosedByTheProxyAfterTheCloseTimeout(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(cfg *Config) { cfg.Timeouts.Close = Duration(200 * time.Millisecond) })
	c.send(stream.CloseTag)
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	// The upstream never answers: the client still gets its close.
	c.expectStreamClose()
	c.expectConnClosed()
	up.waitClosed(t)
}

func TestUpstreamDropGivesClientRemoteConnectionFailed(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	up.drop()
	c.expectStreamError(stream.CondRemoteConnectionFailed)
	c.expectStreamClose()
	c.expectConnClosed()
}

func TestUpstreamStreamErrorReachesClientUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, streamError string
	}{
		{
			name:        "conflict",
			streamError: "<stream:error><conflict xmlns='" + ns.Streams + "'/></stream:error>",
		},
		{
			name: "see-other-host with text",
			streamError: "<stream:error><see-other-host xmlns='" + ns.Streams + "'>[2001:db8::1]:5222</see-other-host>" +
				"<text xmlns='" + ns.Streams + "' xml:lang='en'>moved &amp; gone</text></stream:error>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, c, up := setup(t, nil)
			up.send(t, tt.streamError+stream.CloseTag)
			c.expect(stream.UnitElement, tt.streamError)
			c.expectStreamClose()
			c.expectConnClosed()
			up.waitClosed(t)
		})
	}
}

// ---------------------------------------------------------------------------
// Relaying

func TestStanzasArriveInOrderAndUnchangedUnderBackpressure(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(c *Config) { c.QueueSize = 2 })
	const n = 1000
	fromClient := make([]string, n)
	fromUpstream := make([]string, n)
	for i := range n {
		// Sizes from a few bytes to several read buffers, so stanzas
		// straddle reads and writes get batched.
		fromClient[i] = fmt.Sprintf("<message to='bob@localhost/r' id='c%d' type='chat'><body>%s &amp; &lt;%d&gt;</body></message>",
			i, strings.Repeat("c", i*37%9000), i)
		fromUpstream[i] = fmt.Sprintf(`<message from="bob@localhost/r" id="u%d"><body xml:lang='en'>%s</body><x xmlns='urn:x'><![CDATA[<%d>]]></x></message>`,
			i, strings.Repeat("u", i*53%9000), i)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, s := range fromClient {
			if err := c.write(s); err != nil {
				t.Errorf("client write: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, s := range fromUpstream {
			if err := up.write(s); err != nil {
				t.Errorf("upstream write: %v", err)
				return
			}
		}
	}()

	for i, want := range fromUpstream {
		if u := c.next(); u.Kind != stream.UnitElement || string(u.Raw) != want {
			t.Fatalf("client read #%d: %s %.100q..., want %.100q...", i, kindName(u.Kind), u.Raw, want)
		}
	}
	for i, want := range fromClient {
		ev := up.next(t)
		if ev.err != nil || ev.unit.Kind != stream.UnitElement || string(ev.unit.Raw) != want {
			t.Fatalf("upstream read #%d: %s %.100q... (err %v), want %.100q...", i, kindName(ev.unit.Kind), ev.unit.Raw, ev.err, want)
		}
	}
}

func TestSlowClientIsDisconnectedInsteadOfBuffered(t *testing.T) {
	t.Parallel()
	srv, _, up := setup(t, func(c *Config) {
		c.Timeouts.Write = Duration(200 * time.Millisecond)
		c.QueueSize = 2
	})
	// The client reads nothing more while the upstream floods it.
	big := "<message from='bob@localhost/r'><body>" + strings.Repeat("x", 64<<10) + "</body></message>"
	const limit = 256 << 20
	var err error
	for sent := 0; err == nil; sent += len(big) {
		if sent > limit {
			t.Fatalf("the proxy took %d bytes for a client that reads nothing", sent)
		}
		err = up.write(big)
	}
	if isTimeout(err) {
		t.Fatalf("the proxy stopped reading from the upstream but kept the session: %v", err)
	}
	up.waitClosed(t)
	waitSessions(t, srv, 0)
}

func TestAClassicSessionHoldsOneUpstreamConnection(t *testing.T) {
	t.Parallel()
	srv, _, _ := setup(t, nil) // logged in and bound
	r := relayOf(t, srv)
	if r.s.upCh != nil {
		t.Fatal("the stream restart after SASL dialed the upstream a second time")
	}
}
