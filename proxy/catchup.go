package proxy

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// catchup streams a 2.0 session's catch-up (contract section 4) once the
// client has its <success/>: the account archive's messages, then each
// room's, then <synced/>, then the live traffic held meanwhile. It runs
// inside the relay, so the client's acks flow while it runs, and:
//
//   - each archived message is queued for the client as it arrives: the
//     first one reaches the client while later pages are still asked for;
//   - the next page is asked for only once the client has taken all but
//     one page (acked it with stream management, or had it written
//     without): what the proxy holds of a catch-up is bounded by two
//     pages, however long the catch-up (limits.max_catchup caps only the
//     count);
//   - live traffic that arrives meanwhile is held until <synced/>:
//     messages in the account's carbonsim state (which also drops live
//     copies of what the catch-up delivered), other stanzas here;
//   - a page the server does not answer within timeouts.setup_step ends
//     the catch-up with complete='false'; its late answers are dropped.
//
// The first pages were asked for in the Bind2 replay, together with
// everything else; what they brought before <success/> waits in each
// archive's buffer. All state is under mu, and everything it queues for
// the client is queued under mu, so the order holds whoever drives it:
// the upstream reader (results), the client reader (acks), the client's
// writer (drained) or the step timer.
type catchup struct {
	mu sync.Mutex
	// archives in delivery order: the account's, then each room's.
	archives []*archiveSync
	cur      int
	account  *archiveSync // nil without an account <sync/>
	self     string       // the session's full JID
	// seen holds the account archive ids delivered, to drop the copies
	// of them among what came during setup.
	seen    map[string]bool
	pending [][]byte    // what the upstream sent during setup
	held    []catchItem // live non-message stanzas during the catch-up
	// next is a page request that waits until the client takes the page
	// before it; waitingClient says so to the pokes.
	next          []byte
	waitingClient bool
	finished      bool
	// active is false once finished has released everything, for the
	// pokes and inOrder to skip the lock.
	active     atomic.Bool
	window     int // stanzas the client may leave untaken when a page is asked
	maxHeld    int
	heldAtMost int // for the metrics: see noteHeld
	step       time.Duration
	timer      *time.Timer
	expire     func() // runs when the step timer fires
}

// catchItem is one stanza waiting for the client during a catch-up.
type catchItem struct {
	raw []byte
	// upSeq numbers it on the upstream leg's stream management when it
	// arrived in the relay (fromUpstream); the upstream learns it was
	// handled once the client acks it. What arrived during setup is done
	// upstream already: it is archived, or was the setup's own business.
	upSeq        uint32
	fromUpstream bool
}

// catchupSink is where a catch-up goes: the session's client leg, or a
// recorder in tests. Each method is called with the catch-up's lock held,
// in delivery order, and must not block.
type catchupSink interface {
	// stanza queues a stanza for the client, counted by its stream
	// management.
	stanza(it catchItem)
	// element queues a non-stanza element (<synced/>, <r/>).
	element(b []byte)
	// backlog is how many stanzas the client has not taken yet (unacked
	// with stream management, still queued without), and whether it acks.
	backlog() (n int, acks bool)
	// delivered tells the account's delivery state that an archived
	// message reached the session (carbonsim drops its live copies).
	delivered(raw []byte)
	// releaseHeld queues the account's live messages held for the
	// session, in arrival order.
	releaseHeld()
	// attached reports whether the client is there to be sent elements
	// that are not stanzas.
	attached() bool
	// caughtUp reports the account catch-up's size once it is over, and
	// the most archived messages it held at once.
	caughtUp(count, heldAtMost int)
	// recheck asks for a second look at the account archive, after the
	// archive id after, a moment later (recheck.go).
	recheck(after string)
}

// errHoldOverflow ends a session whose catch-up met more live traffic
// than it may hold; the client's next <sync/> recovers from the archive.
var errHoldOverflow = stream.NewError(stream.CondResourceConstraint, "too much live traffic during the catch-up")

// newCatchup takes over the catch-up a Bind2 replay started, or returns
// nil when the client asked for none (no <sync/> and no room joins, so no
// <synced/> either).
func newCatchup(st *setupState, step time.Duration, maxHeld int) *catchup {
	if st.sync == nil && len(st.joins) == 0 {
		return nil
	}
	c := &catchup{account: st.sync, self: st.out.jid, seen: map[string]bool{}, pending: st.out.pending,
		window: syncPage, maxHeld: maxHeld, step: step}
	if st.sync != nil {
		c.archives = append(c.archives, st.sync)
	}
	for _, j := range st.joins {
		if j.catchup != nil && !j.catchup.done {
			c.archives = append(c.archives, j.catchup)
		}
	}
	return c
}

// archiveOf returns the archive a MAM result's queryid belongs to.
func (c *catchup) archiveOf(queryID string) *archiveSync {
	for _, a := range c.archives {
		if a.queryID == queryID {
			return a
		}
	}
	return nil
}

// archiveOfIQ returns the archive whose page an IQ answers.
func (c *catchup) archiveOfIQ(id string) *archiveSync {
	for _, a := range c.archives {
		if strings.HasPrefix(id, a.idPrefix) {
			return a
		}
	}
	return nil
}

// result takes an archived message of one of the catch-up's queries
// (mine); kept says it will be delivered. After the end, late pages are
// taken and dropped (given up, or repeated by the server).
func (c *catchup) result(res mam.Result, it catchItem) (mine, kept bool) {
	a := c.archiveOf(res.QueryID)
	if a == nil {
		return false, false
	}
	if c.finished {
		return true, false
	}
	return true, a.take(res, it, c.self, a == c.account)
}

// fin takes the end of one of the catch-up's pages; it reports false for
// any other IQ.
func (c *catchup) fin(id string, f mam.Fin) bool {
	a := c.archiveOfIQ(id)
	if a == nil {
		return false
	}
	if !c.finished && !a.done {
		a.fin = &f
	}
	return true
}

// hold keeps a live non-message stanza until <synced/>. It reports false
// once the catch-up is over (the stanza goes on at once), and
// errHoldOverflow when there is no room left.
func (c *catchup) hold(it catchItem) (bool, error) {
	if c.finished {
		return false, nil
	}
	if len(c.held) >= c.maxHeld {
		return true, errHoldOverflow
	}
	c.held = append(c.held, it)
	return true, nil
}

// advance queues what the catch-up can deliver now and returns the next
// page request to send upstream, if one is due. Call it after every
// change: a result, a page's end, the client taking what it was sent.
func (c *catchup) advance(sink catchupSink) (request []byte) {
	if c.finished {
		return nil
	}
	if c.waitingClient {
		if !c.clientTookPage(sink) {
			return nil
		}
		c.waitingClient = false
		if c.next != nil {
			request, c.next = c.next, nil
			return request
		}
		// It waited to finish: on to <synced/>.
	}
	for c.cur < len(c.archives) {
		a := c.archives[c.cur]
		c.deliver(sink, a)
		if a.fin == nil {
			return nil // more of this page is coming
		}
		f := *a.fin
		a.fin = nil
		// A page is what the server gave: it may give fewer than asked
		// (Prosody 0.12 caps pages at 50), and the bound is two of its pages.
		c.window, a.pageLen = max(a.pageLen, 1), 0
		if next := a.onFin(f); next != nil {
			if _, acks := sink.backlog(); acks {
				sink.element(requestAck) // so the client's ack moves the window
			}
			if !c.clientTookPage(sink) {
				c.next, c.waitingClient = next, true
				return nil
			}
			return next
		}
		c.cur++
	}
	if !sink.attached() {
		// <synced/> is not a stanza: a detached client would never get
		// it, as the replay on resumption carries stanzas only.
		c.waitingClient = true
		return nil
	}
	c.finish(sink)
	return nil
}

// clientTookPage reports whether the client has taken all but a page of
// what it was sent, so the next page may be asked for.
func (c *catchup) clientTookPage(sink catchupSink) bool {
	n, _ := sink.backlog()
	return n <= c.window
}

// deliver queues an archive's buffered messages.
func (c *catchup) deliver(sink catchupSink, a *archiveSync) {
	for _, it := range a.buf {
		if a == c.account {
			if res, ok := mam.ParseResult(it.raw); ok {
				c.seen[mam.StanzaIDKey(res.ID)] = true
			}
		}
		sink.delivered(it.raw)
		sink.stanza(it)
		a.delivered++
		a.pageLen++
	}
	clear(a.buf)
	a.buf = a.buf[:0]
	c.noteHeld(sink)
}

// noteHeld keeps the most archived messages the catch-up holds at once:
// those the client has not taken, and those buffered for later archives.
func (c *catchup) noteHeld(sink catchupSink) {
	n, _ := sink.backlog()
	for _, a := range c.archives[c.cur:] {
		n += len(a.buf)
	}
	c.heldAtMost = max(c.heldAtMost, n)
}

// giveUp ends a catch-up whose server stopped answering: <synced/> says
// complete='false', and the client pages on by itself.
func (c *catchup) giveUp(sink catchupSink) {
	if c.finished || c.waitingClient {
		return
	}
	if !sink.attached() {
		c.waitingClient = true // finish when the client is back
		return
	}
	for _, a := range c.archives[c.cur:] {
		c.deliver(sink, a) // what did arrive still counts
		a.done, a.complete = true, false
	}
	c.cur = len(c.archives)
	c.finish(sink)
}

// finish writes <synced/> and releases what was held, in the contract's
// order: what came during setup (minus what the catch-up delivered), the
// live stanzas held here, then the account's held messages.
func (c *catchup) finish(sink catchupSink) {
	c.finished = true
	c.stopTimer()
	b := []byte("<synced xmlns='" + ns.XMPP2 + "' last='")
	count, last, complete := 0, "", true
	if a := c.account; a != nil {
		count, last = a.delivered, a.lastID
	}
	for _, a := range c.archives {
		complete = complete && a.complete
	}
	sink.caughtUp(count, c.heldAtMost)
	b = stream.AppendEscaped(b, last)
	b = append(b, "' count='"...)
	b = strconv.AppendInt(b, int64(count), 10)
	b = append(b, "' complete='"...)
	b = strconv.AppendBool(b, complete)
	sink.element(append(b, "'/>"...))
	account, traffic := accountOf(c.self), false
	for _, p := range c.pending {
		if k := mam.DedupKey(p, account); k != "" && c.seen[k] {
			continue // already delivered by the catch-up
		}
		if name, _ := stream.ElementName(p); string(name) == "message" {
			p = entering(p) // live traffic: the entering rules, as in the relay
			traffic = true
		}
		sink.stanza(catchItem{raw: p})
	}
	c.askRecheck(sink, traffic)
	for _, it := range c.held {
		sink.stanza(it)
	}
	c.pending, c.held, c.seen = nil, nil, nil
	sink.releaseHeld()
	c.active.Store(false) // last: inOrder may skip the lock from now on
}

// waitForServer (re)arms the step timer while the catch-up waits for the
// server, and stops it otherwise.
func (c *catchup) waitForServer() {
	if c.finished || c.waitingClient {
		c.stopTimer()
		return
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(c.step, c.expire)
		return
	}
	c.timer.Reset(c.step)
}

func (c *catchup) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

// askRecheck asks for the second look at the account archive (recheck.go)
// after a complete account catch-up around which messages moved: it
// brought some, or some came during setup. An idle account's login costs
// no second archive read.
func (c *catchup) askRecheck(sink catchupSink, traffic bool) {
	a := c.account
	if a == nil || !a.complete || a.delivered == 0 && !traffic {
		return
	}
	after := a.lastID
	if after == "" {
		after = a.after
	}
	sink.recheck(after)
}
