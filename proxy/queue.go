package proxy

import "sync"

// queue is a relay leg's bounded outgoing queue. Its channel exists only
// while the leg has something to write: the first send makes it and the
// writer drops it once idle, so an idle session holds no queue at all.
type queue struct {
	size    int
	mu      sync.Mutex
	ch      chan []byte
	senders int // sends under way on ch
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
	if ch := q.current(); ch != nil {
		return len(ch)
	}
	return 0
}

// retire drops the channel when nothing is queued and no send is under
// way. It reports whether the queue is now empty and channel-less.
func (q *queue) retire() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch != nil && (q.senders > 0 || len(q.ch) > 0) {
		return false
	}
	q.ch = nil
	return true
}

// drain discards whatever is queued.
func (q *queue) drain() {
	if ch := q.current(); ch != nil {
		for len(ch) > 0 {
			<-ch
		}
	}
}
