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
	timeout := time.After(wait)
	for {
		w.mu.Lock()
		for _, l := range w.lines[mark:] {
			if contains([]byte(l), parts...) {
				w.mu.Unlock()
				return
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
			t.Fatalf("the proxy never logged %q", parts)
		}
	}
}

// match waits for a line that matches re, from the start of the log, and
// returns the match.
func (w *logWatch) match(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(wait)
	for mark := 0; ; {
		w.mu.Lock()
		for _, l := range w.lines[mark:] {
			if found := rx.FindString(l); found != "" {
				w.mu.Unlock()
				return found
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
			t.Fatalf("the proxy never logged a line matching %s; it logged:\n%s", re, w.String())
		}
	}
}

// String is the whole log.
func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "")
}
