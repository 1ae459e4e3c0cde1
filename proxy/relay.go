package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// relay moves stanzas between the two legs of an authenticated session:
// one reader and one writer goroutine per leg, joined by bounded queues.
// A full queue blocks the reader of the other leg, so a slow peer slows its
// sender down through TCP instead of growing memory; a peer that does not
// drain within the write timeout is disconnected.
type relay struct {
	s *session
	// name identifies a 2.0 session in its account (carbonsim, registry):
	// its JID and connection number, since one device's new session and
	// its old one share a JID for a moment.
	name   string
	client relayLeg
	up     relayLeg
	// filter, when set, sees every unit and decides whether it crosses;
	// classic sessions have none and relay bytes untouched.
	filter unitFilter

	mu       sync.Mutex
	ending   bool // the end of the session has been decided
	closedIn [2]bool
	flushing atomic.Int32 // writers that still flush before the end

	// boundSeen: a classic session's bind result has passed (upstream
	// reader only).
	boundSeen bool
	// live counts the relay's goroutines; the last one to end finishes
	// the session (finished then refuses a late resume).
	live     atomic.Int32
	finished bool
	clientWG sync.WaitGroup // the client leg's reader and writer
}

type relayLeg struct {
	side legSide
	conn net.Conn
	fr   *stream.Framer
	park *stream.Parking
	// idleSet is when the reader last moved the idle deadline; heard is
	// set once the peer sent something since.
	idleSet time.Time
	heard   bool
	// batch gathers what the reader forwards from the units that arrived
	// together (coalesce); only the reader touches it.
	batch []byte
	// asked: the peer went silent for the idle timeout and was sent an
	// <r/>; hearing anything from it clears it.
	asked bool
	out   queue // nil item: flush and stop
	// spillMax is 0 for a leg whose senders wait while its queue is full
	// (backpressure through TCP to the one peer that feeds it), and the
	// spill bound in bytes for a 2.0 client leg, which its siblings feed
	// too and which no one ever waits on (see clientTooSlow).
	spillMax int
	idle     time.Duration
	// gone is closed when a 2.0 client leg detaches for resumption; a new
	// one comes with each attachment.
	gone chan struct{}
	// writing is set while this leg's writer runs. Writers exit when the
	// queue is empty and the next send starts one, so an idle session
	// keeps no writer goroutines (nor their stacks).
	writing atomic.Bool
	// dead: the peer failed after the end was decided; queued items are
	// discarded so flush markers still count and no sender blocks.
	dead atomic.Bool
}

const maxBatch = 64 << 10

// writerLinger is how long an idle writer waits for more before it exits.
const writerLinger = 200 * time.Millisecond

// unitFilter is the hook a session kind installs on the relay. It may queue
// replies itself (with relay.send) and returns what to forward: raw itself,
// rewritten bytes, or nil to forward nothing.
type unitFilter interface {
	fromClient(r *relay, raw []byte) []byte
	fromUpstream(r *relay, raw []byte) []byte
}

// startRelay starts the relay's goroutines. It reports false, having
// started nothing, when the session was shut down during the handshake.
func (s *session) startRelay() bool {
	q := s.srv.cfg.QueueSize
	r := &relay{
		s: s,
		client: relayLeg{side: clientSide, conn: s.conn, fr: s.fr, park: stream.NewParking(s.rawConn, s.rec), out: queue{size: q},
			idle: time.Duration(s.srv.cfg.Timeouts.Idle)},
		up: relayLeg{side: upstreamSide, conn: s.up.conn, fr: s.up.fr, park: stream.NewParking(s.up.sock, s.up.rec), out: queue{size: q}},
	}
	_ = s.conn.SetDeadline(time.Time{})
	_ = s.up.conn.SetDeadline(time.Time{})
	var replaced []*relay
	if s.v2 != nil {
		r.filter = s.v2
		r.name = fmt.Sprintf("%s#%d", s.v2.jid, s.id)
		r.client.spillMax = clientSpillBytes(s.srv.cfg.Limits)
		s.v2.acc, replaced = s.srv.registry.join(r, s.v2.catchup != nil)
		if s.v2.catchup != nil {
			s.v2.startCatchup(r)
		}
	}
	s.mu.Lock()
	s.relay = r
	s.mu.Unlock()
	for _, old := range replaced {
		// Ending it may wait on its own queues (its stream error, its
		// upstream close): never on this session's start.
		go old.replaced()
	}
	if s.ctx.Err() != nil { // shutdown raced with the handshake
		s.handshakeFailed(context.Cause(s.ctx))
		return false
	}
	s.openKind = s.kind
	s.srv.metrics.sessionOnline(s.kind, s.listenerName())
	r.startReader(&r.up, &r.client, nil, false)
	r.startClient()
	if s.v2 != nil && s.v2.catchup != nil {
		s.v2.runCatchup(r)
	}
	return true
}

// spawn runs f as one of the relay's goroutines.
func (r *relay) spawn(f func()) {
	r.live.Add(1)
	go func() {
		defer r.goroutineDone()
		f()
	}()
}

func (r *relay) goroutineDone() {
	// Under mu, so that attach, which checks finished and adds itself to
	// live under mu, either sees the relay finished or keeps it alive.
	r.mu.Lock()
	if r.live.Add(-1) != 0 {
		r.mu.Unlock()
		return
	}
	r.finished = true
	r.mu.Unlock()
	r.s.finish()
}

// startClient runs the client leg's reader and writer.
func (r *relay) startClient() {
	r.mu.Lock()
	r.client.gone = make(chan struct{})
	r.mu.Unlock()
	r.clientWG.Add(1)
	r.startReader(&r.client, &r.up, r.clientWG.Done, false)
	r.kick(&r.client) // anything queued before the leg started
}

// kick starts l's writer unless one runs. A detached client leg gets none:
// what is queued for it is replayed from the unacked queue on resume. A
// client leg's writers count in clientWG, so that attach knows when the
// old attachment's writer is gone; detaching closes gone under r.mu, so
// no writer is added after that.
func (r *relay) kick(l *relayLeg) {
	r.mu.Lock()
	gone := l.gone
	if gone != nil && isClosed(gone) || l.out.len() == 0 || !l.writing.CompareAndSwap(false, true) {
		r.mu.Unlock()
		return
	}
	if l.side == clientSide {
		r.clientWG.Add(1)
	}
	r.mu.Unlock()
	r.spawn(func() {
		if l.side == clientSide {
			defer r.clientWG.Done()
		}
		r.writeLoop(l, gone)
	})
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// detached reports whether the client leg is gone, waiting for resumption.
func (r *relay) detached() bool {
	r.mu.Lock()
	gone := r.client.gone
	r.mu.Unlock()
	return gone != nil && isClosed(gone)
}

// tryDetach keeps a resumable 2.0 session alive when its client vanishes:
// the upstream leg stays open and the relay waits in the resumption cache.
func (r *relay) tryDetach() bool {
	v := r.s.v2
	if v == nil {
		return false
	}
	r.mu.Lock()
	ok, ask := false, false
	if !r.ending {
		ok, ask = v.detach()
	}
	if !ok {
		r.mu.Unlock()
		return false
	}
	close(r.client.gone)
	r.mu.Unlock()
	r.s.closeClient()
	if ask {
		r.send(&r.up, requestAck)
	}
	v.mu.Lock()
	id := v.smID
	v.mu.Unlock()
	r.s.srv.detached.Put(id, bareJID(v.jid), r)
	r.s.log.Info("2.0 client vanished; session held for resumption", "jid", v.jid)
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

func (r *relay) other(l *relayLeg) *relayLeg {
	if l.side == clientSide {
		return &r.up
	}
	return &r.client
}

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
	if r.filter == nil {
		if src.side == upstreamSide {
			r.classicUpstream(u.Raw)
		} else {
			r.classicClient(u.Raw)
		}
		return u.Raw
	}
	if src.side == clientSide {
		return r.filter.fromClient(r, u.Raw)
	}
	return r.filter.fromUpstream(r, u.Raw)
}

// classicUpstream watches, without changing a byte, what a classic
// session receives: its bind result, then bare-JID messages for an account
// that also has 2.0 sessions online. The 1.0 server gives those only to
// the highest-priority resource and carbons only some types, so the proxy
// hands them to the account's exactly-once rules, which deliver them to
// every 2.0 session that has not had them (contract section 5).
func (r *relay) classicUpstream(raw []byte) {
	if !r.boundSeen {
		r.sniffClassicBind(raw)
		return
	}
	if !bytes.HasPrefix(raw, []byte("<message")) {
		return
	}
	jid := r.s.bound()
	bare := bareJID(jid)
	acc := r.s.srv.registry.online(bare)
	if acc == nil {
		return
	}
	if !stream.AttrEqualFold(raw, "to", bare) {
		return
	}
	acc.deliverMu.Lock() // see account.deliverMu
	defer acc.deliverMu.Unlock()
	ds, _ := acc.observe(jid, raw)
	for _, d := range ds {
		d.to.deliver(entering(d.stanza))
	}
}

// sniffClassicBind registers the JID a classic session binds, so 2.0
// clients' messages to it are not bounced (contract section 5). Only the
// upstream reader calls it, until the bind result has passed.
func (r *relay) sniffClassicBind(raw []byte) {
	if !bytes.HasPrefix(raw, []byte("<iq")) || !bytes.Contains(raw, []byte(ns.Bind)) {
		return
	}
	if jid, err := boundJID(raw); err == nil {
		r.boundSeen = true
		r.s.setBound(jid)
	}
}

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
		if l.side == clientSide && r.s.v2 != nil {
			r.s.v2.pokeCatchup(r) // without SM, a written page is a taken one
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
