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
	"strings"
	"sync"
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

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup
}

// NewServer validates cfg and loads the client-facing certificate.
// A non-nil tlsConfig replaces cfg.Cert and cfg.Key (tests, the demo).
func NewServer(cfg Config, tlsConfig *tls.Config, log *slog.Logger) (*Server, error) {
	if tlsConfig != nil && cfg.Cert == "" {
		cfg.Cert, cfg.Key = "(in memory)", "(in memory)"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tlsConfig == nil && cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("cert: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, tls: tlsConfig, domains: map[string]bool{}, sessions: map[*session]struct{}{}, registry: newRegistry()}
	for _, d := range cfg.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	var err error
	s.detached, err = sessioncache.New(cfg.Limits.MaxDetachedSessions, cfg.Limits.MaxDetachedPerAccount, time.Duration(cfg.Timeouts.Resume), (*relay).dropDetached)
	if err != nil {
		return nil, err
	}
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
	if s.cfg.Listen != "" {
		if err := s.listen(s.cfg.Listen, false); err != nil {
			return err
		}
	}
	if s.cfg.DirectTLSListen != "" {
		if err := s.listen(s.cfg.DirectTLSListen, true); err != nil {
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
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String(), "direct_tls", directTLS, "upstream", s.cfg.Upstream)
	s.wg.Add(1)
	go s.acceptLoop(ln, directTLS)
	return nil
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

func (s *Server) acceptLoop(ln net.Listener, directTLS bool) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "err", err)
			}
			return
		}
		sess := s.newSession(conn, directTLS)
		if sess == nil {
			conn.Close()
			return
		}
		go sess.run()
	}
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
	s.mu.Unlock()
	s.wg.Done()
}

// Shutdown stops accepting, sends every client <system-shutdown/>, closes
// every upstream stream, and waits for the sessions to end or ctx to expire,
// after which it drops the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	s.closeListeners()
	s.detached.Close() // closes their upstream streams
	for _, sess := range sessions {
		go sess.shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, sess := range sessions {
			sess.abort(ctx.Err())
		}
		<-done
		return ctx.Err()
	}
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// ListenAndServe starts the server and runs until ctx is done, then shuts
// down gracefully within the close timeout.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Duration(s.cfg.Timeouts.Close))
	defer cancel()
	return s.Shutdown(shutCtx)
}

func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
