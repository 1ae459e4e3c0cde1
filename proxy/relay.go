package proxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

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
	// hooks are the session kind's part: classicHooks relays bytes
	// untouched and only watches; a 2.0 session's are its session2.
	hooks relayHooks

	mu       sync.Mutex
	ending   bool // the end of the session has been decided
	closedIn [2]bool
	flushing atomic.Int32 // writers that still flush before the end

	// classicBindSeen: a classic session's bind result has passed (upstream
	// reader only).
	classicBindSeen bool
	// classicAccount is its account (accountOf), for classicUpstream.
	classicAccount string
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

// relayHooks is what a session kind installs on the relay, as
// net/http/httputil.ReverseProxy takes Rewrite, ModifyResponse and
// ErrorHandler: the relay core (this file, relayread.go, relaywrite.go,
// relayend.go, relayresume.go) moves units between the legs, and the
// hooks decide what a unit means. classicHooks (classic.go) relays bytes
// untouched; session2 (session2.go) is the 2.0 front end.
type relayHooks interface {
	// start runs before the relay's goroutines, once the relay exists;
	// it returns the sessions this one replaces, which the core ends.
	start(r *relay) (replaced []*relay)
	// running runs once both legs' goroutines run.
	running(r *relay)
	// fromClient and fromUpstream see every element from that side. They
	// may queue replies themselves (relay.send) and return what to
	// forward to the other side: raw itself, rewritten bytes, or nil.
	fromClient(r *relay, raw []byte) []byte
	fromUpstream(r *relay, raw []byte) []byte
	// detach is asked when the client vanished (a failed read or write,
	// silence, a queue it does not drain): it reports whether the session
	// is kept for resumption, the client leg gone (relay.detachClient).
	detach(r *relay) bool
	// clientWrote runs after each write to the client, on its writer.
	clientWrote(r *relay)
	// ended runs once, when the session is over.
	ended(r *relay)
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
	r.hooks = relayHooks(classicHooks{})
	if s.v2 != nil {
		r.hooks = s.v2
	}
	replaced := r.hooks.start(r)
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
	r.hooks.running(r)
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

func (r *relay) other(l *relayLeg) *relayLeg {
	if l.side == clientSide {
		return &r.up
	}
	return &r.client
}
