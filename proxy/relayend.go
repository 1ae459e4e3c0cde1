package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// claimEnd decides the end of the session once: it returns false when the
// end was already decided elsewhere. n writers must flush before the end.
func (r *relay) claimEnd(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ending {
		return false
	}
	r.ending = true
	r.flushing.Store(int32(n))
	return true
}

// endAfterFlush ends the session once the given legs' writers have written
// everything queued so far.
func (r *relay) endAfterFlush(legs ...*relayLeg) bool {
	live := legs[:0:0]
	for _, l := range legs {
		if l.side == upstreamSide || !r.detached() {
			live = append(live, l)
		}
	}
	if !r.claimEnd(len(live)) {
		return false
	}
	if len(live) == 0 {
		r.s.cancel(nil)
	}
	for _, l := range live {
		r.send(l, nil)
	}
	return true
}

// terminate sends the client a stream error, closes the upstream stream
// when closeUpstream is set (otherwise the upstream socket is just dropped,
// which keeps its stream-management session resumable) and ends. Only the
// first decision to end the session sends anything.
func (r *relay) terminate(se *stream.Error, closeUpstream bool) {
	if r.detached() {
		r.dropDetached()
		return
	}
	n := 1
	if closeUpstream {
		n = 2
	}
	if !r.claimEnd(n) {
		return
	}
	r.s.endedWith(se)
	r.send(&r.client, append(se.AppendXML(nil), stream.CloseTag...))
	r.send(&r.client, nil)
	if closeUpstream {
		r.send(&r.up, []byte(stream.CloseTag))
		r.send(&r.up, nil)
	}
}

// peerClosed forwards a </stream:stream> and decides whether to wait for
// the other side's close.
func (r *relay) peerClosed(src *relayLeg) {
	dst := r.other(src)
	r.send(dst, []byte(stream.CloseTag))
	r.mu.Lock()
	r.closedIn[src.side] = true
	both := r.closedIn[dst.side]
	r.mu.Unlock()
	switch {
	case both:
		r.endAfterFlush(&r.client, &r.up)
	case src.side == upstreamSide:
		// The upstream ended the stream; the client need not answer.
		r.endAfterFlush(&r.client)
	default:
		// Wait for the upstream to close its side, but not forever:
		// then close the client's stream ourselves and drop the upstream.
		t := time.AfterFunc(time.Duration(r.s.srv.cfg.Timeouts.Close), r.closeTimedOut)
		context.AfterFunc(r.s.ctx, func() { t.Stop() })
	}
}

func (r *relay) closeTimedOut() {
	if !r.claimEnd(1) {
		return
	}
	r.s.log.Debug("upstream did not close its stream in time")
	r.send(&r.client, []byte(stream.CloseTag))
	r.send(&r.client, nil)
}

func (r *relay) readFailed(src *relayLeg, err error) {
	if r.s.ctx.Err() != nil {
		return // the session is ending and closed this socket
	}
	if src.side == clientSide && r.detached() {
		return // this client leg is gone; the session waits for a resume
	}
	se := stream.AsError(err)
	if src.side == upstreamSide {
		r.s.log.Info("upstream failed", "err", err)
		text := "the upstream server closed the connection"
		if se != nil {
			text = "the upstream server sent an invalid stream"
		}
		r.terminate(stream.NewError(stream.CondRemoteConnectionFailed, text), false)
		return
	}
	if se == nil && isTimeout(err) {
		if r.tryDetach() {
			return // it did not answer its <r/>: gone, but resumable
		}
		se = stream.NewError(stream.CondConnectionTimeout, "idle for too long")
	}
	if se == nil {
		if r.detached() || r.tryDetach() {
			return // a resumable 2.0 session waits for its client
		}
		// The client vanished without closing its stream: drop the
		// upstream socket too, so the server keeps a resumable
		// stream-management session exactly as if the client had
		// lost its own connection.
		r.s.log.Debug("client vanished", "err", err)
		r.endAfterFlush(&r.up)
		return
	}
	r.s.log.Info("stream error", "condition", se.Condition, "text", se.Text)
	r.terminate(se, true)
}

// writeFailed reports whether the writer must keep draining its queue.
func (r *relay) writeFailed(l *relayLeg, err error) bool {
	r.mu.Lock()
	ending := r.ending
	r.mu.Unlock()
	if ending {
		// The end is already decided; a dead peer here changes nothing
		// and must not cut the other leg's flush short. The writer
		// drains its queue without writing, so that its flush marker
		// still counts and no sender blocks on it.
		return true
	}
	if l.side == clientSide && (r.detached() || r.tryDetach()) {
		return false // the client vanished: the session waits for it
	}
	r.s.log.Info("write failed", "leg", l.side.String(), "err", err)
	r.s.cancel(err)
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
