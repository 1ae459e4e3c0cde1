package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/sessioncache"
)

// Server accepts XMPP client connections and relays each one to the
// upstream server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config // client-facing; nil without a certificate
	domains map[string]bool
	secret  []byte // keys the Bind2 resource hash
	// detached holds 2.0 sessions whose client vanished, for resumption.
	detached *sessioncache.Cache[*relay]
	registry *registry
	// edges caches each account's archive edges for the Bind2 replay.
	edges *edgeCache
	// proxyPolicies says, per listener, whether a PROXY header must or
	// must not come first (proxyproto.go).
	proxyPolicies proxyPolicies
	// cert is what tls serves, swapped by ReloadCertificate (certreload.go).
	cert atomic.Pointer[tls.Certificate]

	// acceptRetry paces an accept loop after a failed accept.
	acceptRetry acceptRetry
	// quit is closed by Shutdown: it cuts an accept loop's backoff short,
	// so that Shutdown does not wait for a retry that will never come.
	quit     chan struct{}
	quitOnce sync.Once

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup // accept loops, sessions and WebSocket handlers

	// The WebSocket listener (websocket_listen) and its HTTP server,
	// under mu; wsConns: the sockets of the requests being handled, which
	// an aborted Shutdown drops (wslisten.go). wsAccepted, when set, runs
	// between a WebSocket's upgrade and its session (tests).
	wsLn       net.Listener
	wsHTTP     *http.Server
	wsConns    wsHandlers
	wsAccepted func()
	// Metrics and health checks (metrics.go, health.go).
	metrics       *metrics
	endedBytes    [2]int64   // client-leg bytes of ended sessions, in and out; under mu
	ops           *opsServer // the metrics_listen endpoint; under mu
	upstreamState upstreamState
}

// inMemory stands for cert and key when NewServer was given the TLS config.
const inMemory = "(in memory)"

// NewServer checks cfg and loads the client-facing certificate, exactly
// as LoadConfig does (Config.Check). A non-nil tlsConfig replaces cfg.Cert
// and cfg.Key (tests, the demo, and serve, which has LoadConfig's).
func NewServer(cfg Config, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	if tlsConfig != nil {
		if cfg.Cert == "" {
			cfg.Cert, cfg.Key = inMemory, inMemory
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	} else {
		var err error
		if tlsConfig, err = cfg.Check(); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, tls: tlsConfig, domains: map[string]bool{}, sessions: map[*session]struct{}{}, registry: newRegistry(),
		edges: newEdgeCache(archiveEdgeEntries), acceptRetry: defaultAcceptRetry, quit: make(chan struct{})}
	for _, d := range cfg.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	var err error
	s.detached, err = sessioncache.New(cfg.Limits.MaxDetachedSessions, cfg.Limits.MaxDetachedPerAccount, time.Duration(cfg.Timeouts.Resume), (*relay).dropDetached)
	if err != nil {
		return nil, err
	}
	if s.proxyPolicies, err = newProxyPolicies(&s.cfg); err != nil {
		return nil, err
	}
	s.reloadableCertificate()
	s.metrics = newMetrics(s)
	s.secret = []byte(cfg.Secret)
	if cfg.Secret == "" {
		// Resources stay stable for a device while this process runs;
		// set secret to keep them stable across restarts.
		s.secret = make([]byte, 32)
		_, _ = rand.Read(s.secret)
	}
	return s, nil
}

// Start opens the configured listeners and serves them in the background
// until Shutdown.
func (s *Server) Start() error {
	if err := s.startOps(); err != nil {
		return err
	}
	if s.cfg.Listen != "" {
		if err := s.listen(s.cfg.Listen, false); err != nil {
			s.stopOps()
			return err
		}
	}
	if s.cfg.DirectTLSListen != "" {
		if err := s.listen(s.cfg.DirectTLSListen, true); err != nil {
			s.closeListeners()
			s.stopOps()
			return err
		}
	}
	if s.cfg.WebSocketListen != "" {
		if err := s.listenWebSocket(); err != nil {
			s.closeListeners()
			return err
		}
	}
	return nil
}

func (s *Server) listen(addr string, directTLS bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if !s.serve(ln, directTLS) {
		return fmt.Errorf("listen %s: %w", addr, net.ErrClosed)
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "direct_tls", directTLS, "upstream", s.cfg.Upstream)
	return nil
}

// serve registers ln and accepts from it in the background. It reports
// false, having closed ln, once Shutdown has begun: the WaitGroup that
// Shutdown waits on must not grow after that.
func (s *Server) serve(ln net.Listener, directTLS bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		ln.Close()
		return false
	}
	s.listeners = append(s.listeners, ln)
	s.wg.Add(1)
	go s.acceptLoop(ln, directTLS)
	return true
}

// Addr returns the STARTTLS listener's address, or nil.
func (s *Server) Addr() net.Addr { return s.listenerAddr(0, s.cfg.Listen != "") }

// DirectTLSAddr returns the direct TLS listener's address, or nil.
func (s *Server) DirectTLSAddr() net.Addr {
	idx := 0
	if s.cfg.Listen != "" {
		idx = 1
	}
	return s.listenerAddr(idx, s.cfg.DirectTLSListen != "")
}

func (s *Server) listenerAddr(i int, configured bool) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !configured || i >= len(s.listeners) {
		return nil
	}
	return s.listeners[i].Addr()
}

// acceptLoop accepts until the listener is closed. A failed accept never
// ends it: running out of descriptors (EMFILE, ENFILE) or a connection
// reset before it was accepted (ECONNABORTED) passes once sessions end,
// and a proxy that stopped accepting for good while it went on running
// would be the worst outcome. So it retries with exponential backoff, as
// net/http's Server.Serve does, and says so in the log without writing a
// line per retry.
func (s *Server) acceptLoop(ln net.Listener, directTLS bool) {
	defer s.wg.Done()
	var (
		delay time.Duration
		storm acceptStorm
	)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isClosed(s.quit) {
				return
			}
			delay = s.acceptRetry.next(delay)
			storm.failed(s.log, ln.Addr(), err, delay, s.acceptRetry.logEvery)
			if !s.pause(delay) {
				return
			}
			continue
		}
		if delay != 0 {
			delay = 0
			storm.recovered(s.log, ln.Addr())
		}
		sess := s.newSession(conn, directTLS)
		if sess == nil {
			conn.Close()
			return
		}
		go sess.run()
	}
}

// pause waits d, or less when Shutdown begins; it reports false then.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}

// acceptRetry is how an accept loop backs off after failed accepts.
type acceptRetry struct {
	min, max time.Duration // the first wait, and the cap on doubling it
	logEvery time.Duration // at most one log line this often while failing
}

// defaultAcceptRetry follows net/http: 5 ms doubling up to 1 s. A second
// is short next to a client's reconnect, and long enough that a process
// out of descriptors does not spin on a listener that stays readable.
var defaultAcceptRetry = acceptRetry{min: 5 * time.Millisecond, max: time.Second, logEvery: 10 * time.Second}

// next returns the wait after a failed accept that followed a wait of d
// (0 after a successful accept).
func (r acceptRetry) next(d time.Duration) time.Duration {
	if d == 0 {
		return r.min
	}
	return min(2*d, r.max)
}

// acceptStorm counts the failed accepts since the last successful one, so
// that a storm of them is logged when it starts, now and then while it
// lasts, and when it ends, instead of once per retry.
type acceptStorm struct {
	failures int
	lastErr  error
	logged   time.Time
}

func (a *acceptStorm) failed(log *slog.Logger, addr net.Addr, err error, retry, logEvery time.Duration) {
	a.failures++
	a.lastErr = err
	now := time.Now()
	if a.failures > 1 && now.Sub(a.logged) < logEvery {
		return
	}
	a.logged = now
	// An unknown error is retried too, but it may mean the listener is
	// broken for good: say so louder.
	level := slog.LevelError
	if temporaryAcceptError(err) {
		level = slog.LevelWarn
	}
	msg := "accept failed; retrying"
	if a.failures > 1 {
		msg = "accept still failing; retrying"
	}
	log.Log(context.Background(), level, msg, "addr", addr.String(), "err", err, "failures", a.failures, "retry_in", retry)
}

func (a *acceptStorm) recovered(log *slog.Logger, addr net.Addr) {
	log.Info("accepting again", "addr", addr.String(), "failures", a.failures, "last_err", a.lastErr)
	*a = acceptStorm{}
}

// temporaryAcceptError reports whether err is one that passes by itself:
// what net/http's Server.Serve retries (a net.Error that is a timeout or
// says it is temporary, which covers EMFILE, ENFILE and ECONNABORTED),
// plus the kernel's other out-of-memory answers.
func temporaryAcceptError(err error) bool {
	// Temporary is deprecated on net.Error for being ill-defined, but
	// for accept it is exactly the list of errors worth retrying.
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// newSession registers a session, or returns nil when shutting down.
func (s *Server) newSession(conn net.Conn, directTLS bool) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	sess := newSession(s, conn, directTLS)
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return sess
}

func (s *Server) sessionDone(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.addEndedBytes(sess)
	s.mu.Unlock()
	s.wg.Done()
}

// abortGrace bounds how long Shutdown waits, once ctx has expired and every
// session left was aborted, for their goroutines to see their sockets
// closed and end. Only a session stuck in a way that closing its sockets
// cannot undo would use it up.
const abortGrace = 2 * time.Second

// Shutdown stops accepting, sends every client <system-shutdown/>, closes
// every upstream stream, and waits for the sessions to end or ctx to expire,
// after which it drops the rest. It returns within ctx's deadline plus
// abortGrace: sessions are told to end concurrently, so a client that does
// not read, which blocks the telling for up to the write timeout, holds up
// neither the others nor Shutdown. /readyz answers 503 from its first
// line, and the metrics endpoint serves until it returns.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stopOps()
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.quitOnce.Do(func() { close(s.quit) })
	s.closeListeners()

	// One goroutine per session: most return at once (ending is queued
	// for the session's own writers), so few run at the same time, and a
	// pool would let as many stalled clients as it has workers delay all
	// the others.
	var telling sync.WaitGroup
	telling.Go(s.detached.Close) // closes their upstream streams
	for _, sess := range sessions {
		telling.Go(func() { sess.shutdown(ctx) })
	}
	done := make(chan struct{})
	go func() {
		telling.Wait()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	left := len(s.sessions)
	s.mu.Unlock()
	s.log.Warn("shutdown deadline passed; dropping the sessions left", "sessions", left)
	// Aborting ends a telling blocked on a session's queue too: it waits
	// on the session's context.
	for _, sess := range sessions {
		sess.abort(ctx.Err())
	}
	s.dropWebSocket()
	grace := time.NewTimer(abortGrace)
	defer grace.Stop()
	select {
	case <-done:
		return ctx.Err()
	case <-grace.C:
		s.mu.Lock()
		left = len(s.sessions)
		s.mu.Unlock()
		return fmt.Errorf("%d sessions did not end when aborted: %w", left, ctx.Err())
	}
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.closeWebSocket()
}

// ListenAndServe starts the server and runs until ctx is done, then shuts
// down gracefully within the drain timeout (timeouts.drain).
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.drainAfter(ctx)
}

// drainAfter waits for ctx to end, then shuts down with the drain timeout
// as the deadline. The deadline is its own setting, not derived from the
// close or write timeouts: it is how long an orchestrator waits between
// SIGTERM and SIGKILL that bounds it.
func (s *Server) drainAfter(ctx context.Context) error {
	<-ctx.Done()
	drain := time.Duration(s.cfg.Timeouts.Drain)
	s.log.Info("shutting down", "drain", drain)
	shutCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: sessions left after the drain timeout (%s) were dropped: %w", drain, err)
	}
	return nil
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
