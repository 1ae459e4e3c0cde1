package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

var sessionIDs atomic.Uint64

// session is one client connection and its upstream leg. Until the client
// has authenticated, one goroutine drives both legs in lock step; after
// that, relay takes over with a reader and a writer per leg.
type session struct {
	srv       *Server
	id        uint64 // numbers the connection in logs and names its relay
	log       *slog.Logger
	rawConn   net.Conn           // the accepted TCP connection, closed on abort
	conn      net.Conn           // rawConn, or the TLS connection over it
	rec       *stream.RecordConn // under the client TLS connection, if any
	fr        *stream.Framer
	directTLS bool
	secure    bool
	// ws: the client came over the WebSocket listener (RFC 7395), where
	// STARTTLS has no place; secure says whether it counts as TLS.
	ws   bool
	peer peerAddrs // the client's address, from a PROXY header if any

	domain string
	lang   string
	// handshakeDeadline bounds negotiation, authentication and setup.
	handshakeDeadline time.Time
	headerSent        bool // the proxy's header for the current client stream
	// configVersion is the XEP-0509 token advertised on the current
	// client stream, or "" when it offered no SASL2.
	configVersion string

	upCh chan upstreamResult
	up   *upstreamLeg
	v2   *session2 // set once a SASL2 + Bind2 session is online

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	relay *relay // set once relaying
	// handedOff: the client connection now belongs to a resumed session.
	handedOff    bool
	stopWake     func() bool
	finishOnce   sync.Once
	fullJIDBound string // the full JID bound through this session, if any

	// For the session's log lines (sessionlog.go). kind and account are
	// set during the handshake, handshakeErr when it fails; endErr by
	// whoever ends the session with a stream error.
	start        time.Time
	kind         string
	account      string
	handshakeErr error
	endErr       atomic.Pointer[stream.Error]
	stats        sessionStats
	// openKind is the kind the metrics count this session open under:
	// "" (none) until it relays.
	openKind string
}

// fullJID returns the full JID this session bound, or "".
func (s *session) fullJID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fullJIDBound
}

// setFullJID records the JID this session bound, for the registry.
func (s *session) setFullJID(jid string) {
	s.mu.Lock()
	s.fullJIDBound = jid
	s.mu.Unlock()
	s.srv.registry.bind(jid)
}

type upstreamResult struct {
	up  *upstreamLeg
	err error
}

// Errors that end a session quietly or with a specific client-facing error.
var (
	errClientClosed  = errors.New("client closed its stream")
	errUpstreamError = errors.New("upstream sent a stream error")
	errShutdown      = errors.New("server shutting down")
)

func newSession(srv *Server, conn net.Conn, directTLS bool) *session {
	ctx, cancel := context.WithCancelCause(context.Background())
	id := sessionIDs.Add(1)
	s := &session{
		srv:       srv,
		id:        id,
		log:       srv.log.With("conn", id, "remote", conn.RemoteAddr().String()),
		rawConn:   conn,
		conn:      conn,
		fr:        stream.NewFramer(conn, srv.preauthLimits()),
		directTLS: directTLS,
		ctx:       ctx,
		cancel:    cancel,
		start:     time.Now(),
	}
	s.fr.CountInto(&s.stats.fromClient)
	return s
}

func (s *Server) preauthLimits() stream.Limits {
	return stream.Limits{MaxBytes: s.cfg.Limits.MaxPreauthBytes, MaxDepth: s.cfg.Limits.MaxDepth}
}

// run negotiates the session, then hands it to the relay's goroutines and
// returns: its stack, grown by the TLS and SASL handshakes, is not kept
// for the life of an idle session. The last relay goroutine calls finish.
func (s *session) run() {
	s.stopWake = context.AfterFunc(s.ctx, s.wake)
	if err := s.admit(); err != nil { // the PROXY header step; logs the start line
		s.handshakeErr = err
		if !errors.Is(err, errProxyRefused) {
			s.handshakeFailed(err)
		}
		s.finish()
		return
	}
	if err := s.handshake(); err != nil {
		s.handshakeErr = err
		if !errors.Is(err, errHandedOff) {
			s.handshakeFailed(err)
		}
		s.finish()
		return
	}
	if !s.startRelay() {
		s.finish()
	}
}

// finish releases everything the session holds, once it is over. A resume
// racing the end may start goroutines that end it again: only the first
// call counts.
func (s *session) finish() {
	s.finishOnce.Do(func() {
		s.mu.Lock()
		jid := s.fullJIDBound
		s.mu.Unlock()
		if jid != "" {
			s.srv.registry.unbind(jid)
		}
		if r := s.relayOrNil(); r != nil {
			r.hooks.ended(r)
		}
		s.drainUpstreamDial()
		s.closeConns()
		s.stopWake()
		// Log before sessionDone: once it runs, Shutdown may return and
		// whatever the logger writes to may be gone.
		s.logEnd()
		s.srv.sessionDone(s)
	})
}

// closeConns closes both legs' sockets so every blocked read or write
// returns. It runs from the context's AfterFunc and from run's cleanup.
func (s *session) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.handedOff {
		s.rawConn.Close()
	}
	if s.up != nil {
		s.up.conn.Close()
	}
}

// closeClient closes only the client connection, when it detaches.
func (s *session) closeClient() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rawConn.Close()
}

// wake unblocks the session goroutine once the context ends. A shutdown
// during negotiation only interrupts pending reads, so that handshakeFailed
// can still tell the client why; anything else closes both sockets.
func (s *session) wake() {
	s.mu.Lock()
	negotiating := s.relay == nil
	s.mu.Unlock()
	if !negotiating || !errors.Is(context.Cause(s.ctx), errShutdown) {
		s.closeConns()
		return
	}
	past := time.Unix(1, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rawConn.SetReadDeadline(past)
	if s.up != nil {
		_ = s.up.conn.SetReadDeadline(past)
	}
}

// drainUpstreamDial collects an upstream dial the handshake never waited
// for, so its socket is closed too. Only the session goroutine calls it.
func (s *session) drainUpstreamDial() {
	if s.upCh == nil {
		return
	}
	s.cancel(errClientClosed) // the dial watches s.ctx
	if r := <-s.upCh; r.up != nil {
		r.up.conn.Close()
	}
	s.upCh = nil
}

// shutdown ends the session gracefully: <system-shutdown/> to the client
// and a closed stream upstream.
// A 2.0 client first has what it sent acked upstream, within ctx (see
// relay.shutdownDrained).
func (s *session) shutdown(ctx context.Context) {
	s.mu.Lock()
	r := s.relay
	s.mu.Unlock()
	if r == nil {
		s.cancel(errShutdown)
		return
	}
	r.shutdownDrained(ctx)
}

// abort drops both legs at once, also after a shutdown that only woke
// the handshake.
func (s *session) abort(cause error) {
	s.cancel(cause)
	s.closeConns()
}

func (s *session) writeClientHeader(id string, rest []byte) error {
	b := stream.AppendHeader(nil, "", s.domain, id, "en")
	s.headerSent = true
	return s.writeClient(append(b, rest...))
}

func (s *session) writeClient(b []byte) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.Timeouts.Write))
	n, err := s.conn.Write(b)
	s.stats.toClient.Add(int64(n))
	return err
}

// handshakeFailed tells the client why, when there is something to say.
func (s *session) handshakeFailed(err error) {
	se := stream.AsError(err)
	var ne net.Error
	switch {
	case s.ctx.Err() != nil:
		if errors.Is(context.Cause(s.ctx), errShutdown) {
			se = stream.NewError(stream.CondSystemShutdown, "the proxy is shutting down")
		}
	case se != nil:
	case errors.Is(err, ErrUpstream):
		s.log.Warn("upstream failed", "err", err)
		se = stream.NewError(stream.CondRemoteConnectionFailed, "the upstream server cannot be reached")
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		se = stream.NewError(stream.CondConnectionTimeout, "stream negotiation took too long")
	}
	if se == nil {
		if !errors.Is(err, errClientClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, errUpstreamError) {
			s.log.Debug("handshake ended", "err", err)
		}
		return
	}
	s.endedWith(se)
	s.log.Info("stream error during negotiation", "condition", se.Condition, "text", se.Text)
	var b []byte
	if !s.headerSent {
		domain := s.domain
		if domain == "" {
			domain = s.srv.cfg.Domains[0]
		}
		b = stream.AppendHeader(b, "", domain, newStreamID(), "en")
	}
	b = se.AppendXML(b)
	_ = s.writeClient(append(b, stream.CloseTag...))
	if s.up != nil {
		_ = writeDirect(s.up.conn, []byte(stream.CloseTag))
	}
}

// relayOrNil returns the session's relay, nil before it relays.
func (s *session) relayOrNil() *relay {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.relay
}
