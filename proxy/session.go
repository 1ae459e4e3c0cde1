package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
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
	handedOff  bool
	stopWake   func() bool
	finishOnce sync.Once
	boundJID   string // the full JID bound through this session, if any

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

// bound returns the JID this session bound, or "".
func (s *session) bound() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.boundJID
}

// setBound records the JID this session bound, for the registry.
func (s *session) setBound(jid string) {
	s.mu.Lock()
	s.boundJID = jid
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
		jid := s.boundJID
		s.mu.Unlock()
		if jid != "" {
			s.srv.registry.unbind(jid)
		}
		if s.v2 != nil && s.v2.acc != nil {
			s.srv.registry.leave(s.relay)
		}
		if s.v2 != nil {
			s.v2.stopCatchup()
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

// handshake negotiates the client stream and relays SASL. It returns once
// both legs have restarted their streams after a successful authentication.
func (s *session) handshake() error {
	deadline := time.Now().Add(time.Duration(s.srv.cfg.Timeouts.Handshake))
	s.handshakeDeadline = deadline
	_ = s.conn.SetDeadline(deadline)
	if s.ctx.Err() != nil { // shut down before the deadline was set
		return context.Cause(s.ctx)
	}
	if s.directTLS {
		if err := s.upgradeClientTLS(); err != nil {
			return err
		}
	}
	for {
		if err := s.openClientStream(); err != nil {
			return err
		}
		features, err := s.preAuthFeatures()
		if err != nil {
			return err
		}
		if err := s.writeClientHeader(newStreamID(), features); err != nil {
			return err
		}
		restart, err := s.preAuthElements(deadline)
		if err != nil {
			return err
		}
		if !restart {
			if s.v2 != nil {
				return nil // SASL2: no stream restart, already online
			}
			return s.restartAfterAuth()
		}
	}
}

// preAuthElements handles the client's elements on one pre-auth stream. It
// returns restart=true after STARTTLS, false after a successful SASL.
func (s *session) preAuthElements(deadline time.Time) (restart bool, err error) {
	for {
		u, err := s.nextClientElement()
		if err != nil {
			return false, err
		}
		start, err := stream.StartOf(u.Raw)
		if err != nil {
			return false, stream.NewError(stream.CondNotWellFormed, err.Error())
		}
		switch {
		case start.Name.Space == ns.TLS && start.Name.Local == "starttls":
			if s.secure || s.srv.tls == nil || s.ws {
				_ = s.writeClient([]byte("<failure xmlns='" + ns.TLS + "'/>" + stream.CloseTag))
				return false, errClientClosed
			}
			if err := s.writeClient([]byte("<proceed xmlns='" + ns.TLS + "'/>")); err != nil {
				return false, err
			}
			return true, s.upgradeClientTLS()
		case start.Name.Space == ns.SASL && start.Name.Local == "auth":
			s.kind = kindClassic
			ok, err := s.authenticate(u.Raw, stream.StartAttr(start, "mechanism"), deadline)
			if err != nil || ok {
				return false, err
			}
		case start.Name.Space == ns.SASL2 && start.Name.Local == "authenticate":
			if s.configVersion != "" && configVersionMismatch(u.Raw, s.configVersion) {
				// Refused before anything goes upstream (XEP-0509).
				if err := s.writeClient(configVersionFailure()); err != nil {
					return false, err
				}
				continue
			}
			s.kind = kind2
			ok, err := s.authenticate2(u.Raw, deadline)
			if err != nil || ok {
				return false, err
			}
		default:
			return false, stream.NewError(stream.CondNotAuthorized, "authenticate before sending "+start.Name.Local)
		}
	}
}

// nextClientElement skips whitespace and reports a closed stream as
// errClientClosed.
func (s *session) nextClientElement() (stream.Unit, error) {
	for {
		u, err := s.fr.Next()
		if err != nil {
			return u, err
		}
		switch u.Kind {
		case stream.UnitElement:
			return u, nil
		case stream.UnitStreamClose:
			_ = s.writeClient([]byte(stream.CloseTag))
			return u, errClientClosed
		}
	}
}

// openClientStream reads and checks the client's stream header.
func (s *session) openClientStream() error {
	s.headerSent = false
	u, err := s.fr.Next()
	if err != nil {
		return err
	}
	if u.Kind != stream.UnitStreamOpen {
		return stream.NewError(stream.CondNotWellFormed, "expected a stream header")
	}
	h, err := stream.ParseHeader(u.Raw)
	if err != nil {
		return err
	}
	domain := strings.ToLower(h.To)
	if domain == "" {
		domain = s.srv.cfg.Domains[0]
	}
	if !s.srv.domains[domain] {
		return stream.NewError(stream.CondHostUnknown, "this proxy does not serve "+h.To)
	}
	if s.domain != "" && domain != s.domain {
		return stream.NewError(stream.CondHostUnknown, "the domain changed on stream restart")
	}
	s.domain, s.lang = domain, h.Lang
	// One upstream connection per session: the restarts after STARTTLS
	// and SASL keep the one already dialed.
	if s.upCh == nil && s.up == nil {
		s.upCh = make(chan upstreamResult, 1)
		// The dial gets its own copies: the stream fields are rewritten
		// on every restart while it runs.
		go func(ctx context.Context, ch chan<- upstreamResult, domain, lang string) {
			up, err := s.srv.dialUpstream(ctx, domain, lang, s.peer)
			ch <- upstreamResult{up, err}
		}(s.ctx, s.upCh, domain, h.Lang)
	}
	return nil
}

// upstream waits for the upstream leg started by openClientStream.
func (s *session) upstream() (*upstreamLeg, error) {
	if s.up != nil {
		return s.up, nil
	}
	r := <-s.upCh
	s.upCh = nil
	if r.err != nil {
		return nil, r.err
	}
	s.mu.Lock()
	s.up = r.up
	s.mu.Unlock()
	return r.up, nil
}

// preAuthFeatures renders the features of a pre-auth stream. Where SASL2
// is offered, the XEP-0509 <config-version/> comes last, its token taken
// over everything before it.
func (s *session) preAuthFeatures() ([]byte, error) {
	s.configVersion = ""
	b := []byte("<stream:features>")
	if !s.secure && s.srv.tls != nil && !s.ws {
		b = append(b, "<starttls xmlns='"+ns.TLS+"'>"...)
		if !s.srv.cfg.AllowPlaintext {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
	}
	if s.secure || s.srv.cfg.AllowPlaintext {
		up, err := s.upstream()
		if err != nil {
			return nil, err
		}
		b = append(b, "<mechanisms xmlns='"+ns.SASL+"'>"...)
		for _, m := range up.mechanisms {
			b = append(b, "<mechanism>"...)
			b = stream.AppendEscaped(b, m)
			b = append(b, "</mechanism>"...)
		}
		b = append(b, "</mechanisms>"...)
		b = append(b, sasl2Advertisement(up.mechanisms)...)
		s.configVersion = configVersion(b)
		b = appendConfigVersion(b, s.configVersion)
	}
	return append(b, "</stream:features>"...), nil
}

func (s *session) upgradeClientTLS() error {
	if s.fr.Buffered() > 0 {
		// Anything sent in the clear after <starttls/> could be an injection.
		return stream.NewError(stream.CondPolicyViolation, "data after <starttls/> before the TLS handshake")
	}
	rec := stream.NewRecordConn(s.conn)
	tc := tls.Server(rec, s.srv.tls)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return fmt.Errorf("client tls: %w", err)
	}
	s.conn, s.rec = tc, rec
	s.secure = true
	s.fr.Reset(tc)
	return nil
}

// saslProfile is how one SASL profile (RFC 6120 or XEP-0388) frames the
// exchange for the client; the upstream always speaks RFC 6120.
type saslProfile struct {
	// failure renders a failure the proxy raises itself.
	failure func(condition, text string) []byte
	// challenge and upstreamFailure render the upstream's elements.
	challenge, upstreamFailure func(raw []byte) []byte
	// response relays the client's answer to a challenge.
	response func() error
}

// classicSASL relays RFC 6120 SASL byte for byte.
func (s *session) classicSASL() saslProfile {
	same := func(raw []byte) []byte { return raw }
	return saslProfile{failure: saslFailure1, challenge: same, upstreamFailure: same,
		response: func() error { return s.relaySASLResponse(s.up) }}
}

// relaySASL checks the policy, sends the client's <auth/> upstream and runs
// the challenge loop. It returns the upstream's <success/>, or nil after a
// failure the client was told about (it may try again).
func (s *session) relaySASL(p saslProfile, auth []byte, mechanism string, deadline time.Time) ([]byte, error) {
	if !s.secure && !s.srv.cfg.AllowPlaintext {
		return nil, s.writeClient(p.failure("encryption-required", "use STARTTLS before authenticating"))
	}
	up, err := s.upstream()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(up.mechanisms, mechanism) {
		return nil, s.writeClient(p.failure("invalid-mechanism", ""))
	}
	_ = up.conn.SetDeadline(deadline)
	if s.ctx.Err() != nil { // shut down before the deadline was set
		return nil, context.Cause(s.ctx)
	}
	account := saslAccount(auth, mechanism, s.domain)
	if err := writeAll(up.conn, auth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	for {
		u, err := up.fr.Next()
		if err != nil || u.Kind != stream.UnitElement {
			return nil, fmt.Errorf("%w: during SASL: %v", ErrUpstream, err)
		}
		start, _ := stream.StartOf(u.Raw)
		if start.Name.Space == ns.Stream && start.Name.Local == "error" {
			_ = s.writeClient(append(bytes.Clone(u.Raw), stream.CloseTag...))
			return nil, errUpstreamError
		}
		if start.Name.Space != ns.SASL {
			return nil, fmt.Errorf("%w: unexpected %s during SASL", ErrUpstream, start.Name.Local)
		}
		switch start.Name.Local {
		case "success":
			s.account = account
			s.logAuth(mechanism, account, "")
			return bytes.Clone(u.Raw), nil
		case "failure":
			s.logAuth(mechanism, account, saslCondition(u.Raw))
			return nil, s.writeClient(p.upstreamFailure(u.Raw))
		case "challenge":
			if err := s.writeClient(p.challenge(u.Raw)); err != nil {
				return nil, err
			}
			if err := p.response(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected SASL element %s", ErrUpstream, start.Name.Local)
		}
	}
}

// authenticate relays one classic SASL exchange. It reports whether it
// succeeded; a failure leaves the stream open for another attempt.
func (s *session) authenticate(auth []byte, mechanism string, deadline time.Time) (bool, error) {
	success, err := s.relaySASL(s.classicSASL(), auth, mechanism, deadline)
	if err != nil || success == nil {
		return false, err
	}
	return true, s.writeClient(success)
}

// relaySASLResponse forwards the client's <response/> or <abort/>.
func (s *session) relaySASLResponse(up *upstreamLeg) error {
	u, err := s.nextClientElement()
	if err != nil {
		return err
	}
	start, _ := stream.StartOf(u.Raw)
	if start.Name.Space != ns.SASL || (start.Name.Local != "response" && start.Name.Local != "abort") {
		return stream.NewError(stream.CondNotAuthorized, "expected a SASL response")
	}
	if err := writeAll(up.conn, u.Raw); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	return nil
}

// saslFailure1 renders an RFC 6120 <failure/>.
func saslFailure1(condition, text string) []byte {
	b := []byte("<failure xmlns='" + ns.SASL + "'><" + condition + "/>")
	if text != "" {
		b = append(b, "<text xml:lang='en'>"...)
		b = stream.AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</failure>"...)
}

// restartAfterAuth restarts both streams (RFC 6120 6.4.6) and hands the
// client the upstream's post-auth features unchanged.
func (s *session) restartAfterAuth() error {
	up := s.up
	if err := writeAll(up.conn, stream.AppendHeader(nil, s.domain, "", "", s.lang)); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	s.fr.Reset(nil)
	if err := s.openClientStream(); err != nil {
		return err
	}
	up.fr.Reset(nil)
	features, id, err := up.readHeaderAndFeatures()
	if err != nil {
		return fmt.Errorf("%w: after auth: %w", ErrUpstream, err)
	}
	s.fr.SetLimits(stream.Limits{MaxBytes: s.srv.cfg.Limits.MaxStanzaBytes, MaxDepth: s.srv.cfg.Limits.MaxDepth})
	return s.writeClientHeader(id, features)
}

func (s *session) writeClientHeader(id string, rest []byte) error {
	b := stream.AppendHeader(nil, "", s.domain, id, "en")
	s.headerSent = true
	return s.writeClient(append(b, rest...))
}

func (s *session) writeClient(b []byte) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Duration(s.srv.cfg.Timeouts.Write)))
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
		_ = writeAll(s.up.conn, []byte(stream.CloseTag))
	}
}
