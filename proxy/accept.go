package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"syscall"
	"time"
)

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
