package proxy

import "sync"

// queue is a relay leg's bounded outgoing queue. Its channel exists only
// while the leg has something to write: the first send makes it and the
// writer drops it once idle, so an idle session holds no queue at all.
//
// A leg that others deliver to (a 2.0 client leg, which gets its siblings'
// messages) is never waited on: offer puts what finds the channel full
// into spill, behind everything in the channel, up to a byte bound, and
// the writer moves it up as the channel drains (refill). A full spill is
// the caller's decision to make about that one session.
type queue struct {
	size    int
	mu      sync.Mutex
	ch      chan []byte
	senders int // sends under way on ch
	// spill holds, in order, what offer found no room for in ch; it is
	// non-empty only while ch is full or being refilled.
	spill      [][]byte
	spillBytes int
}

// offer queues b without waiting. It reports false, queueing nothing,
// when b would take the spill beyond max bytes. A nil b (the writer's stop
// marker) is always taken, so that an ending session always flushes.
func (q *queue) offer(b []byte, max int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan []byte, q.size)
	}
	if len(q.spill) == 0 {
		select {
		case q.ch <- b:
			return true
		default:
		}
	}
	if b != nil && q.spillBytes+len(b) > max {
		return false
	}
	q.spill = append(q.spill, b)
	q.spillBytes += len(b)
	return true
}

// refill moves spilled items into the channel while it has room; the
// writer calls it after each receive.
func (q *queue) refill() {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for ; n < len(q.spill) && len(q.ch) < cap(q.ch); n++ {
		q.ch <- q.spill[n]
		q.spillBytes -= len(q.spill[n])
		q.spill[n] = nil
	}
	q.spill = q.spill[n:]
	if len(q.spill) == 0 {
		q.spill = nil
	}
}

// acquire returns the channel for one send, making it if needed; release
// must follow once the send is done.
func (q *queue) acquire() chan []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan []byte, q.size)
	}
	q.senders++
	return q.ch
}

func (q *queue) release() {
	q.mu.Lock()
	q.senders--
	q.mu.Unlock()
}

// current returns the channel, nil when there is none.
func (q *queue) current() chan []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ch
}

// len is the number of queued items.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.spill)
	if q.ch != nil {
		n += len(q.ch)
	}
	return n
}

// retire drops the channel when nothing is queued and no send is under
// way. It reports whether the queue is now empty and channel-less.
func (q *queue) retire() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch != nil && (q.senders > 0 || len(q.ch) > 0) || len(q.spill) > 0 {
		return false
	}
	q.ch = nil
	return true
}

// drain discards whatever is queued.
func (q *queue) drain() {
	q.mu.Lock()
	q.spill, q.spillBytes = nil, 0
	q.mu.Unlock()
	if ch := q.current(); ch != nil {
		for len(ch) > 0 {
			<-ch
		}
	}
}
