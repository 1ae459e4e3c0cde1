package proxy

import (
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// detached reports whether the client leg is gone, waiting for resumption.
func (r *relay) detached() bool {
	r.mu.Lock()
	gone := r.client.gone
	r.mu.Unlock()
	return gone != nil && isClosed(gone)
}

// tryDetach keeps a resumable 2.0 session alive when its client vanishes:
// the upstream leg stays open and the relay waits in the resumption cache.
func (r *relay) tryDetach() bool { return r.hooks.detach(r) }

// detachClient marks the client leg gone, unless the end is decided or
// keep (called under r.mu) refuses, and closes the client connection; the
// upstream leg runs on. It reports whether the leg was detached.
func (r *relay) detachClient(keep func() bool) bool {
	r.mu.Lock()
	if r.ending || !keep() {
		r.mu.Unlock()
		return false
	}
	close(r.client.gone)
	r.mu.Unlock()
	r.s.closeClient()
	return true
}

// attach gives a detached session the connection of resumed, the new
// session of a client that resumed it: the unacked stanzas are replayed
// after the greeting, then the client leg runs again. It reports false when the session can no longer resume.
func (r *relay) attach(resumed *session, h uint32, success func(*session2, []byte) []byte) bool {
	r.clientWG.Wait() // the old client leg's reader and writer are gone
	r.client.dead.Store(false)
	r.mu.Lock()
	over := r.ending || r.finished
	if !over {
		// The relay cannot finish while the new connection is swapped
		// in: a finish in between would close the old connection only,
		// and the new one would never be closed.
		r.live.Add(1)
	}
	r.mu.Unlock()
	if over {
		return false
	}
	defer r.goroutineDone()
	// Anything still queued for the old connection is in unacked and
	// comes again in the greeting; nothing new is queued while detached.
	r.client.out.drain()
	v := r.s.v2
	res, ok := v.resume(r, h)
	if !ok {
		return false
	}
	greeting := success(v, sm.AppendResumed(nil, v.smID, res.H))
	for _, st := range res.Replay {
		greeting = append(greeting, st.Raw...)
	}
	if res.AskClient {
		greeting = append(greeting, requestAck...)
	}
	s := r.s
	s.mu.Lock()
	s.rawConn, s.conn, s.rec, s.fr = resumed.rawConn, resumed.conn, resumed.rec, resumed.fr
	s.mu.Unlock()
	r.client.conn, r.client.fr, r.client.park = resumed.conn, resumed.fr, stream.NewParking(resumed.rawConn, resumed.rec)
	// What the new connection reads counts in this session's end line.
	resumed.fr.CountInto(&s.stats.fromClient)
	_ = resumed.writeClient(greeting) // a failure shows up in the new writer
	r.startClient()
	v.pokeCatchup(r) // a catch-up that waited for the client to come back
	return true
}

// dropDetached ends a detached session: its upstream stream is closed
// without acking what the client never acked, so the server's own offline
// and bounce handling takes over (contract section 7).
func (r *relay) dropDetached() {
	if !r.claimEnd(1) {
		return
	}
	r.s.log.Info("resumption window over; closing the upstream session")
	r.send(&r.up, []byte(stream.CloseTag))
	r.send(&r.up, nil)
}

// endBeforeRebind ends a detached session whose resumption failed, and
// waits, at most d, until the server has closed its side of the upstream
// stream. The client's fresh bind of the same resource comes next, and
// ejabberd replaces a session asynchronously: a message routed to the old
// session in between would be archived after the new catch-up's query,
// left unacked and dropped with it (seen end to end). Once the server has
// closed, what the old session never acked is archived before the new
// query and comes in the catch-up.
func (r *relay) endBeforeRebind(d time.Duration) {
	if v := r.s.v2; v != nil {
		// Unavailable first: the account's bare-JID traffic then goes to
		// offline storage and the archive, which the fresh bind reads,
		// instead of into a session that is closing. ejabberd was seen
		// to lose, neither archived nor stored offline, a chat routed to
		// the old session while it closed: 4 runs in 100 of
		// TestFault2BadInputGetsAClearErrorAndLosesNothing's refused
		// resume, none in 100 with this presence.
		v.sendOwnUpstream(r, []byte("<presence type='unavailable'/>"))
	}
	// The server answers with its own </stream:stream>; peerClosed then
	// ends the relay, whose client leg is gone.
	r.send(&r.up, []byte(stream.CloseTag))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.s.ctx.Done():
	case <-t.C:
	}
	r.dropDetached() // past d: close without waiting
}
