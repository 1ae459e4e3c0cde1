package proxy

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// This file wires a session's catch-up (catchup.go) to its relay.

// relaySink is a catch-up's way to the session's client leg.
type relaySink struct {
	r *relay
	v *session2
}

func (s relaySink) stanza(it catchItem) {
	if it.fromUpstream {
		s.v.toClientFromUpstream(s.r, it.raw, it.upSeq)
		return
	}
	s.v.toClient(s.r, it.raw)
}

func (s relaySink) element(b []byte) { s.r.send(&s.r.client, b) }

func (s relaySink) attached() bool { return !s.r.detached() }

func (s relaySink) caughtUp(count, heldAtMost int) {
	if s.v.catchup.account != nil {
		s.r.s.srv.metrics.caughtUp(count)
	}
	s.r.s.srv.metrics.catchupHeldAtMost(heldAtMost)
}

func (s relaySink) recheck(after string) { s.v.scheduleRecheck(s.r, after) }

func (s relaySink) backlog() (int, bool) {
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	if s.v.sm.State() != sm.StateOff {
		return s.v.sm.Counts().Unacked, true
	}
	return s.r.client.out.len(), false
}

func (s relaySink) delivered(raw []byte) {
	if s.v.acc != nil {
		_, _ = s.v.acc.observe(s.r.name, raw)
	}
}

func (s relaySink) releaseHeld() {
	if s.v.acc == nil {
		return
	}
	for _, d := range s.v.acc.synced(s.r) {
		s.v.toClient(s.r, entering(d))
	}
}

// startCatchup prepares the catch-up before the relay's readers run: from
// then on a page's end or the client's ack may drive it.
func (v *session2) startCatchup(r *relay) {
	c := v.catchup
	c.expire = func() {
		c.mu.Lock()
		if !c.finished && !c.waitingClient {
			r.s.log.Warn("catch-up page not answered in time; synced as incomplete")
		}
		c.giveUp(relaySink{r, v})
		c.mu.Unlock()
	}
	c.active.Store(true)
}

// runCatchup delivers what the setup already read and asks for what is
// due; call it once the client leg runs.
func (v *session2) runCatchup(r *relay) { v.driveCatchup(r) }

// driveCatchup moves the catch-up on after a change, and sends the page
// request that is due outside the catch-up's lock: sending upstream may
// wait on the upstream leg, and deliveries to this session wait on the
// lock (inOrder).
func (v *session2) driveCatchup(r *relay) {
	c := v.catchup
	c.mu.Lock()
	req := c.advance(relaySink{r, v})
	c.waitForServer()
	c.mu.Unlock()
	if req != nil {
		v.sendOwnUpstream(r, req)
	}
}

// pokeCatchup tells a catch-up that waits for the client to take a page
// that it may have: the client acked, or its writer wrote.
func (v *session2) pokeCatchup(r *relay) {
	if c := v.catchup; c != nil && c.active.Load() {
		v.driveCatchup(r)
	}
}

// stopCatchup stops the step timer of a session that ends.
func (v *session2) stopCatchup() {
	if c := v.catchup; c != nil {
		c.mu.Lock()
		c.stopTimer()
		c.finished = true
		c.active.Store(false)
		c.mu.Unlock()
	}
}

// catchUpTakes gives the catch-up what it owns among the upstream's
// stanzas: its archived messages and page ends, and, until <synced/>, the
// live stanzas other than messages (messages wait in the account's
// carbonsim state). It reports whether it took raw.
func (v *session2) catchUpTakes(r *relay, name, raw []byte, upSeq uint32) bool {
	c := v.catchup
	switch string(name) {
	case "message":
		if !bytes.Contains(raw, []byte(ns.MAM)) {
			return false
		}
		res, ok := mam.ParseResult(raw)
		if !ok {
			return false
		}
		c.mu.Lock()
		mine, kept := c.result(res, catchItem{raw: bytes.Clone(raw), upSeq: upSeq, fromUpstream: true})
		c.mu.Unlock()
		if !mine {
			return false
		}
		if !kept {
			v.upstreamHandled(upSeq)
		}
	case "iq":
		start, err := stream.StartOf(raw)
		if err != nil {
			return false
		}
		if typ := stream.StartAttr(start, "type"); typ != "result" && typ != "error" {
			return v.holdLive(r, raw, upSeq)
		}
		c.mu.Lock()
		mine := c.fin(stream.StartAttr(start, "id"), mam.ParseFin(raw))
		c.mu.Unlock()
		if !mine {
			return v.holdLive(r, raw, upSeq)
		}
		v.upstreamHandled(upSeq)
	default:
		return v.holdLive(r, raw, upSeq)
	}
	v.driveCatchup(r)
	return true
}

// holdLive keeps a live stanza until <synced/>; it reports false once the
// catch-up is over.
func (v *session2) holdLive(r *relay, raw []byte, upSeq uint32) bool {
	c := v.catchup
	c.mu.Lock()
	held, err := c.hold(catchItem{raw: bytes.Clone(raw), upSeq: upSeq, fromUpstream: true})
	c.mu.Unlock()
	if err != nil {
		r.s.log.Warn("live traffic overflowed the catch-up hold", "jid", v.jid)
		r.terminate(errHoldOverflow, true)
	}
	return held
}

// inOrder makes a live delivery to the client wait while the catch-up
// releases what it held, so nothing newer overtakes it; it returns the
// unlock. Without a catch-up it is free.
func (v *session2) inOrder() func() {
	c := v.catchup
	if c == nil || !c.active.Load() {
		return func() {}
	}
	c.mu.Lock()
	return c.mu.Unlock
}
