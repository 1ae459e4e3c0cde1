package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	s.detached, err = sessioncache.New(cfg.Limits.MaxDetachedSessions, cfg.Limits.MaxDetachedPerAccount, cfg.Timeouts.Resume, (*relay).dropDetached)
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

// newSession registers a session, or returns nil when shutting down.
func (s *Server) newSession(conn net.Conn, directTLS bool) *session {
	return s.register(func() *session { return newSession(s, conn, directTLS) })
}

// register builds a session and counts it in Shutdown's wait,
// unless Shutdown has begun: then it makes nothing and returns nil.
func (s *Server) register(build func() *session) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	sess := build()
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
	drain := s.cfg.Timeouts.Drain
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
