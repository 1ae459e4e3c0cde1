package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

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
	srv := startProxy(t, fake.addr(), nil, func(c *Config) { c.Timeouts.Handshake = 300 * time.Millisecond })
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
// certificate for localhost (demo.SelfSigned, the one certificate maker),
// and a pool that trusts it.
func testCertificate(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	c := newCert(t)
	return c.ServerConfig(), c.Pool
}

// upstreamHeaderOf accepts the proxy's next upstream connection on ln and
// returns the stream header it sends, or fails the test.
func upstreamHeaderOf(t *testing.T, ln net.Listener) stream.Header {
	t.Helper()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitFor))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("the proxy never dialed the upstream: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	u, err := stream.NewFramer(conn, fakeLimits).Next()
	if err != nil || u.Kind != stream.UnitStreamOpen {
		t.Fatalf("the upstream got %s, %v; want a stream header", u.Raw, err)
	}
	h, err := stream.ParseHeader(u.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startDirectTLSOnly runs a proxy with only a direct TLS listener, serving
// domains, in front of ln, an upstream that only accepts.
func startDirectTLSOnly(t *testing.T, domains ...string) (*Server, net.Listener, *x509.CertPool) {
	t.Helper()
	ln := listenLoopback(t)
	serverTLS, pool := testCertificate(t)
	srv := startProxy(t, ln.Addr().String(), serverTLS, func(c *Config) {
		c.Listen, c.DirectTLSListen = "", "127.0.0.1:0"
		c.Domains = domains
	})
	return srv, ln, pool
}

// A proxy serving one domain dials the upstream as soon as a direct TLS
// connection's first bytes arrive (the PROXY header check reads them): the
// dial runs while the handshake crosses the network. The client here sends
// its ClientHello and never reads the answer, so the handshake cannot end.
func TestADirectTLSConnectionDialsUpstreamDuringItsHandshake(t *testing.T) {
	t.Parallel()
	srv, ln, pool := startDirectTLSOnly(t, "localhost")
	conn, err := net.Dial("tcp", srv.DirectTLSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deaf := &deafConn{Conn: conn, closed: make(chan struct{})}
	defer close(deaf.closed)
	go func() {
		_ = tls.Client(deaf, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}).Handshake()
	}()
	if h := upstreamHeaderOf(t, ln); h.To != "localhost" {
		t.Errorf("the early dial opened a stream to %q, want localhost", h.To)
	}
}

// deafConn writes but never reads until closed is closed.
type deafConn struct {
	net.Conn
	closed chan struct{}
}

func (c *deafConn) Read([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

// With several domains the proxy cannot know which one a direct TLS client
// wants before its stream header, so it dials for the domain the header
// names.
func TestADirectTLSConnectionToOneOfSeveralDomainsDialsForItsHeader(t *testing.T) {
	t.Parallel()
	srv, ln, pool := startDirectTLSOnly(t, "localhost", "example.org")
	conn, err := tls.Dial("tcp", srv.DirectTLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(stream.AppendHeader(nil, "example.org", "", "", "en")); err != nil {
		t.Fatal(err)
	}
	if h := upstreamHeaderOf(t, ln); h.To != "example.org" {
		t.Errorf("the dial opened a stream to %q, want example.org, the header's", h.To)
	}
}
