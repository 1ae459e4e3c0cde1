package sessioncache

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder collects dropped values.
type recorder struct {
	mu      sync.Mutex
	dropped []string
}

func (r *recorder) drop(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped = append(r.dropped, v)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dropped...)
}

func newCache(t *testing.T, size int, ttl time.Duration) (*Cache[string], *recorder) {
	return newCacheOf(t, size, size, ttl)
}

func newCacheOf(t *testing.T, size, perAccount int, ttl time.Duration) (*Cache[string], *recorder) {
	t.Helper()
	r := &recorder{}
	c, err := New[string](size, perAccount, ttl, r.drop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, r
}

func TestCacheRules(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"the owner takes a held session back, once", func(t *testing.T) {
			c, r := newCache(t, 4, time.Hour)
			c.Put("id1", "alice@x", "s1")
			if v, ok := c.Take("id1", "alice@x"); !ok || v != "s1" {
				t.Fatalf("Take = %q %v", v, ok)
			}
			if _, ok := c.Take("id1", "alice@x"); ok {
				t.Fatal("taken twice")
			}
			if len(r.list()) != 0 {
				t.Fatalf("a taken session was dropped: %v", r.list())
			}
		}},
		{"an account over its share loses its own oldest session, not another account's", func(t *testing.T) {
			c, r := newCacheOf(t, 4, 2, time.Hour)
			c.Put("b1", "bob@x", "b1")
			c.Put("a1", "alice@x", "a1")
			c.Put("a2", "alice@x", "a2")
			c.Put("a3", "alice@x", "a3")
			if got := r.list(); len(got) != 1 || got[0] != "a1" {
				t.Fatalf("dropped %v, want alice's oldest only", got)
			}
			if _, ok := c.Take("b1", "bob@x"); !ok {
				t.Fatal("bob's session was pushed out by alice's")
			}
			if c.Len() != 2 {
				t.Fatalf("holds %d, want alice's two newest", c.Len())
			}
		}},
		{"a taken session no longer counts against its account's share", func(t *testing.T) {
			c, r := newCacheOf(t, 4, 1, time.Hour)
			c.Put("a1", "alice@x", "a1")
			c.Take("a1", "alice@x")
			c.Put("a2", "alice@x", "a2")
			if got := r.list(); len(got) != 0 {
				t.Fatalf("dropped %v after a take freed the share", got)
			}
		}},
		{"another account cannot take a session and leaves it held", func(t *testing.T) {
			c, _ := newCache(t, 4, time.Hour)
			c.Put("id1", "alice@x", "s1")
			if _, ok := c.Take("id1", "mallory@x"); ok {
				t.Fatal("another account took the session")
			}
			if _, ok := c.Take("id1", "alice@x"); !ok {
				t.Fatal("the owner lost the session to a wrong guess")
			}
		}},
		{"an unknown id takes nothing", func(t *testing.T) {
			c, _ := newCache(t, 4, time.Hour)
			if _, ok := c.Take("nope", "alice@x"); ok {
				t.Fatal("took an unknown id")
			}
		}},
		{"a session held past its ttl is dropped once and cannot be taken", func(t *testing.T) {
			c, r := newCache(t, 4, 20*time.Millisecond)
			c.Put("id1", "alice@x", "s1")
			waitDropped(t, r, 1)
			if _, ok := c.Take("id1", "alice@x"); ok {
				t.Fatal("took an expired session")
			}
			time.Sleep(50 * time.Millisecond)
			if got := r.list(); len(got) != 1 || got[0] != "s1" {
				t.Fatalf("dropped %v, want [s1] once", got)
			}
		}},
		{"a full cache drops the oldest session to make room", func(t *testing.T) {
			c, r := newCache(t, 2, time.Hour)
			c.Put("a", "u", "sa")
			c.Put("b", "u", "sb")
			c.Put("c", "u", "sc")
			if got := r.list(); len(got) != 1 || got[0] != "sa" {
				t.Fatalf("dropped %v, want [sa]", got)
			}
			if c.Len() != 2 {
				t.Fatalf("Len = %d", c.Len())
			}
		}},
		{"putting an id again drops the session it replaces", func(t *testing.T) {
			c, r := newCache(t, 4, time.Hour)
			c.Put("a", "u", "old")
			c.Put("a", "u", "new")
			if got := r.list(); len(got) != 1 || got[0] != "old" {
				t.Fatalf("dropped %v, want [old]", got)
			}
			if v, _ := c.Take("a", "u"); v != "new" {
				t.Fatalf("Take = %q", v)
			}
		}},
		{"close drops every held session and every later put", func(t *testing.T) {
			c, r := newCache(t, 4, time.Hour)
			c.Put("a", "u", "sa")
			c.Put("b", "u", "sb")
			c.Close()
			c.Put("c", "u", "sc")
			if got := r.list(); len(got) != 3 {
				t.Fatalf("dropped %v, want all three", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func waitDropped(t *testing.T, r *recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.list()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %v, want %d", r.list(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
