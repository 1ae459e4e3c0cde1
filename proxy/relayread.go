package proxy

import (
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// startReader runs src's reader; done, if set, runs once the leg's reading
// is over. Each time the leg goes idle, the reader hands over to a fresh
// goroutine that parks until input comes: the stack the last burst grew
// is freed at once (a parked goroutine's stack never shrinks below 4 KiB),
// so an idle leg costs one minimal stack and no buffer.
func (r *relay) startReader(src, dst *relayLeg, done func(), idle bool) {
	r.spawn(func() {
		if idle {
			src.park.Park(src.fr)
		}
		if r.readLoop(src, dst, idle) {
			r.startReader(src, dst, done, true)
			return
		}
		if done != nil {
			done()
		}
	})
}

// readLoop relays what src reads to dst. It returns true when src has gone
// idle and its reader should park, false when reading is over. woke: the
// socket just turned readable, so the first read needs no look first.
func (r *relay) readLoop(src, dst *relayLeg, woke bool) (idle bool) {
	// Moving the deadline costs a timer update: do it at most once per
	// second (a quarter of a shorter idle timeout) rather than per stanza.
	refresh := min(time.Second, src.idle/4)
	for {
		if src.idle > 0 && (src.idleSet.IsZero() || src.heard) {
			if now := time.Now(); now.Sub(src.idleSet) > refresh {
				_ = src.conn.SetReadDeadline(now.Add(src.idle))
				src.idleSet, src.heard = now, false
			}
		}
		if !woke && src.park.Idle(src.fr) {
			return true
		}
		woke = false
		u, err := src.fr.Next()
		if err != nil {
			if r.askSilentClient(src, err) {
				continue
			}
			r.readFailed(src, err)
			return false
		}
		if u.Kind == stream.UnitStreamClose {
			r.peerClosed(src)
			return false
		}
		src.heard = true
		if src.asked { // it answered: the full idle timeout again
			src.asked, src.idleSet = false, time.Time{}
		}
		out := r.toForward(src, u)
		src.batch = append(src.batch, out...) // a copy: out may be the framer's
		last, err := r.coalesce(src)
		if !r.flushBatch(src) {
			return false
		}
		switch {
		case err != nil:
			r.readFailed(src, err)
			return false
		case last == stream.UnitStreamClose:
			r.peerClosed(src)
			return false
		}
	}
}

// maxCoalesce bounds one queued item, so the queue holds at most
// QueueSize x maxCoalesce bytes plus one oversized stanza.
const maxCoalesce = 16 << 10

// coalesce appends to src.batch every further unit that is already
// complete in the read buffer, so stanzas that arrived together cost one
// queue hand-off and one write (one TLS record) instead of one each. It
// never waits for input.
func (r *relay) coalesce(src *relayLeg) (stream.UnitKind, error) {
	for len(src.batch) < maxCoalesce {
		u, ok, err := src.fr.TryNext()
		if err != nil || !ok {
			return stream.UnitElement, err
		}
		if u.Kind == stream.UnitStreamClose {
			return stream.UnitStreamClose, nil
		}
		out := r.toForward(src, u) // before reading src.batch: toForward may flush it
		src.batch = append(src.batch, out...)
	}
	return stream.UnitElement, nil
}

// flushBatch queues what src's reader has gathered for the other leg. A
// filter that sends something of its own to the other leg flushes first,
// so that it goes after what came before it. It reports false once the
// session is over.
func (r *relay) flushBatch(src *relayLeg) bool {
	if len(src.batch) == 0 {
		return true
	}
	b := src.batch
	src.batch = nil // the queue owns b now
	return r.send(r.other(src), b)
}

// toForward runs the session's filter on a unit from src and returns what
// to forward to the other leg; nothing when it is empty.
func (r *relay) toForward(src *relayLeg, u stream.Unit) []byte {
	if u.Kind != stream.UnitElement {
		return u.Raw
	}
	// Counted once the filter has run: a 2.0 stanza is then on its way.
	defer r.s.srv.metrics.stanza(src.side, u.Raw)
	if src.side == clientSide {
		return r.hooks.fromClient(r, u.Raw)
	}
	return r.hooks.fromUpstream(r, u.Raw)
}
