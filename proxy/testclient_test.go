package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

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
