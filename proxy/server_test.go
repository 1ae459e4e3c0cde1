package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// ---------------------------------------------------------------------------
// Helpers

// logRecorder keeps what a server logged, so tests can wait for a line
// instead of sleeping.
type logRecorder struct {
	mu      sync.Mutex
	recs    []slog.Record
	changed chan struct{} // closed and replaced on every record
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) add(r slog.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	close(l.changed)
	l.changed = make(chan struct{})
}

// find returns the records with message msg.
func (l *logRecorder) find(msg string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

// wait waits until a record with message msg was logged.
func (l *logRecorder) wait(t *testing.T, msg string) slog.Record {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if recs := l.find(msg); len(recs) > 0 {
			return recs[0]
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the server never logged %q", msg)
		}
	}
}

// recordingHandler writes to the test log and keeps every record.
type recordingHandler struct {
	slog.Handler
	rec *logRecorder
}

func (h recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.rec.add(r.Clone())
	return h.Handler.Handle(ctx, r)
}

func (h recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordingHandler{h.Handler.WithAttrs(as), h.rec}
}

func (h recordingHandler) WithGroup(name string) slog.Handler {
	return recordingHandler{h.Handler.WithGroup(name), h.rec}
}

func attrOf(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// newTestServer makes a server in front of upstream without listening:
// the test hands it a listener with serve. rec, when set, keeps the log.
func newTestServer(t *testing.T, upstream string, rec *logRecorder, tweak func(*Config)) *Server {
	t.Helper()
	var h slog.Handler = slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})
	if rec != nil {
		h = recordingHandler{h, rec}
	}
	return newServerForTest(t, testConfig(upstream, tweak), nil, slog.New(h))
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// flakyListener fails Accept with the queued errors, one per call, before
// it accepts for real.
type flakyListener struct {
	net.Listener
	errs chan error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.errs:
		return nil, err
	default:
	}
	return l.Listener.Accept()
}

// acceptErr is an accept error as the net package returns it.
func acceptErr(ln net.Listener, errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: ln.Addr(), Err: os.NewSyscallError("accept4", errno)}
}

// timeoutErr is a net.Error that is a timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// stallConn is a server-side client connection whose client stops reading
// once armed: writes block until the connection is closed, as they do on
// a socket whose peer's window stays shut and whose write deadline is far.
type stallConn struct {
	net.Conn
	armed     atomic.Bool
	stalled   chan struct{} // closed when the first write blocks
	stallOnce sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *stallConn) Write(b []byte) (int, error) {
	if c.armed.Load() {
		c.stallOnce.Do(func() { close(c.stalled) })
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tapListener hands the test the server side of every connection.
type tapListener struct {
	net.Listener
	accepted chan *stallConn
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, stalled: make(chan struct{}), closed: make(chan struct{})}
	l.accepted <- sc
	return sc, nil
}

func (l *tapListener) next(t *testing.T) *stallConn {
	t.Helper()
	select {
	case c := <-l.accepted:
		return c
	case <-time.After(waitFor):
		t.Fatal("the server accepted nothing")
		return nil
	}
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting until %s", what)
	}
}

// tappedSession is a logged-in client, the server side of its connection
// and the fake upstream's side of its upstream leg.
type tappedSession struct {
	c  *testClient
	sc *stallConn
	up *fakeConn
}

// upstreams pairs the fake upstream's connections with sessions by
// address: a session may dial more than one (and the test must write to
// the one it relays).
type upstreams struct {
	fake  *fakeUpstream
	extra map[string]*fakeConn // accepted, not yet asked for
}

func (u *upstreams) of(t *testing.T, srv *Server, sc *stallConn) *fakeConn {
	t.Helper()
	var addr string
	srv.mu.Lock()
	for sess := range srv.sessions {
		sess.mu.Lock()
		if socketOf(sess.rawConn) == net.Conn(sc) && sess.up != nil {
			addr = sess.up.conn.LocalAddr().String()
		}
		sess.mu.Unlock()
	}
	srv.mu.Unlock()
	if addr == "" {
		t.Fatal("no session with an upstream leg for this connection")
	}
	if u.extra == nil {
		u.extra = map[string]*fakeConn{}
	}
	for {
		if c, ok := u.extra[addr]; ok {
			delete(u.extra, addr)
			return c
		}
		c := u.fake.accept(t)
		u.extra[c.conn.RemoteAddr().String()] = c
	}
}

// loginTapped logs a client in through ln.
func loginTapped(t *testing.T, srv *Server, ln *tapListener, ups *upstreams) tappedSession {
	t.Helper()
	c := dialProxy(t, srv)
	c.login()
	sc := ln.next(t)
	return tappedSession{c, sc, ups.of(t, srv, sc)}
}

// stall makes the client stop reading with one stanza on its way: its
// writer is then blocked in a write, and with queue_size 1 whatever queues
// two more items (an ending does) blocks too.
func (s tappedSession) stall(t *testing.T) {
	t.Helper()
	s.sc.armed.Store(true)
	s.up.send(t, "<message from='bob@localhost/r' id='unread'><body>never read</body></message>")
	waitClosed(t, s.sc.stalled, "the client writer is stuck")
}

// ---------------------------------------------------------------------------
// Shutdown

// Sessions are told to end concurrently: clients that do not read hold up
// neither the other sessions nor, past its deadline, Shutdown.
func TestShutdownEndsOtherSessionsWithoutWaitingForStalledClients(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	ln := &tapListener{Listener: listenLoopback(t), accepted: make(chan *stallConn, 16)}
	srv := newTestServer(t, fake.addr(), nil, func(c *Config) {
		c.QueueSize = 1
		// Only Shutdown's deadline can end a stalled session.
		c.Timeouts.Write = time.Hour
	})
	if !srv.serve(ln, false) {
		t.Fatal("serve refused the listener")
	}
	ups := &upstreams{fake: fake}
	var stalled, normal []tappedSession
	for range 2 {
		s := loginTapped(t, srv, ln, ups)
		s.stall(t)
		stalled = append(stalled, s)
	}
	for range 3 {
		normal = append(normal, loginTapped(t, srv, ln, ups))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- srv.Shutdown(ctx) }()

	for _, l := range normal {
		l.c.expectStreamError(stream.CondSystemShutdown)
		l.c.expectStreamClose()
		l.c.expectConnClosed()
		l.up.expect(t, stream.UnitStreamClose, stream.CloseTag)
		l.up.expectClosed(t)
	}
	// The normal sessions are over; the stalled ones are still being
	// told, and Shutdown waits for them.
	waitSessions(t, srv, len(stalled))
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned (%v) while stalled sessions were still ending", err)
	default:
	}

	cancel() // the deadline: what is left is dropped
	select {
	case err := <-shutdownErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown: %v, want the context's error", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return once its context ended")
	}
	for _, l := range stalled {
		l.c.expectConnClosed()
		l.up.waitClosed(t)
	}
	srv.mu.Lock()
	left := len(srv.sessions)
	srv.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d sessions left after Shutdown returned", left)
	}
}

// On the signal (ctx), the server drains for timeouts.drain, not for a
// multiple of another timeout, and reports what it had to drop.
func TestDrainTimeoutBoundsTheShutdownOnSignal(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	ln := &tapListener{Listener: listenLoopback(t), accepted: make(chan *stallConn, 16)}
	srv := newTestServer(t, fake.addr(), nil, func(c *Config) {
		c.QueueSize = 1
		c.Timeouts.Write = time.Hour
		c.Timeouts.Close = time.Hour
		c.Timeouts.Drain = 50 * time.Millisecond
	})
	if !srv.serve(ln, false) {
		t.Fatal("serve refused the listener")
	}
	s := loginTapped(t, srv, ln, &upstreams{fake: fake})
	s.stall(t)

	signal, stop := context.WithCancel(context.Background())
	drained := make(chan error, 1)
	go func() { drained <- srv.drainAfter(signal) }()
	stop()
	select {
	case err := <-drained:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "drain timeout (50ms)") {
			t.Fatalf("drain: %v, want the drain deadline named", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the drain did not end at its deadline")
	}
	s.c.expectConnClosed()
	s.up.waitClosed(t)
}

func TestServeAfterShutdownRefusesTheListener(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t, "127.0.0.1:1", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ln := listenLoopback(t)
	if srv.serve(ln, false) {
		t.Fatal("serve took a listener after Shutdown")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on the refused listener: %v, want it closed", err)
	}
}
