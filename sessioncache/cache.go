// Package sessioncache holds detached XMPP 2.0 sessions while their
// clients may come back to resume them (XEP-0198 stream resumption, inline
// in SASL2 or Bind2; contract sections 3 and 7).
//
// A detached session keeps its upstream leg open; the cache bounds how many
// are held in all and per account (least recently detached go first, and
// an account over its own bound loses its own oldest, so that one account
// cannot push every other account's sessions out) and for how long. Whatever
// leaves the cache other than by Take, by expiry, eviction or Close, is
// handed to the drop callback exactly once, so the owner can close its
// upstream leg and let the server's own offline and bounce handling take
// over. It never touches a socket itself.
package sessioncache

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache maps resumption ids to detached sessions of type V.
type Cache[V any] struct {
	mu   sync.Mutex
	lru  *lru.Cache[string, *entry[V]]
	size int
	// perAccount bounds one account's sessions; held counts them.
	perAccount int
	held       map[string]int
	ttl        time.Duration
	onDrop     func(V)
	closed     bool
}

type entry[V any] struct {
	account string
	value   V
	timer   *time.Timer
}

// New returns a cache holding at most size sessions, and at most
// perAccount of one account, each for ttl. onDrop is called, outside any
// lock, for every session that expires, is evicted to make room, or is
// still held at Close.
func New[V any](size, perAccount int, ttl time.Duration, onDrop func(V)) (*Cache[V], error) {
	l, err := lru.New[string, *entry[V]](size)
	if err != nil {
		return nil, err
	}
	if perAccount < 1 || perAccount > size {
		perAccount = size
	}
	return &Cache[V]{lru: l, size: size, perAccount: perAccount, held: map[string]int{}, ttl: ttl, onDrop: onDrop}, nil
}

// Put holds v under id for the cache's ttl. Only a client authenticated as
// account may take it back. If the account holds its share already, its
// own oldest session is dropped; else if the cache is full, the oldest
// session is dropped; after Close, v itself is dropped. A session put is
// always held: a client may be promised resumption before its session is.
func (c *Cache[V]) Put(id, account string, v V) {
	var dropped []V
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.onDrop(v)
		return
	}
	if old, ok := c.lru.Peek(id); ok {
		c.remove(id, old)
		dropped = append(dropped, old.value)
	}
	if c.held[account] >= c.perAccount {
		dropped = append(dropped, c.removeOldestOf(account))
	}
	for c.lru.Len() >= c.size {
		oldestID, oldest, ok := c.lru.GetOldest()
		if !ok {
			break
		}
		c.remove(oldestID, oldest)
		dropped = append(dropped, oldest.value)
	}
	e := &entry[V]{account: account, value: v}
	e.timer = time.AfterFunc(c.ttl, func() { c.expire(id, e) })
	c.lru.Add(id, e)
	c.held[account]++
	c.mu.Unlock()
	for _, d := range dropped {
		c.onDrop(d)
	}
}

// Take removes and returns the session held under id, if account owns it.
// A wrong account leaves the session where it is: ids are not secrets
// that another account's client may consume.
func (c *Cache[V]) Take(id, account string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(id)
	if !ok || e.account != account {
		var zero V
		return zero, false
	}
	c.remove(id, e)
	return e.value, true
}

// remove forgets the entry e held under id. Called with c.mu held.
func (c *Cache[V]) remove(id string, e *entry[V]) {
	c.lru.Remove(id)
	e.timer.Stop()
	if c.held[e.account]--; c.held[e.account] <= 0 {
		delete(c.held, e.account)
	}
}

// removeOldestOf removes and returns account's least recently put
// session; the account holds at least one. Called with c.mu held. It
// walks the whole cache, but only when an account is over its share.
func (c *Cache[V]) removeOldestOf(account string) V {
	for _, id := range c.lru.Keys() { // oldest first
		if e, ok := c.lru.Peek(id); ok && e.account == account {
			c.remove(id, e)
			return e.value
		}
	}
	panic("sessioncache: an account's count is out of step with its sessions")
}

// Len reports how many sessions are held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Close drops every held session; later Puts are dropped at once.
func (c *Cache[V]) Close() {
	c.mu.Lock()
	c.closed = true
	var dropped []V
	for _, id := range c.lru.Keys() {
		if e, ok := c.lru.Peek(id); ok {
			e.timer.Stop()
			dropped = append(dropped, e.value)
		}
	}
	c.lru.Purge()
	c.held = map[string]int{}
	c.mu.Unlock()
	for _, d := range dropped {
		c.onDrop(d)
	}
}

func (c *Cache[V]) expire(id string, e *entry[V]) {
	c.mu.Lock()
	cur, ok := c.lru.Peek(id)
	if !ok || cur != e {
		c.mu.Unlock()
		return // taken, replaced or closed in the meantime
	}
	c.remove(id, e)
	c.mu.Unlock()
	c.onDrop(e.value)
}
