package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The operator's HTTP endpoint (metrics_listen): /metrics for Prometheus,
// /healthz (the process answers) and /readyz (worth sending clients to:
// the upstream is reachable and the proxy is not draining). It runs while
// the proxy does, through Shutdown's drain, so that /readyz says
// "draining" for as long as sessions are being ended.

// readyFresh is how long a readiness answer about the upstream is reused:
// probes from several load balancers cost one dial, and a session's own
// dial outcome, newer, replaces it at once.
const readyFresh = time.Second

// readyDialTimeout bounds the readiness dial: a probe must answer before
// its caller gives up on it.
const readyDialTimeout = 2 * time.Second

// opsServer is the running HTTP endpoint.
type opsServer struct {
	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc // ends the requests' context
	done   chan struct{}      // closed when Serve returned
}

// upstreamState is the last thing learned about reaching the upstream,
// from a readiness dial or a session's dial.
type upstreamState struct {
	probe sync.Mutex // one readiness dial at a time
	mu    sync.Mutex // guards at and err; never held while dialing
	at    time.Time  // zero: nothing known yet
	err   error
}

// note records a dial outcome.
func (u *upstreamState) note(err error) {
	u.mu.Lock()
	u.at, u.err = time.Now(), err
	u.mu.Unlock()
}

// fresh returns the last outcome if it is recent enough to reuse.
func (u *upstreamState) fresh() (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.at.IsZero() && time.Since(u.at) < readyFresh, u.err
}

// startOps opens metrics_listen, if set, and serves it in the background.
func (s *Server) startOps() error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", s.cfg.MetricsListen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	ops := &opsServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return ctx }},
		ln: ln, cancel: cancel, done: make(chan struct{}),
	}
	s.mu.Lock()
	s.ops = ops
	s.mu.Unlock()
	go func() {
		defer close(ops.done)
		_ = ops.srv.Serve(ln)
	}()
	s.log.Info("serving metrics and health checks", "addr", ln.Addr().String())
	return nil
}

// stopOps closes the HTTP endpoint and waits for it; a second call does
// nothing.
func (s *Server) stopOps() {
	s.mu.Lock()
	ops := s.ops
	s.ops = nil
	s.mu.Unlock()
	if ops == nil {
		return
	}
	ops.cancel()
	_ = ops.srv.Close()
	<-ops.done
}

// MetricsAddr returns the metrics and health listener's address, or nil.
func (s *Server) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		return nil
	}
	return s.ops.ln.Addr()
}

// upstreamDialed learns from a session's upstream dial: a failure counts,
// and either outcome is what /readyz says next.
func (s *Server) upstreamDialed(err error) {
	if err != nil {
		s.metrics.upstreamDialFailed()
		err = errors.New("a session's upstream connection failed")
	}
	s.upstreamState.note(err)
}

// serveReady answers 200 when the proxy takes clients and can reach the
// upstream, else 503 with the reason.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "draining: the proxy is shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := s.upstreamReachable(r.Context()); err != nil {
		http.Error(w, "upstream unreachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// upstreamReachable reports the last dial outcome if it is fresh, or
// dials the upstream (TCP only: a probe must stay cheap for the server).
// Concurrent probes wait for one dial and share its outcome.
func (s *Server) upstreamReachable(ctx context.Context) error {
	u := &s.upstreamState
	u.probe.Lock()
	defer u.probe.Unlock()
	if ok, err := u.fresh(); ok {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, readyDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", s.cfg.Upstream)
	if err != nil {
		if ctx.Err() != nil {
			return err // the prober left: this says nothing about the upstream
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // the address is the operator's own; the cause is enough
		}
	} else {
		conn.Close()
	}
	u.note(err)
	return err
}
