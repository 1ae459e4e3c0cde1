package proxy

import (
	"time"
)

// send queues b for dst's writer, waiting while the queue is full unless
// dst is never waited on (offer). It reports false once the session is
// over.
func (r *relay) send(dst *relayLeg, b []byte) bool {
	if dst.spillMax > 0 {
		r.offer(dst, b)
		return r.s.ctx.Err() == nil
	}
	ch := dst.out.acquire()
	select {
	case ch <- b:
		dst.out.release()
	case <-r.s.ctx.Done():
		dst.out.release()
		return false
	}
	r.kick(dst)
	return true
}

// writeLoop writes l's queue until it is empty, then exits; gone is the
// attachment it serves (nil for the upstream leg).
func (r *relay) writeLoop(l *relayLeg, gone <-chan struct{}) {
	var batch []byte
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		if r.s.ctx.Err() != nil || gone != nil && isClosed(gone) {
			l.writing.Store(false)
			return
		}
		ch := l.out.current()
		var b []byte
		select {
		case b = <-ch:
		default:
			// Idle for now: linger a moment, as streaming traffic comes in
			// bursts and a new goroutine would grow its stack again.
			if linger == nil {
				linger = time.NewTimer(writerLinger)
			} else {
				linger.Reset(writerLinger)
			}
			select {
			case b = <-ch:
			case <-linger.C:
				// Idle: drop the queue and hand over to the next send,
				// unless one raced in.
				if !l.out.retire() {
					continue
				}
				l.writing.Store(false)
				if l.out.len() == 0 || !l.writing.CompareAndSwap(false, true) {
					return
				}
				continue
			case <-r.s.ctx.Done():
				continue
			case <-gone:
				continue
			}
		}
		if l.spillMax > 0 {
			l.out.refill()
		}
		stop := b == nil
		if !stop && len(ch) > 0 {
			// Several stanzas are waiting: one write (one TLS record).
			batch = append(batch[:0], b...)
			for len(ch) > 0 && len(batch) < maxBatch {
				next := <-ch
				if stop = next == nil; stop {
					break
				}
				batch = append(batch, next...)
			}
			b = batch
			if l.spillMax > 0 {
				l.out.refill()
			}
		}
		if len(b) > 0 && !r.write(l, b) {
			l.writing.Store(false)
			return
		}
		if l.side == clientSide {
			r.hooks.clientWrote(r)
		}
		if stop {
			l.writing.Store(false)
			r.flushed()
			return
		}
		if cap(batch) > maxBatch {
			batch = nil
		}
	}
}

// write writes b to l's peer with the write deadline. It reports whether
// the writer goes on (a dead peer after the end keeps being drained).
func (r *relay) write(l *relayLeg, b []byte) bool {
	if l.dead.Load() {
		return true
	}
	_ = l.conn.SetWriteDeadline(time.Now().Add(time.Duration(r.s.srv.cfg.Timeouts.Write)))
	if _, err := l.conn.Write(b); err != nil {
		if r.writeFailed(l, err) {
			l.dead.Store(true)
			return true
		}
		return false
	}
	r.s.stats.wrote(l.side, len(b))
	return true
}

// flushed counts down the writers that had to flush before the end.
func (r *relay) flushed() {
	if r.flushing.Add(-1) == 0 {
		r.s.cancel(nil)
	}
}
