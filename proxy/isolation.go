package proxy

import (
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// A 2.0 client leg is fed by its own upstream leg and by every sibling
// session of the account (carbonsim's deliveries) and by classic sessions
// of the account (the classic-leg tap). None of them ever waits on it:
// delivering to one device must not stall the account on its slowest
// socket (derp's rule: a full queue is a decision, not a wait). The
// decision, for a client that does not drain what it is sent:
//
//   - a resumable session is detached, as if the client had vanished:
//     everything it has not acked stays in its unacked queue and is
//     replayed when it resumes, and the upstream is not told it got them;
//   - any other 2.0 session is ended with <resource-constraint/>: what it
//     missed is in the archive for its next <sync/>.
//
// The client is "not draining" when its queue's spill (what found the
// channel full) exceeds clientSpillBytes, or when one write does not
// complete within timeouts.write. Either way its siblings flow on.

// clientSpillBytes bounds what may wait for one 2.0 client beyond its
// queue channel: a few megabytes, and always room for a few stanzas of the
// largest size the client may be sent.
func clientSpillBytes(l LimitsConfig) int {
	return max(4<<20, 4*l.MaxStanzaBytes)
}

// offer queues b for a leg that is never waited on; see clientTooSlow.
func (r *relay) offer(dst *relayLeg, b []byte) {
	if b != nil && dst.side == clientSide && r.detached() {
		// Not a stanza (those go through toClient, which keeps them for
		// the replay): a keepalive or an ack meant for a gone client.
		return
	}
	if !dst.out.offer(b, dst.spillMax) {
		r.clientTooSlow()
		return
	}
	r.kick(dst)
}

// clientTooSlow detaches or ends a 2.0 session whose client does not
// drain its queue.
func (r *relay) clientTooSlow() {
	if r.detached() {
		return
	}
	r.s.log.Info("2.0 client does not read what it is sent", "jid", r.s.v2.jid)
	if r.tryDetach() {
		return
	}
	r.terminate(stream.NewError(stream.CondResourceConstraint, "the client does not read its stream"), true)
	// The client is not reading: do not wait a write timeout for it to
	// take the stream error.
	r.s.closeClient()
}

// replaced ends a session that a new session of the same device took
// over (XEP-0386 gives both the same resource, and the server has already
// handed the resource to the new one): its client gets <conflict/>, and a
// detached one leaves the resumption cache at once.
func (r *relay) replaced() {
	v := r.s.v2
	v.mu.Lock()
	id := v.smID
	v.mu.Unlock()
	if id != "" {
		r.s.srv.detached.Take(id, accountOf(v.jid))
	}
	r.s.log.Info("2.0 session replaced by a new session of the same device", "jid", v.jid)
	r.terminate(stream.NewError(stream.CondConflict, "replaced by a new session of the same device"), true)
}

// askGrace is how long a silent 2.0 client has to answer the <r/> it is
// sent at its idle timeout.
const askGrace = 30 * time.Second

// askSilentClient handles a 2.0 client with stream management that was
// silent for the idle timeout: before it is declared gone, it is asked for
// an ack (XEP-0198 section 4), and reading goes on for askGrace. A client
// still there answers, which counts as hearing from it; one that does not
// is gone, and readFailed then detaches it when it is resumable. It
// reports whether reading goes on.
func (r *relay) askSilentClient(src *relayLeg, err error) bool {
	v := r.s.v2
	if src.side != clientSide || v == nil || src.asked || !isTimeout(err) || stream.AsError(err) != nil {
		return false
	}
	if !v.smEnabled() || r.s.ctx.Err() != nil {
		return false
	}
	src.asked = true
	r.s.log.Debug("2.0 client silent; asking it for an ack")
	r.send(&r.client, []byte("<r xmlns='"+ns.SM+"'/>"))
	grace := min(askGrace, src.idle)
	_ = src.conn.SetReadDeadline(time.Now().Add(grace))
	src.idleSet = time.Now()
	return true
}
