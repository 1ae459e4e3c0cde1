//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// The fault tests of issue 9: the ways a multi-device account lives in the
// field (a device stops reading, a device logs in again, a device vanishes
// and resumes). Each one numbers the messages it sends and counts, per
// receiving session, how many copies of each number arrived: every number
// exactly once, none lost, none duplicated (contract sections 4 and 7).
//
// The tests wait for events (a message arrived, <bound/> or <resumed/>,
// a stream ended), never for a while. Deadlines only turn a hang into a
// failure that says how far the counts got.

// seriesWait bounds the wait for a series of small chats, which arrives in
// well under a second when nothing is wrong.
const seriesWait = 20 * time.Second

// seqBodyRE finds the numbered bodies of the fault tests: MARKER SEQ, then
// padding. A MAM result or a carbon carries its message's body inside.
var seqBodyRE = regexp.MustCompile(`<body>((?:fault|ctl)-[0-9a-f]{16}) (\d+)[ <]`)

// device is one client of the account under test, read on a goroutine of
// its own from the moment it is watched, as a real device reads its socket.
// It answers the proxy's <r/> with its h (harness.Client does that).
type device struct {
	name string
	c    *harness.Client

	mu sync.Mutex
	// copies counts, per marker and sequence number, the copies received.
	copies map[string]map[int]int
	// streamError is the first <stream:error/> received.
	streamError []byte
	// err is why reading stopped, once it has.
	err error
	// h is the client's XEP-0198 h: the stanzas it has read.
	h uint32
	// others are the elements other than messages, in order (nonzas,
	// presences, IQs, the stream error); see observe.
	others [][]byte
	// lastArchiveID is the last archive id of the account seen.
	lastArchiveID string
	// account, when set (watchArchive, a 2.0 device), is the bare JID
	// whose archive ids are followed. unmarked keeps the live copies of
	// 1.0 messages that came without <xmpp-1/> (contract section 6);
	// synced is the first <synced/>.
	account  string
	unmarked [][]byte
	synced   []byte
	// changed is closed and replaced whenever something is counted or
	// reading stops.
	changed chan struct{}
	done    chan struct{}
}

// watch starts reading c; the test's cleanup closes it and waits for the
// reader.
func watch(t *testing.T, name string, c *harness.Client) *device {
	t.Helper()
	d := &device{name: name, c: c, copies: map[string]map[int]int{}, changed: make(chan struct{}), done: make(chan struct{})}
	go d.read()
	t.Cleanup(d.stop)
	return d
}

func (d *device) read() {
	defer close(d.done)
	for {
		el, err := d.c.Next()
		d.mu.Lock()
		if err != nil {
			d.err = err
			d.notify()
			d.mu.Unlock()
			return
		}
		if d.streamError == nil && bytes.HasPrefix(el, []byte("<stream:error")) {
			d.streamError = el
		}
		d.observe(el)
		if d.account != "" {
			if id := archiveIDIn(el, d.account); id != "" {
				d.lastArchiveID = id
			}
			if unmarked1(el) {
				d.unmarked = append(d.unmarked, el)
			}
			if d.synced == nil && bytes.HasPrefix(el, []byte("<synced")) {
				d.synced = el
			}
		}
		for _, m := range seqBodyRE.FindAllSubmatch(el, -1) {
			seq, _ := strconv.Atoi(string(m[2]))
			marker := string(m[1])
			if d.copies[marker] == nil {
				d.copies[marker] = map[int]int{}
			}
			d.copies[marker][seq]++
		}
		d.notify()
		d.mu.Unlock()
	}
}

// notify wakes the waiters; called with d.mu held.
func (d *device) notify() {
	close(d.changed)
	d.changed = make(chan struct{})
}

func (d *device) stop() {
	_ = d.c.Close()
	<-d.done
}

// waitUntil waits until cond (called with d.mu held) holds, reading stops,
// or ctx ends, and reports whether cond held.
func (d *device) waitUntil(ctx context.Context, cond func() bool) bool {
	return waitChanged(ctx, func() (bool, <-chan struct{}, bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return cond(), d.changed, d.err != nil
	})
}

// waitChanged is the wait of the tests' socket readers (device, peer):
// look reports, under the reader's lock, whether the condition holds, the
// channel the next change closes, and whether reading has stopped. It
// reports whether the condition held before reading stopped or ctx ended.
func waitChanged(ctx context.Context, look func() (ok bool, changed <-chan struct{}, over bool)) bool {
	for {
		ok, changed, over := look()
		if ok {
			return true
		}
		if over {
			return false
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// waitAll waits until every number 1..n of marker has arrived at least once.
func (d *device) waitAll(ctx context.Context, marker string, n int) bool {
	return d.waitUntil(ctx, func() bool {
		for seq := 1; seq <= n; seq++ {
			if d.copies[marker][seq] == 0 {
				return false
			}
		}
		return true
	})
}

// ended waits until the stream ends.
func (d *device) ended(ctx context.Context) bool {
	return d.waitUntil(ctx, func() bool { return d.err != nil })
}

// gotStreamError reports whether a <stream:error/> arrived.
func (d *device) gotStreamError() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.streamError != nil
}

// state describes the stream: open, or why it ended.
func (d *device) state() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.streamError != nil:
		return "ended with " + string(d.streamError)
	case errors.Is(d.err, harness.ErrStreamClosed):
		return "ended without a stream error"
	case d.err != nil:
		return "ended: " + d.err.Error()
	}
	return "open"
}

// tally is what one session received of a numbered series.
type tally struct {
	who                                 string
	sent, got, copies, lost, dup, stray int
	// lostSeqs and dupSeqs are the first numbers lost or duplicated.
	lostSeqs, dupSeqs []int
}

func (c tally) String() string {
	s := fmt.Sprintf("%s: sent %d, received %d (%d copies), lost %d, duplicated %d", c.who, c.sent, c.got, c.copies, c.lost, c.dup)
	if c.stray > 0 {
		s += fmt.Sprintf(", %d copies of numbers never sent", c.stray)
	}
	if len(c.lostSeqs) > 0 {
		s += fmt.Sprintf("; lost %s", ranges(c.lostSeqs))
	}
	if len(c.dupSeqs) > 0 {
		s += fmt.Sprintf("; duplicated %s", ranges(c.dupSeqs))
	}
	return s
}

// count tallies what d received of marker's numbers 1..sent.
func (d *device) count(marker string, sent int) tally {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := tally{who: d.name, sent: sent}
	for seq := 1; seq <= sent; seq++ {
		switch n := d.copies[marker][seq]; {
		case n == 0:
			c.lost++
			c.lostSeqs = append(c.lostSeqs, seq)
		default:
			c.got++
			c.dup += n - 1
			if n > 1 {
				c.dupSeqs = append(c.dupSeqs, seq)
			}
		}
	}
	for seq, n := range d.copies[marker] {
		c.copies += n
		if seq < 1 || seq > sent {
			c.stray += n
		}
	}
	return c
}

// ranges writes ascending numbers as 1-5,7,9-12.
func ranges(seqs []int) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		} else {
			fmt.Fprintf(&b, "%d", seqs[i])
		}
		i = j + 1
	}
	return b.String()
}

// exactlyOnce logs the counts and fails the test unless every number
// arrived exactly once.
func exactlyOnce(t *testing.T, c tally) {
	t.Helper()
	t.Log(c)
	if c.lost != 0 || c.dup != 0 || c.stray != 0 {
		t.Errorf("not exactly once: %s", c)
	}
}

// numbered is the stanza for number seq of marker: a message of type typ
// whose body is "MARKER SEQ " and then padding up to size bytes.
func numbered(to, typ, marker string, seq, size int) string {
	body := fmt.Sprintf("%s %d ", marker, seq)
	if pad := size - len(body); pad > 0 {
		body += strings.Repeat("x", pad)
	}
	return fmt.Sprintf("<message to='%s' type='%s' id='%s-%d'><body>%s</body></message>", to, typ, marker, seq, body)
}

// sendNumbered writes numbers from..to of marker to the addresses to(seq)
// gives, and reports how many it wrote; writes give up at ctx's deadline.
func sendNumbered(ctx context.Context, c *harness.Client, to func(seq int) string, typ, marker string, from, last, size int) (int, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.Conn.SetWriteDeadline(dl)
		defer c.Conn.SetWriteDeadline(time.Time{})
	}
	for seq := from; seq <= last; seq++ {
		if err := c.Send(numbered(to(seq), typ, marker, seq, size)); err != nil {
			return seq - from, err
		}
	}
	return last - from + 1, nil
}

// settle sends one control chat to the bare JID after everything else and
// waits until each device has it: whatever came twice has come by then.
// It reports the devices that never got it.
func settle(ctx context.Context, t *testing.T, bob *harness.Client, account string, devices ...*device) {
	t.Helper()
	control := "ctl-" + harness.NewID()
	send(t, bob, numbered(account, "chat", control, 1, 0))
	for _, d := range devices {
		if !d.waitAll(ctx, control, 1) {
			t.Errorf("%s never got the control message sent after the series (%s), so its duplicate count may be short", d.name, d.state())
		}
	}
}

// online2 is the Bind2 request of a 2.0 device that is online with
// resumable stream management; extra goes inside <bind/>.
func online2(tag, extra string) string {
	return "<bind xmlns='urn:xmpp:bind:0'><tag>" + tag + "</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>" +
		"<presence xmlns='jabber:client'/>" + extra + "</bind>"
}

// deviceLogin logs a 2.0 device in with a user-agent id and inline, over
// login's defaults.
func deviceLogin(ua, inline string, more ...func(*harness.Login)) func(*harness.Login) {
	return func(l *harness.Login) {
		l.SASL2, l.UserAgentID, l.Inline = true, ua, inline
		for _, m := range more {
			m(l)
		}
	}
}

// syncAfter asks a fresh bind's catch-up for everything after the archive
// id a device saw last; with no id (an empty archive) the last hour.
func syncAfter(id string) string {
	if id == "" {
		return "<sync xmlns='urn:xmpp:xmpp2:0' within='3600'/>"
	}
	return "<sync xmlns='urn:xmpp:xmpp2:0' after='" + id + "'/>"
}

// archiveEndIn returns the archive's last id from a <bound/>'s metadata.
func archiveEndIn(success []byte) string {
	if m := endIDRE.FindSubmatch(success); m != nil {
		return string(m[1])
	}
	return ""
}

// comeBack logs a vanished device in again the way a mobile client does:
// one request that resumes the old session if the proxy still holds it,
// and otherwise binds afresh (same tag and user-agent id) with a catch-up
// after the last archive id it saw (contract section 3). It reports
// whether the session was resumed.
func comeBack(t *testing.T, e *env, user, tag, ua, previd string, h uint32, lastSeen string) (*harness.Client, bool) {
	t.Helper()
	c := e.login(t, user, deviceLogin(ua, fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h)+online2(tag, syncAfter(lastSeen))))
	resumed := contains(c.Success, "<resumed xmlns='urn:xmpp:sm:3'")
	if resumed {
		// XEP-0198: the resumed stream's h goes on from the old one's.
		c.Received = h
	}
	return c, resumed
}

func smID(t *testing.T, c *harness.Client) string {
	t.Helper()
	m := smIDRE.FindSubmatch(c.Success)
	if m == nil {
		t.Fatalf("no resumable SM in <success/>: %s", c.Success)
	}
	return string(m[1])
}

// how says how a device came back, for the logs.
func how(resumed bool) string {
	if resumed {
		return "resumed"
	}
	return "fresh bind with <sync after/>"
}

// TestFaultASiblingThatStopsReadingDoesNotStallTheAccount: issue 9, seen 1.
// alice has two 2.0 sessions; one stops reading its socket after setup (a
// small receive buffer, so its TCP window closes soon). bob sends 300
// bare-JID chats of 30 KB. The proxy's write timeout is 10 minutes and the
// test gives the reading session 60 s: it gets all 300 only if delivering
// to it never waits on the stalled socket. Then the stalled device loses its
// connection (RST) and comes back: resumed, it gets every message it never
// acked; bound afresh with <sync after/>, the catch-up brings them. Either
// way each of the 300 exactly once.
func TestFaultASiblingThatStopsReadingDoesNotStallTheAccount(t *testing.T) {
	const (
		n      = 300
		size   = 30 << 10
		phase1 = 60 * time.Second // the reading session's deadline
		phase2 = 60 * time.Second // the comeback's deadline
	)
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv, func(c *proxy.Config) { c.Timeouts.Write = proxy.Duration(10 * time.Minute) })
		account := "alice@" + domain
		id := harness.NewID()
		bob := e.login(t, "bob")
		reader := watch(t, "the reading session", e.login(t, "alice", deviceLogin("reader-"+id, online2("reader", ""))))
		// One chat first, so the archive has an end the stalled device
		// can sync after, and both legs are known to flow.
		primer := "fault-" + harness.NewID()
		send(t, bob, numbered(account, "chat", primer, 1, 0))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if !reader.waitAll(ctx, primer, 1) {
			t.Fatalf("the reading session never got a first chat (%s)", reader.state())
		}
		stalledUA := "stalled-" + id
		stalled := e.login(t, "alice", deviceLogin(stalledUA, online2("stalled", ""), func(l *harness.Login) { l.ReadBuffer = 4096 }))
		previd, lastSeen := smID(t, stalled), archiveEndIn(stalled.Success)
		// From here on the stalled device reads nothing: its h stays at
		// what it read during login.

		marker := "fault-" + harness.NewID()
		ctx1, cancel1 := context.WithTimeout(context.Background(), phase1)
		defer cancel1()
		ctxAll, cancelAll := context.WithTimeout(context.Background(), phase1+phase2)
		defer cancelAll()
		type result struct {
			n   int
			err error
		}
		sent := make(chan result, 1)
		go func() {
			k, err := sendNumbered(ctxAll, bob, func(int) string { return account }, "chat", marker, 1, n, size)
			sent <- result{k, err}
		}()
		if !reader.waitAll(ctx1, marker, n) {
			t.Errorf("while its sibling did not read, by the test's %v deadline (the proxy's write timeout is 10 min, "+
				"so delivery to the reader waited on the stalled socket): %s; the reader's stream is %s",
				phase1, reader.count(marker, n), reader.state())
		} else {
			t.Logf("while its sibling did not read: %s", reader.count(marker, n))
		}

		// The stalled device loses its connection and comes back.
		_ = stalled.Reset()
		again, resumed := comeBack(t, e, "alice", "stalled", stalledUA, previd, stalled.Received, lastSeen)
		t.Logf("the stalled device came back: %s (h=%d)", how(resumed), stalled.Received)
		back := watch(t, "the stalled device ("+how(resumed)+")", again)
		okBack := back.waitAll(ctxAll, marker, n)
		okReader := reader.waitAll(ctxAll, marker, n)
		r := <-sent // its writes give up at ctxAll's deadline
		if r.err != nil {
			t.Errorf("bob wrote %d of %d: %v", r.n, n, r.err)
		}
		if okBack && okReader {
			settle(ctxAll, t, bob, account, reader, back)
		} else {
			t.Errorf("by the end of the test: %s (%s); %s (%s)", reader.count(marker, r.n), reader.state(), back.count(marker, r.n), back.state())
		}
		exactlyOnce(t, reader.count(marker, r.n))
		exactlyOnce(t, back.count(marker, r.n))
	})
}

// TestFaultReplacementByUserAgentIDWhileMessagesFlow: issue 9, seen 2.
// alice's device, online with chats flowing to it, logs in again with the
// same user-agent id (so the same resource). The old session is ended; bob
// sends N chats to the bare JID and N to the resource, and the new session
// gets all 2N exactly once, the old none.
//
// The registry kept sessions by full JID, so whether the old session's
// teardown removed the new one depended on which came first. The second
// case fixes the order: the old device does not read while it is replaced
// (its socket full of earlier chats, so the proxy cannot finish writing its
// end; a classic resource connected to the server directly shows when
// those chats have all been delivered), and reads again once the new
// session is online; only then, once the old stream has ended, does bob
// send.
func TestFaultReplacementByUserAgentIDWhileMessagesFlow(t *testing.T) {
	const n = 25
	tests := []struct {
		name string
		// warm headlines of warmSize bytes flow to the old session
		// first: headlines, which neither server archives, go to every
		// available resource, and cost the servers little.
		warm, warmSize int
		// readsLate: the old device reads nothing from the warm-up on
		// until the new session is online, and bob waits for the old
		// stream's end.
		readsLate bool
	}{
		{name: "the old device is reading", warm: 5},
		// 9 MB: more than the proxy's socket and queue toward the old
		// device take (the first test's reader stalled after about 160).
		{name: "the old device reads its full socket after the new one is online", warm: 300, warmSize: 30 << 10, readsLate: true},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e := startProxy(t, srv)
				account := "alice@" + domain
				ua := "phone-" + harness.NewID()
				bob := e.login(t, "bob")
				// bob reads his socket, as a real client does: when the old
				// session ends, ejabberd bounces its unacked warm-up back
				// to him (9 MB), and a bob who never reads would stall his
				// own stream, and so his series, behind it.
				watch(t, "bob", bob)
				// The warm-up has a minute; the series, sent once the
				// new session is online, has seriesWait.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				first := e.login(t, "alice", deviceLogin(ua, online2("phone", ""), func(l *harness.Login) {
					if tc.readsLate {
						l.ReadBuffer = 4096
					}
				}))
				// Who shows that the warm-up chats have been delivered: the
				// old session itself, or, when it does not read, a classic
				// resource of alice connected to the server directly.
				var old, observer *device
				if tc.readsLate {
					direct := e.login(t, "alice", directTo(srv))
					goOnline(t, direct)
					observer = watch(t, "a classic resource of alice connected to the server directly", direct)
				} else {
					old = watch(t, "the old session", first)
					observer = old
				}
				warm := "fault-" + harness.NewID()
				if _, err := sendNumbered(ctx, bob, func(int) string { return account }, "headline", warm, 1, tc.warm, tc.warmSize); err != nil {
					t.Fatal(err)
				}
				if !observer.waitAll(ctx, warm, tc.warm) {
					t.Fatalf("bob's chats never all arrived: %s (%s)", observer.count(warm, tc.warm), observer.state())
				}

				c := e.login(t, "alice", deviceLogin(ua, online2("phone", "")))
				if c.JID != first.JID {
					t.Errorf("the same user-agent id bound %q, then %q", first.JID, c.JID)
				}
				fresh := watch(t, "the new session", c)
				if tc.readsLate {
					// A buffer as small as the one it stalled with would
					// make it read at zero-window-probe pace.
					if err := first.SetReadBuffer(4 << 20); err != nil {
						t.Fatal(err)
					}
					old = watch(t, "the old session", first)
					if !old.ended(ctx) {
						t.Fatalf("the old session is still open after its replacement; of the warm-up, %s", old.count(warm, tc.warm))
					}
					t.Logf("the old session %s; of the warm-up, %s", old.state(), old.count(warm, tc.warm))
				}
				ctx, cancel = context.WithTimeout(context.Background(), seriesWait)
				defer cancel()
				marker := "fault-" + harness.NewID()
				to := func(seq int) string {
					if seq <= n {
						return account
					}
					return c.JID
				}
				if _, err := sendNumbered(ctx, bob, to, "chat", marker, 1, 2*n, 0); err != nil {
					t.Fatal(err)
				}
				if fresh.waitAll(ctx, marker, 2*n) {
					settle(ctx, t, bob, account, fresh)
				} else {
					t.Errorf("by the deadline, %s (%s)", fresh.count(marker, 2*n), fresh.state())
				}
				switch {
				case !old.ended(ctx):
					t.Errorf("the old session is still open after its replacement")
				case tc.readsLate:
					// Its stream error may be lost with what it could not
					// take: only the end is required.
				case !old.gotStreamError():
					t.Errorf("the old session %s, want a stream error such as <conflict/>", old.state())
				default:
					t.Logf("the old session %s", old.state())
				}
				t.Logf("bare JID: 1-%d, full JID: %d-%d", n, n+1, 2*n)
				exactlyOnce(t, fresh.count(marker, 2*n))
				if got := old.count(marker, 2*n); got.copies != 0 {
					t.Errorf("the old session got %d copies after the new one was online: %s", got.copies, got)
				}
			})
		}
	})
}

// TestFaultAnSMClientThatGotABounceThenResumes: issue 9, seen 3. A 2.0
// client with SM sends a chat to an offline full JID, gets the proxy's
// <service-unavailable/> bounce and acks everything it received, the bounce
// counted (XEP-0198: h counts every stanza received). Its TCP connection is
// then reset; bob sends K chats to alice; once a classic resource of alice
// connected to the server directly has them all (so the server has given
// them to the held session's upstream leg too), the client resumes with its
// h and must get exactly the K.
func TestFaultAnSMClientThatGotABounceThenResumes(t *testing.T) {
	const k = 10
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		account := "alice@" + domain
		bob := e.login(t, "bob")
		ua := "bounced-" + harness.NewID()
		c := e.login(t, "alice", deviceLogin(ua, online2("bounced", "")))
		previd, lastSeen := smID(t, c), archiveEndIn(c.Success)
		direct := e.login(t, "alice", directTo(srv))
		goOnline(t, direct)
		observer := watch(t, "a classic resource of alice connected to the server directly", direct)

		bounceID := harness.NewID()
		send(t, c, fmt.Sprintf("<message to='%s/nonexistent-resource-xyz' type='chat' id='%s'><body>anyone there?</body></message>", account, bounceID))
		waitFor(t, c, "type='error'", bounceID, "service-unavailable")
		// Ack everything received so far, then ask: the proxy's answer
		// shows it read the ack before the connection goes.
		send(t, c, fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/><r xmlns='urn:xmpp:sm:3'/>", c.Received))
		waitFor(t, c, "<a xmlns='urn:xmpp:sm:3'")
		_ = c.Reset()

		marker := "fault-" + harness.NewID()
		ctx, cancel := context.WithTimeout(context.Background(), seriesWait)
		defer cancel()
		if _, err := sendNumbered(ctx, bob, func(int) string { return account }, "chat", marker, 1, k, 0); err != nil {
			t.Fatal(err)
		}
		if !observer.waitAll(ctx, marker, k) {
			t.Fatalf("bob's chats never all reached alice: %s (%s)", observer.count(marker, k), observer.state())
		}
		again, resumed := comeBack(t, e, "alice", "bounced", ua, previd, c.Received, lastSeen)
		t.Logf("came back: %s with h=%d (the bounce counted)", how(resumed), c.Received)
		if !resumed {
			t.Errorf("the resumption was refused: %s", again.Success)
		}
		back := watch(t, "the resumed client", again)
		if back.waitAll(ctx, marker, k) {
			settle(ctx, t, bob, account, back)
		} else {
			t.Errorf("by the deadline, %s (%s)", back.count(marker, k), back.state())
		}
		exactlyOnce(t, back.count(marker, k))
	})
}

// TestFaultASiblingHeldForResumption: alice has sessions A and B. A's TCP
// connection is reset, so the proxy holds A for resumption; bob sends M
// bare-JID chats. B gets all M live; A resumes and gets all M, each once.
func TestFaultASiblingHeldForResumption(t *testing.T) {
	const m = 30
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		account := "alice@" + domain
		id := harness.NewID()
		bob := e.login(t, "bob")
		held := e.login(t, "alice", deviceLogin("held-"+id, online2("held", "")))
		previd, lastSeen := smID(t, held), archiveEndIn(held.Success)
		live := watch(t, "the live sibling", e.login(t, "alice", deviceLogin("live-"+id, online2("live", ""))))
		_ = held.Reset()

		marker := "fault-" + harness.NewID()
		ctx, cancel := context.WithTimeout(context.Background(), seriesWait)
		defer cancel()
		if _, err := sendNumbered(ctx, bob, func(int) string { return account }, "chat", marker, 1, m, 0); err != nil {
			t.Fatal(err)
		}
		if !live.waitAll(ctx, marker, m) {
			t.Errorf("while its sibling was held, by the deadline, %s (%s)", live.count(marker, m), live.state())
		}
		again, resumed := comeBack(t, e, "alice", "held", "held-"+id, previd, held.Received, lastSeen)
		t.Logf("the held session came back: %s (h=%d)", how(resumed), held.Received)
		if !resumed {
			t.Errorf("the resumption was refused: %s", again.Success)
		}
		back := watch(t, "the held session", again)
		if back.waitAll(ctx, marker, m) {
			settle(ctx, t, bob, account, live, back)
		} else {
			t.Errorf("by the deadline, %s (%s)", back.count(marker, m), back.state())
		}
		exactlyOnce(t, live.count(marker, m))
		exactlyOnce(t, back.count(marker, m))
	})
}
