package proxy

import (
	"bufio"
	"crypto/tls"
	"log/slog"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The client a balancer forwards in these tests, as its PROXY header
// names it; the test connections really come from 127.0.0.1.
const (
	balancedClient = "203.0.113.7:51234"
	v1Header       = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 5222\r\n"
)

func v2Header(t *testing.T) string {
	t.Helper()
	h := &proxyproto.Header{
		Version:           2,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 51234},
		DestinationAddr:   &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5222},
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each listener either requires a PROXY header or refuses one; a refused
// connection is closed with nothing sent and logged with the reason.
func TestAPROXYHeaderIsRequiredWhereConfiguredAndRefusedElsewhere(t *testing.T) {
	t.Parallel()
	starttls := []string{ListenerStartTLS}
	tests := []struct {
		name   string
		listen []string // proxy_protocol
		from   []string // proxy_protocol_from
		header func(t *testing.T) string
		// refused is the reason logged, or empty when the stream goes on
		// with the header's client address.
		refused string
	}{
		{name: "a v1 header on a listener configured for it is accepted",
			listen: starttls, header: func(*testing.T) string { return v1Header }},
		{name: "a v2 header on a listener configured for it is accepted",
			listen: starttls, header: v2Header},
		{name: "a header from a trusted network is accepted",
			listen: starttls, from: []string{"192.0.2.9", "127.0.0.0/8"}, header: v2Header},
		{name: "a connection without a header on a configured listener is refused",
			listen: starttls, header: func(*testing.T) string { return "" }, refused: "no valid PROXY header"},
		{name: "a malformed header on a configured listener is refused",
			listen: starttls, header: func(*testing.T) string { return "PROXY TCP4 nonsense\r\n" }, refused: "no valid PROXY header"},
		{name: "a forged v1 header on a listener not configured for it is refused",
			header: func(*testing.T) string { return v1Header }, refused: "a PROXY header on a listener not configured for it"},
		{name: "a forged v2 header on a listener not configured for it is refused",
			header: v2Header, refused: "a PROXY header on a listener not configured for it"},
		{name: "a malformed forged header on a listener not configured for it is refused",
			header: func(*testing.T) string { return "PROXY TCP4 nonsense\r\n" }, refused: "a PROXY header on a listener not configured for it"},
		{name: "a header from a source not in proxy_protocol_from is refused",
			listen: starttls, from: []string{"192.0.2.0/24"}, header: v2Header, refused: "a source not in proxy_protocol_from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv, logs := startLoggedProxy(t, fake.addr(), LogFormatText, func(c *Config) {
				c.ProxyProtocol, c.ProxyProtocolFrom = tt.listen, tt.from
			})
			c := dialProxy(t, srv)
			if err := c.write(tt.header(t) + testHeader); err != nil {
				t.Fatal(err)
			}
			if tt.refused != "" {
				c.expectConnClosed()
				logs.wait(t, `msg="connection refused" conn=`)
				logs.wait(t, `reason="`+tt.refused+`"`)
				return
			}
			c.nextOf(stream.UnitStreamOpen)
			c.nextOf(stream.UnitElement) // features: the session goes on
			logs.wait(t, "remote="+balancedClient+" via=127.0.0.1:")
			if !regexp.MustCompile(`msg="session started" conn=\d+ remote=` + regexp.QuoteMeta(balancedClient) + ` `).MatchString(logs.String()) {
				t.Errorf("the session start line does not name the balancer's client:\n%s", logs.String())
			}
		})
	}
}

// The header may come alone, the client's stream later: nothing read past
// it is needed.
func TestAPROXYHeaderSentAloneIsFollowedByTheStream(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv, logs := startLoggedProxy(t, fake.addr(), LogFormatText, func(c *Config) { c.ProxyProtocol = []string{ListenerStartTLS} })
	c := dialProxy(t, srv)
	c.send(v1Header)
	logs.wait(t, `msg="session started"`) // the header is read
	c.openStream()
}

// A connection that sends no header is let go after timeouts.proxy_header,
// and while it waits the listener accepts and serves others.
func TestASilentConnectionHoldsOnlyItself(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv, logs := startLoggedProxy(t, fake.addr(), LogFormatText, func(c *Config) {
		c.ProxyProtocol = []string{ListenerStartTLS}
		c.Timeouts.ProxyHeader = 500 * time.Millisecond
	})
	silent := dialProxy(t, srv)
	other := dialProxy(t, srv)
	other.send(v2Header(t))
	other.openStream()
	silent.expectConnClosed()
	logs.wait(t, `reason="no PROXY header in time"`)
}

// Authentication lines, which fail2ban reads, name the client from the
// PROXY header, not the balancer.
func TestAuthenticationLinesNameTheBalancersClient(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv, logs := startLoggedProxy(t, fake.addr(), LogFormatText, func(c *Config) { c.ProxyProtocol = []string{ListenerStartTLS} })
	c := dialProxy(t, srv)
	c.send(v1Header)
	c.openStream()
	c.send(authPlain("alice", "wrong"))
	c.expect(stream.UnitElement, saslNotAuthzd)
	logs.wait(t, `msg="authentication failed"`)
	line := regexp.MustCompile(`msg="authentication failed" conn=\d+ remote=` + regexp.QuoteMeta(balancedClient) + ` via=127\.0\.0\.1:\d+ kind=classic`)
	if !line.MatchString(logs.String()) {
		t.Errorf("the authentication line does not name the balancer's client:\n%s", logs.String())
	}
}

// upstream_proxy_protocol begins the upstream connection with a header of
// that version naming the client: the balancer's client when a PROXY
// header came in, else the socket's peer.
func TestTheUpstreamGetsAPROXYHeaderNamingTheClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		version  string
		inbound  bool
		wantVers byte
	}{
		{name: "v1 names a direct client", version: ProxyProtocolV1, wantVers: 1},
		{name: "v2 names a direct client", version: ProxyProtocolV2, wantVers: 2},
		{name: "v1 names the balancer's client", version: ProxyProtocolV1, inbound: true, wantVers: 1},
		{name: "v2 names the balancer's client", version: ProxyProtocolV2, inbound: true, wantVers: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srv := startProxy(t, ln.Addr().String(), nil, func(c *Config) {
				c.UpstreamProxyProtocol = tt.version
				if tt.inbound {
					c.ProxyProtocol = []string{ListenerStartTLS}
				}
			})
			c := dialProxy(t, srv)
			first := ""
			if tt.inbound {
				first = v1Header
			}
			c.send(first + testHeader)
			up, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			_ = up.SetReadDeadline(time.Now().Add(waitFor))
			br := bufio.NewReader(up)
			h, err := proxyproto.Read(br)
			if err != nil {
				t.Fatalf("the upstream read no PROXY header: %v", err)
			}
			want := c.conn.LocalAddr().String()
			if tt.inbound {
				want = balancedClient
			}
			if h.Version != tt.wantVers || h.SourceAddr == nil || h.SourceAddr.String() != want {
				t.Errorf("header v%d from %v, want v%d from %s", h.Version, h.SourceAddr, tt.wantVers, want)
			}
			// Then the stream, as without the header.
			if u, err := stream.NewFramer(br, fakeLimits).Next(); err != nil || u.Kind != stream.UnitStreamOpen {
				t.Errorf("after the header the upstream read %q, %v; want a stream header", u.Raw, err)
			}
		})
	}
}

// socketOf returns the accepted connection under a replayConn.
func socketOf(c net.Conn) net.Conn {
	if r, ok := c.(*replayConn); ok {
		return r.Conn
	}
	return c
}

// The bytes read past the header go first, and then the client leg reads
// its socket directly again: a relaying session parks while idle, behind
// a balancer or not.
func TestAClientLegParksAfterThePROXYStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		listen []string
		header string
	}{
		{name: "after a header on a listener that requires one", listen: []string{ListenerStartTLS}, header: v1Header},
		{name: "after checking for none on a listener that refuses one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv := startProxy(t, fake.addr(), nil, func(c *Config) { c.ProxyProtocol = tt.listen })
			c := dialProxy(t, srv)
			if tt.header != "" {
				c.send(tt.header)
			}
			c.login()
			if r := relayOf(t, srv); !r.client.park.Enabled() {
				t.Error("the client leg cannot park: its socket is hidden")
			}
		})
	}
}

// Each listener has its own policy: with only direct_tls behind the
// balancer, a header is required there and refused on starttls.
func TestEachListenerHasItsOwnPROXYPolicy(t *testing.T) {
	t.Parallel()
	tlsConfig, _ := testCertificate(t)
	fake := startFakeUpstream(t, false)
	logs := &logBuffer{changed: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the proxy's log:\n%s", logs.String())
		}
	})
	srv := newServerForTest(t, testConfig(fake.addr(), func(c *Config) {
		c.DirectTLSListen = "127.0.0.1:0"
		c.ProxyProtocol = []string{ListenerDirectTLS}
	}), tlsConfig, slog.New(slog.NewTextHandler(logs, nil)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}

	t.Run("a header on starttls is refused", func(t *testing.T) {
		c := dialProxy(t, srv)
		c.send(v1Header + testHeader)
		c.expectConnClosed()
		logs.wait(t, `listener=starttls reason="a PROXY header on a listener not configured for it"`)
	})
	t.Run("direct TLS after a header names the balancer's client", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.DirectTLSAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(v2Header(t))); err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // any certificate will do here
		c := &testClient{t: t, conn: tc, fr: stream.NewFramer(bufio.NewReader(tc), clientLimits)}
		c.openStream()
		logs.wait(t, "remote="+balancedClient+" via=127.0.0.1:")
		started := regexp.MustCompile(`msg="session started" conn=\d+ remote=` + regexp.QuoteMeta(balancedClient) + ` via=127\.0\.0\.1:\d+ listener=direct_tls`)
		if !started.MatchString(logs.String()) {
			t.Errorf("no direct_tls session start line naming the balancer's client:\n%s", logs.String())
		}
	})
}
