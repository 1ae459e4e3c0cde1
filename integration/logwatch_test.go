//go:build integration

package integration

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// logWatch is the proxy's log, for waiting on what it did.
type logWatch struct {
	mu    sync.Mutex
	lines []string
	wake  chan struct{}
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, string(p))
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
	return len(p), nil
}

// mark is where a later waitFor starts looking.
func (w *logWatch) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

// waitFor waits for a line after mark that holds every part.
func (w *logWatch) waitFor(t *testing.T, mark int, parts ...string) {
	t.Helper()
	if w.await(mark, func(l string) bool { return contains([]byte(l), parts...) }) == "" {
		t.Fatalf("the proxy never logged %q", parts)
	}
}

// match waits for a line that matches re, from the start of the log, and
// returns the match.
func (w *logWatch) match(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var found string
	if w.await(0, func(l string) bool { found = rx.FindString(l); return found != "" }) == "" {
		t.Fatalf("the proxy never logged a line matching %s; it logged:\n%s", re, w.String())
	}
	return found
}

// await returns the first line after mark that ok accepts, waking on each
// write; "" once the wait bound passes.
func (w *logWatch) await(mark int, ok func(line string) bool) string {
	timeout := time.After(wait)
	for {
		w.mu.Lock()
		for _, l := range w.lines[mark:] {
			if ok(l) {
				w.mu.Unlock()
				return l
			}
		}
		mark = len(w.lines)
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		wake := w.wake
		w.mu.Unlock()
		select {
		case <-wake:
		case <-timeout:
			return ""
		}
	}
}

// String is the whole log.
func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "")
}
