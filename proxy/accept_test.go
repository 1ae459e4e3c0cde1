package proxy

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Accepting

func TestAcceptBackoffDoublesFrom5msUpTo1s(t *testing.T) {
	t.Parallel()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	var d time.Duration
	for i, w := range want {
		d = defaultAcceptRetry.next(d)
		if d != w*time.Millisecond {
			t.Fatalf("wait #%d = %v, want %v", i+1, d, w*time.Millisecond)
		}
	}
	if d = defaultAcceptRetry.next(0); d != 5*time.Millisecond {
		t.Fatalf("after a successful accept the wait is %v, want it back at 5ms", d)
	}
}

func TestTemporaryAcceptErrors(t *testing.T) {
	t.Parallel()
	ln := listenLoopback(t)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{acceptErr(ln, syscall.EMFILE), true},
		{acceptErr(ln, syscall.ENFILE), true},
		{acceptErr(ln, syscall.ECONNABORTED), true},
		{acceptErr(ln, syscall.ENOBUFS), true},
		{timeoutErr{}, true},
		{acceptErr(ln, syscall.EINVAL), false},
		{errors.New("unexpected"), false},
	} {
		if got := temporaryAcceptError(tc.err); got != tc.want {
			t.Errorf("temporaryAcceptError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A failed accept, temporary or not, is retried; the log says when a storm
// of them starts and ends, not once per retry; only closing the listener
// (Shutdown) ends the loop.
func TestAcceptLoopRetriesFailedAcceptsAndKeepsServing(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	real := listenLoopback(t)
	ln := &flakyListener{Listener: real, errs: make(chan error, 16)}
	storm1 := []error{
		acceptErr(real, syscall.EMFILE), acceptErr(real, syscall.EMFILE), acceptErr(real, syscall.EMFILE),
		acceptErr(real, syscall.ENFILE), acceptErr(real, syscall.ECONNABORTED), timeoutErr{},
	}
	for _, err := range storm1 {
		ln.errs <- err
	}
	rec := newLogRecorder()
	srv := newTestServer(t, fake.addr(), rec, nil)
	// Short waits, and a log interval no test run reaches: one line per storm.
	srv.acceptRetry = acceptRetry{min: time.Microsecond, max: 8 * time.Microsecond, logEvery: time.Hour}
	if !srv.serve(ln, false) {
		t.Fatal("serve refused the listener")
	}

	c1 := dialProxy(t, srv)
	c1.login() // accepted after storm 1
	fake.accept(t)

	// Storm 2 is taken by the Accept after the one that is waiting now
	// (or that one, if it has not started): c3 comes after it either way.
	storm2 := []error{errors.New("unexpected"), acceptErr(real, syscall.EMFILE), acceptErr(real, syscall.EMFILE)}
	for _, err := range storm2 {
		ln.errs <- err
	}
	for range 2 {
		c := dialProxy(t, srv)
		c.login()
		fake.accept(t)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the accept loop did not end on the closed listener?)", err)
	}

	failed := rec.find("accept failed; retrying")
	if len(failed) != 2 {
		t.Fatalf("logged %d storm starts, want 2 (one per storm, none for the closed listener)", len(failed))
	}
	if failed[0].Level != slog.LevelWarn || failed[1].Level != slog.LevelError {
		t.Errorf("storm starts logged at %v and %v, want WARN for EMFILE and ERROR for an unknown error", failed[0].Level, failed[1].Level)
	}
	if n := len(rec.find("accept still failing; retrying")); n != 0 {
		t.Errorf("logged %d reminders within one log interval, want 0", n)
	}
	again := rec.find("accepting again")
	if len(again) != 2 {
		t.Fatalf("logged %d storm ends, want 2", len(again))
	}
	for i, want := range []int64{int64(len(storm1)), int64(len(storm2))} {
		if got := attrOf(again[i], "failures").Int64(); got != want {
			t.Errorf("storm %d ended after %d failures, want %d", i+1, got, want)
		}
	}
}

// Shutdown does not wait for a backoff to run out.
func TestShutdownCutsAcceptBackoffShort(t *testing.T) {
	t.Parallel()
	real := listenLoopback(t)
	ln := &flakyListener{Listener: real, errs: make(chan error, 1)}
	ln.errs <- acceptErr(real, syscall.EMFILE)
	rec := newLogRecorder()
	srv := newTestServer(t, "127.0.0.1:1", rec, nil)
	srv.acceptRetry = acceptRetry{min: time.Hour, max: time.Hour, logEvery: time.Hour}
	if !srv.serve(ln, false) {
		t.Fatal("serve refused the listener")
	}
	rec.wait(t, "accept failed; retrying")
	// The loop now waits an hour; Shutdown waits for the loop.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; want the accept loop's backoff cut short", err)
	}
}
