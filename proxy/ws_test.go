package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/xmpp2proxy/xmpp2proxy/internal/wsconn"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// wsTestClient drives the proxy's WebSocket listener message by message.
type wsTestClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func wsURL(srv *Server) string {
	return "ws://" + srv.WebSocketAddr().String() + "/xmpp-websocket"
}

func startWSProxy(t *testing.T, upstream string, tlsConfig *tls.Config, tweak func(*Config)) *Server {
	t.Helper()
	return startProxy(t, upstream, tlsConfig, func(c *Config) {
		c.WebSocketListen = "127.0.0.1:0"
		if tweak != nil {
			tweak(c)
		}
	})
}

func dialWS(t *testing.T, srv *Server) *wsTestClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(srv), &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &wsTestClient{t: t, ws: ws}
}

func (c *wsTestClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("client write: %v", err)
	}
}

func (c *wsTestClient) next() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("client read: %v", err)
	}
	if typ != websocket.MessageText {
		c.t.Fatalf("client read a %v message, want text", typ)
	}
	checkStandalone(c.t, string(b))
	return string(b)
}

// expectPrefix reads the next message and checks how it starts.
func (c *wsTestClient) expectPrefix(prefix string) string {
	c.t.Helper()
	m := c.next()
	if !strings.HasPrefix(m, prefix) {
		c.t.Fatalf("client read %.300q, want it to start with %q", m, prefix)
	}
	return m
}

// expectClosed checks that the proxy ends the WebSocket normally.
func (c *wsTestClient) expectClosed() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		c.t.Fatalf("client read %q, %v; want the WebSocket closed normally", b, err)
	}
}

const wsOpen = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"

// login opens the stream and logs in with classic SASL and bind, as a
// classic WebSocket client (Converse.js, Strophe) does.
func (c *wsTestClient) login() {
	c.t.Helper()
	c.send(wsOpen)
	c.expectPrefix("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'")
	f := c.expectPrefix("<stream:features xmlns:stream=")
	if strings.Contains(f, "starttls") {
		c.t.Fatalf("STARTTLS offered over WebSocket: %s", f)
	}
	c.send("<auth xmlns='" + ns.SASL + "' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00pw")) + "</auth>")
	c.expectPrefix("<success xmlns='" + ns.SASL + "'")
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features xmlns:stream=")
	c.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='" + ns.Bind + "'><resource>test</resource></bind></iq>")
	c.expectPrefix("<iq xmlns='jabber:client' type='result' id='bind1'>")
}

func TestWebSocketHandshakeRules(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, func(c *Config) {
		c.WebSocketOrigins = []string{"*.example.org", "localhost:*"}
	})
	for _, tc := range []struct {
		name    string
		path    string
		protos  []string
		origin  string
		wantErr int // HTTP status of the refusal; 0: accepted
	}{
		{name: "a client without the xmpp subprotocol is refused (RFC 7395 3.1)", protos: nil, wantErr: http.StatusBadRequest},
		{name: "a client offering other subprotocols only is refused", protos: []string{"chat", "mqtt"}, wantErr: http.StatusBadRequest},
		{name: "a page from another host is refused", protos: []string{"xmpp"}, origin: "https://evil.test", wantErr: http.StatusForbidden},
		{name: "a page whose origin matches websocket_origins is accepted", protos: []string{"xmpp"}, origin: "https://chat.example.org"},
		{name: "a page on another port of localhost is accepted with the pattern localhost:*", protos: []string{"xmpp"}, origin: "http://localhost:8080"},
		{name: "a page on another port of the same address is refused without a pattern for it", protos: []string{"xmpp"}, origin: "http://127.0.0.1:8080", wantErr: http.StatusForbidden},
		{name: "a page from the host it connects to is accepted", protos: []string{"xmpp"}, origin: "http://" + srv.WebSocketAddr().String()},
		{name: "a client that sends no Origin (not a browser) is accepted", protos: []string{"chat", "xmpp"}},
		{name: "another path is not served", path: "/ws", protos: []string{"xmpp"}, wantErr: http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			url := wsURL(srv)
			if tc.path != "" {
				url = "ws://" + srv.WebSocketAddr().String() + tc.path
			}
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: tc.protos, HTTPHeader: h})
			if tc.wantErr != 0 {
				if err == nil {
					ws.CloseNow()
					t.Fatal("handshake accepted")
				}
				if resp == nil || resp.StatusCode != tc.wantErr {
					t.Fatalf("refused with %v (%v), want HTTP %d", resp, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake refused: %v", err)
			}
			defer ws.CloseNow()
			if ws.Subprotocol() != "xmpp" {
				t.Fatalf("subprotocol %q, want xmpp", ws.Subprotocol())
			}
		})
	}
}

func TestWebSocketClassicSessionRelaysAndClosesWithClose(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	cert, _ := testCertificate(t)
	srv := startWSProxy(t, fake.addr(), cert, func(c *Config) { c.AllowPlaintext = false })
	c := dialWS(t, srv)
	c.login() // loopback plain ws counts as TLS: no STARTTLS, login allowed
	up := fake.accept(t)
	up.send(t, "<message from='bob@localhost/x' to='alice@localhost/test'><body>hi</body></message>")
	if m := c.next(); m != "<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost/test'><body>hi</body></message>" {
		t.Fatalf("client read %q", m)
	}
	c.send("<message xmlns='jabber:client' to='bob@localhost'><body>yo</body></message>")
	up.expect(t, stream.UnitElement, "<message xmlns='jabber:client' to='bob@localhost'><body>yo</body></message>")
	c.send(wsCloseMsg)
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.send(t, stream.CloseTag)
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
	c.expectClosed()
}

func TestWebSocketMessageOverTheStanzaLimitGetsPolicyViolation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		login bool
		size  int
	}{
		{name: "before authentication, over max_preauth_bytes", size: 5000},
		{name: "after authentication, over max_stanza_bytes", login: true, size: 9000},
		{name: "after authentication, a message of megabytes is refused the same way", login: true, size: 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv := startWSProxy(t, fake.addr(), nil, func(c *Config) {
				c.Limits.MaxStanzaBytes, c.Limits.MaxPreauthBytes = 8192, 4096
			})
			c := dialWS(t, srv)
			if tc.login {
				c.login()
			} else {
				c.send(wsOpen)
				c.expectPrefix("<open ")
				c.expectPrefix("<stream:features")
			}
			pad := strings.Repeat("x", tc.size)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			// The proxy may stop reading before the whole message is in.
			_ = c.ws.Write(ctx, websocket.MessageText, []byte("<message xmlns='jabber:client'><body>"+pad+"</body></message>"))
			m := c.expectPrefix("<stream:error xmlns:stream=")
			if !strings.Contains(m, "<"+stream.CondPolicyViolation+" ") {
				t.Fatalf("stream error %q, want %s", m, stream.CondPolicyViolation)
			}
			if m := c.next(); m != wsCloseMsg {
				t.Fatalf("client read %q, want close", m)
			}
		})
	}
}

func TestWebSocketShutdownSendsSystemShutdownThenClose(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, nil)
	c := dialWS(t, srv)
	c.login()
	fake.accept(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	m := c.expectPrefix("<stream:error xmlns:stream=")
	if !strings.Contains(m, stream.CondSystemShutdown) {
		t.Fatalf("stream error %q, want %s", m, stream.CondSystemShutdown)
	}
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketSessionsNeverParkOnTheSocket(t *testing.T) {
	// Parking reads the kernel socket under the leg's buffers; under a
	// WebSocket the library owns the socket and its frames.
	if p := stream.NewParking(new(wsconn.Conn), nil); p.Enabled() {
		t.Fatal("a WebSocket leg would park on a raw socket")
	}
}

func TestWebSocketIdleTimeoutStillWritesItsStreamError(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, func(c *Config) {
		// The idle timeout asks a silent client with <r/> rather
		// than end it; here the classic session has no SM, so the
		// proxy gives <connection-timeout/>: both need the connection
		// to live on after the read deadline.
		c.Timeouts.Idle = 200 * time.Millisecond
	})
	c := dialWS(t, srv)
	c.login()
	fake.accept(t)
	m := c.expectPrefix("<stream:error xmlns:stream=")
	if !strings.Contains(m, stream.CondConnectionTimeout) {
		t.Fatalf("stream error %q, want %s", m, stream.CondConnectionTimeout)
	}
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
}

func TestWebSocketBinaryMessageIsRefused(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, nil)
	c := dialWS(t, srv)
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, []byte("<r xmlns='urn:xmpp:sm:3'/>")); err != nil {
		t.Fatal(err)
	}
	m := c.expectPrefix("<stream:error xmlns:stream=")
	if !strings.Contains(m, stream.CondNotWellFormed) {
		t.Fatalf("stream error %q, want %s", m, stream.CondNotWellFormed)
	}
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
}

func TestWebSocketStartTLSIsRefused(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	cert, _ := testCertificate(t)
	srv := startWSProxy(t, fake.addr(), cert, nil)
	c := dialWS(t, srv)
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features")
	c.send("<starttls xmlns='" + ns.TLS + "'/>")
	if m := c.next(); m != "<failure xmlns='"+ns.TLS+"'/>" {
		t.Fatalf("client read %q, want the STARTTLS failure", m)
	}
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
}

func TestWebSocketTLSServesWSSWithTheClientCertificate(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	cert, roots := testCertificate(t)
	srv := startWSProxy(t, fake.addr(), cert, func(c *Config) {
		c.WebSocketTLS, c.AllowPlaintext = true, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	url := "wss://" + srv.WebSocketAddr().String() + "/xmpp-websocket"
	if _, _, err := websocket.Dial(ctx, "ws"+url[3:], &websocket.DialOptions{Subprotocols: []string{"xmpp"}}); err == nil {
		t.Fatal("plain ws accepted on the wss listener")
	}
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &wsTestClient{t: t, ws: ws}
	c.login() // SASL without allow_plaintext, and no STARTTLS
}

func TestWebSocketShutdownDuringNegotiationSendsSystemShutdown(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, nil)
	c := dialWS(t, srv)
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The session waits in a read: the shutdown moves its deadline, and
	// the connection must still carry the stream error.
	m := c.expectPrefix("<stream:error xmlns:stream=")
	if !strings.Contains(m, stream.CondSystemShutdown) {
		t.Fatalf("stream error %q, want %s", m, stream.CondSystemShutdown)
	}
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketCloseBeforeLoginIsAnswered(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, nil)
	c := dialWS(t, srv)
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features")
	c.send(wsCloseMsg)
	if m := c.next(); m != wsCloseMsg {
		t.Fatalf("client read %q, want close", m)
	}
	c.expectClosed()
}
