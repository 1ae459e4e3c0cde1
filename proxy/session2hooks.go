package proxy

import "fmt"

// The relay hooks of a 2.0 session (relayHooks, relay.go). fromClient
// and fromUpstream are in session2.go.

// start makes the session one of its account's delivery targets and
// prepares its catch-up; it returns the sessions of the same full JID it
// replaces (XEP-0386).
func (v *session2) start(r *relay) []*relay {
	s := r.s
	r.name = fmt.Sprintf("%s#%d", v.jid, s.id)
	r.client.spillMax = clientSpillBytes(s.srv.cfg.Limits)
	var replaced []*relay
	v.acc, replaced = s.srv.registry.join(r, v.catchup != nil)
	if v.catchup != nil {
		v.startCatchup(r)
	}
	return replaced
}

// running starts streaming the catch-up, now that the client leg runs.
func (v *session2) running(r *relay) {
	if v.catchup != nil {
		v.runCatchup(r)
	}
}

// detach keeps a resumable 2.0 session alive when its client vanishes:
// the upstream leg stays open and the relay waits in the resumption cache.
func (v *session2) detach(r *relay) bool {
	ask := false
	if !r.detachClient(func() bool {
		ok, a := v.smDetach()
		ask = a
		return ok
	}) {
		return false
	}
	if ask {
		r.send(&r.up, requestAck)
	}
	v.mu.Lock()
	id := v.smID
	v.mu.Unlock()
	r.s.srv.detached.Put(id, accountOf(v.jid), r)
	r.s.log.Info("2.0 client vanished; session held for resumption", "jid", v.jid)
	return true
}

// clientWrote moves on a catch-up that waits for a client without stream
// management to take a page: for it, a written page is a taken one.
func (v *session2) clientWrote(r *relay) { v.pokeCatchup(r) }

// ended takes the session out of its account and stops its catch-up.
func (v *session2) ended(r *relay) {
	if v.acc != nil {
		r.s.srv.registry.leave(r)
	}
	v.stopCatchup()
	v.stopRecheck()
}
