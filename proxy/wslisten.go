package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/coder/websocket"

	"github.com/xmpp2proxy/xmpp2proxy/internal/wsconn"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// wsSubprotocol is the WebSocket subprotocol RFC 7395 registers.
const wsSubprotocol = "xmpp"

// listenWebSocket serves RFC 7395 on websocket_listen, at websocket_path.
// The sessions it starts are the TCP listeners' sessions, over a
// wsconn.Conn that translates the framing (wsframing.go).
func (s *Server) listenWebSocket() error {
	ln, err := net.Listen("tcp", s.cfg.WebSocketListen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.WebSocketListen, err)
	}
	secure := s.cfg.WebSocketTLS || isLoopbackAddr(ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc(s.cfg.WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
		s.serveWebSocket(w, r, secure)
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.Timeouts.Handshake,
		// A request that is not upgraded has no reason to linger.
		IdleTimeout: s.cfg.Timeouts.Handshake,
		// Before authentication a client gets little: a browser's
		// cookies fit, a flood of headers does not.
		MaxHeaderBytes: 64 << 10,
		// Failed TLS handshakes and bad requests from scanners are noise.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// WebSocket needs HTTP/1.1's Upgrade (the library hijacks the
		// connection); a non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnContext:  withWSSocket,
	}
	if s.cfg.WebSocketTLS {
		tc := s.tls.Clone()
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		ln.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.WebSocketListen, net.ErrClosed)
	}
	s.wsLn, s.wsHTTP = ln, hs
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = hs.Serve(ln) // returns once the listener is closed
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "websocket", s.cfg.WebSocketPath, "tls", s.cfg.WebSocketTLS, "upstream", s.cfg.Upstream)
	return nil
}

// WebSocketAddr returns the WebSocket listener's address, or nil.
func (s *Server) WebSocketAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wsLn == nil {
		return nil
	}
	return s.wsLn.Addr()
}

// closeWebSocket closes the connections the HTTP server still holds that
// never became WebSocket sessions (keep-alive requests, slow headers);
// the sessions end through Shutdown like any other.
func (s *Server) closeWebSocket() {
	if s.wsHTTP != nil {
		_ = s.wsHTTP.Close()
	}
}

// wsHandlers maps the socket of each WebSocket request being handled to
// its conn once upgraded (nil before).
type wsHandlers map[net.Conn]*wsconn.Conn

// wsSocketKey is the request context's key for the accepted socket.
type wsSocketKey struct{}

// withWSSocket keeps the accepted TCP socket (under TLS for wss) in the
// context of the requests it carries, for dropWebSocket.
func withWSSocket(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	return context.WithValue(ctx, wsSocketKey{}, c)
}

// serveWebSocket upgrades one request and runs a session on it. It
// returns after the WebSocket close handshake, once the session (or the
// one it resumed) is done with the connection and the connection's pump
// has ended. Shutdown's WaitGroup counts it from the start.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, secure bool) {
	sock, _ := r.Context().Value(wsSocketKey{}).(net.Conn)
	if !s.enterWebSocket(sock) {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.leaveWebSocket(sock)
	c := s.acceptWebSocket(w, r)
	if c == nil {
		return // the request has been answered
	}
	s.upgradedWebSocket(sock, c)
	if s.wsAccepted != nil {
		s.wsAccepted()
	}
	sess := s.newWebSocketSession(c, secure)
	if sess == nil {
		// Shutdown began during the upgrade. The conn must be closed
		// all the same: its pump, blocked handing over the read error,
		// would outlive the server.
		c.Refuse(websocket.StatusGoingAway, "shutting down")
		return
	}
	go sess.run()
	c.CloseHandshake()
}

// acceptWebSocket upgrades the request to an RFC 7395 WebSocket, or
// answers it with the refusal and returns nil.
func (s *Server) acceptWebSocket(w http.ResponseWriter, r *http.Request) *wsconn.Conn {
	if !offersSubprotocol(r.Header, wsSubprotocol) {
		// RFC 7395 3.1: without the subprotocol this is no XMPP stream.
		http.Error(w, "the WebSocket subprotocol xmpp (RFC 7395) is required", http.StatusBadRequest)
		return nil
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{wsSubprotocol},
		OriginPatterns: s.cfg.WebSocketOrigins,
		// No permessage-deflate: compressing attacker-chosen stanzas with
		// credentials and tokens in one context leaks them (the reason
		// XEP-0138 stream compression is deprecated).
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", err)
		return nil // Accept has answered the request
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	l := s.wsLimits()
	// Not a syscall.Conn: an idle session's reader never parks on the
	// socket (parking reads the kernel socket under the leg's buffers;
	// here the library owns the socket and its frames).
	return wsconn.New(ws, local, remoteAddr(r.RemoteAddr), newWSFraming(l), wsconn.Options{
		MaxMessage: int64(l.MaxBytes), TooLarge: stream.ErrTooLarge, Binary: errWSBinary,
	})
}

// enterWebSocket counts a WebSocket request in Shutdown's WaitGroup and
// notes its socket, or reports false when shutting down. Counting starts
// before the upgrade: a handler that upgrades while Shutdown begins still
// has a pump to end.
func (s *Server) enterWebSocket(sock net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if sock != nil {
		if s.wsConns == nil {
			s.wsConns = wsHandlers{}
		}
		s.wsConns[sock] = nil
	}
	s.wg.Add(1)
	return true
}

// upgradedWebSocket notes the conn over sock, for dropWebSocket.
func (s *Server) upgradedWebSocket(sock net.Conn, c *wsconn.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.wsConns[sock]; ok {
		s.wsConns[sock] = c
	}
}

// leaveWebSocket ends what enterWebSocket began.
func (s *Server) leaveWebSocket(sock net.Conn) {
	s.mu.Lock()
	delete(s.wsConns, sock)
	s.mu.Unlock()
	s.wg.Done()
}

// dropWebSocket closes the WebSocket requests still being handled, once
// Shutdown's deadline has passed: their sockets, since a close handshake
// with a peer that does not answer would hold its handler for the
// library's 10 s, past Shutdown's return; and their conns, which a
// handler waits for before its close handshake.
func (s *Server) dropWebSocket() {
	s.mu.Lock()
	socks := make(wsHandlers, len(s.wsConns))
	maps.Copy(socks, s.wsConns)
	s.mu.Unlock()
	for sock, c := range socks {
		_ = sock.Close()
		if c != nil {
			_ = c.Close()
		}
	}
}

// wsLimits caps one message: the largest element the session accepts at
// any point; the session's framer then applies the limit of the moment.
func (s *Server) wsLimits() stream.Limits {
	return stream.Limits{MaxBytes: max(s.cfg.Limits.MaxStanzaBytes, s.cfg.Limits.MaxPreauthBytes), MaxDepth: s.cfg.Limits.MaxDepth}
}

// newWebSocketSession registers a session over c, or returns nil when
// shutting down. The WaitGroup counts the session; the handler, and so
// the close handshake that follows, it counts already.
func (s *Server) newWebSocketSession(c net.Conn, secure bool) *session {
	return s.register(func() *session {
		sess := newSession(s, c, false)
		sess.ws, sess.secure = true, secure
		return sess
	})
}

// offersSubprotocol reports whether the client's handshake lists proto.
func offersSubprotocol(h http.Header, proto string) bool {
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(p) == proto {
				return true
			}
		}
	}
	return false
}

// remoteAddr turns an http.Request's RemoteAddr back into an address.
func remoteAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return wsAddr(s)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// wsAddr is an address net/http gave as a string it could not parse.
type wsAddr string

// Network names the transport.
func (a wsAddr) Network() string { return "tcp" }

func (a wsAddr) String() string { return string(a) }

// isLoopbackAddr reports whether a listener's address is a loopback one.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
