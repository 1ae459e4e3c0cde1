package carbonsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The property: over random messages, random paths for each (with
// repeats), random interleavings and random join, sync and leave times,
//
//   - every session that is online when a keyed message of its concern
//     arrives on some leg gets it exactly once (at most once when it left
//     before its catch-up ended), whether as the message, a sent carbon or
//     its own catch-up result;
//   - a session never gets its own sent message, except as a result of its
//     own catch-up;
//   - a session-scope message reaches only its session;
//   - a keyless message is delivered once per arrival on the session's own
//     leg and nowhere else;
//   - no session ever sees a <received/> wrapper.

const propCases = 3000

func TestPropertyExactlyOnce(t *testing.T) {
	n := propCases
	if testing.Short() {
		n = 300
	}
	for seed := range uint64(n) {
		if msg := checkCase(seed); msg != "" {
			t.Fatalf("seed %d: %s", seed, msg)
		}
	}
}

func FuzzInterleavings(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		if msg := checkCase(seed); msg != "" {
			t.Fatal(msg)
		}
	})
}

var propSessions = []string{sa, sb, sc}

const classic = acct + "/classic" // a 1.0 resource of the account, never joined

// message kinds
const (
	kInbound = iota // account scope, from a contact
	kSent           // sent by a resource of the account
	kSession        // session scope: groupchat or <private/> to one session
	kKeyless        // account scope, no key at all
	kindCount
)

// arrival forms
const (
	fDirect = iota
	fOffline
	fReceived
	fSent
	fMAM
)

type propMsg struct {
	kind        int
	from, to    string
	target      int // kSession: the session it belongs to
	sender      int // kSent: index in propSessions, or -1 for classic
	attrs       string
	kids        string // children without a stanza-id
	sidEl       string // the stanza-id element, or ""
	archiveID   string // the MAM result id, or "" when not archived
	archiveFrom string // the archive, "" for the account's own
	groupchat   bool
}

type propLife struct {
	joined            bool
	join, sync, leave float64 // leave = +Inf when the session stays
}

type propEvent struct {
	t     float64
	op    string // join, synced, leave, or "" for an arrival
	leg   int
	msg   int
	form  int
	bytes string
}

func (m *propMsg) plain(extra string) string {
	return msgXML(m.attrs, m.kids+m.sidEl+extra)
}

func (m *propMsg) forwarded(withSID bool) string {
	if withSID {
		return fwd(m.attrs, m.kids+m.sidEl)
	}
	return fwd(m.attrs, m.kids)
}

var propSenders = []string{bob, "carol@example.com/pc", "dave@example.net/laptop"}

func genMessage(r *rand.Rand, i int) propMsg {
	m := propMsg{kind: r.IntN(kindCount)}
	b := body("m" + strconv.Itoa(i))
	switch m.kind {
	case kInbound, kKeyless:
		// ids are reused across senders, never by one sender.
		m.from = propSenders[i%len(propSenders)]
		m.to = acct
		if r.IntN(3) == 0 { // a full-JID chat without modifier: rerouted
			m.to = propSessions[r.IntN(len(propSessions))]
		}
		m.attrs = "from='" + m.from + "' to='" + m.to + "' type='chat'"
		m.kids = b
		if m.kind == kKeyless {
			break
		}
		hasSID, hasOID, hasID := r.IntN(10) < 7, r.IntN(2) == 0, r.IntN(10) < 7
		if !hasSID && !hasOID && !hasID {
			hasID = true
		}
		switch {
		case hasID && hasSID && r.IntN(4) == 0:
			// A sender that reuses ids: the stanza-ids still tell apart.
			m.attrs += " id='reused'"
		case hasID:
			m.attrs += " id='x" + strconv.Itoa(i/len(propSenders)) + "'"
		}
		if hasOID {
			m.kids += oid("o" + strconv.Itoa(i/len(propSenders)))
		}
		if hasSID {
			m.sidEl = sid("S" + strconv.Itoa(i))
			m.archiveID = "S" + strconv.Itoa(i)
		}
	case kSent:
		m.sender = r.IntN(len(propSessions)+1) - 1
		m.from = classic
		if m.sender >= 0 {
			m.from = propSessions[m.sender]
		}
		m.to = "bob@example.net"
		if r.IntN(4) == 0 {
			m.to = acct // a note to self: sent, and delivered to the account
		}
		m.attrs = "from='" + m.from + "' to='" + m.to + "' type='chat'"
		m.kids = b
		// A sent carbon may lack the stanza-id its archived copy has, so a
		// sent message always carries an origin-id or an id.
		hasOID, hasID := r.IntN(2) == 0, r.IntN(2) == 0
		if !hasOID && !hasID {
			hasOID = true
		}
		if hasID {
			m.attrs += " id='y" + strconv.Itoa(i) + "'"
		}
		if hasOID {
			m.kids += oid("so" + strconv.Itoa(i))
		}
		if r.IntN(10) < 7 {
			m.sidEl = sid("S" + strconv.Itoa(i))
			m.archiveID = "S" + strconv.Itoa(i)
		}
	case kSession:
		m.target = r.IntN(len(propSessions))
		m.to = propSessions[m.target]
		if r.IntN(2) == 0 {
			m.groupchat = true
			m.from = room + "/carol"
			m.attrs = "from='" + m.from + "' to='" + m.to + "' type='groupchat' id='g" + strconv.Itoa(i) + "'"
			m.kids = b
			if r.IntN(10) < 6 {
				m.sidEl = roomSID("R" + strconv.Itoa(i))
				m.archiveID = "R" + strconv.Itoa(i)
				m.archiveFrom = room
			}
		} else {
			m.from = propSenders[i%len(propSenders)]
			m.attrs = "from='" + m.from + "' to='" + m.to + "' type='chat' id='p" + strconv.Itoa(i) + "'"
			m.kids = b + "<private xmlns='urn:xmpp:carbons:2'/>"
		}
	}
	return m
}

// genCase builds one random timeline.
func genCase(seed uint64) ([]propMsg, []propLife, []propEvent) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	const T = 1000.0
	lives := make([]propLife, len(propSessions))
	var evs []propEvent
	for i := range lives {
		l := &lives[i]
		l.leave = inf
		if r.IntN(10) == 0 {
			continue // never online
		}
		l.joined = true
		l.join = r.Float64() * T * 0.6
		l.sync = l.join + r.Float64()*(T-l.join)*0.5
		if r.IntN(4) == 0 {
			l.leave = l.join + r.Float64()*(T-l.join)
		}
		evs = append(evs, propEvent{t: l.join, op: "join", leg: i}, propEvent{t: l.sync, op: "synced", leg: i})
		if l.leave != inf {
			evs = append(evs, propEvent{t: l.leave, op: "leave", leg: i})
		}
	}
	msgs := make([]propMsg, 1+r.IntN(12))
	for i := range msgs {
		m := genMessage(r, i)
		msgs[i] = m
		mamDone := make([]bool, len(propSessions))
		for range 1 + r.IntN(6) {
			ev := propEvent{t: r.Float64() * T, leg: r.IntN(len(propSessions)), msg: i}
			// A catch-up result: once per session, during its catch-up.
			l := lives[ev.leg]
			if m.archiveID != "" && l.joined && !mamDone[ev.leg] && r.IntN(3) == 0 &&
				(m.kind != kSession || ev.leg == m.target) {
				mamDone[ev.leg] = true
				ev.t = l.join + r.Float64()*(l.sync-l.join)
				ev.form = fMAM
				ev.bytes = mamResult(ev.leg2(), m.archiveFrom, m.archiveID, m.forwarded(false))
				evs = append(evs, ev)
				continue
			}
			switch m.kind {
			case kSent:
				if m.to == acct && r.IntN(2) == 0 {
					ev.form = fDirect
					ev.bytes = m.plain("")
					break
				}
				if m.sender >= 0 && ev.leg == m.sender {
					ev.leg = (ev.leg + 1 + r.IntN(len(propSessions)-1)) % len(propSessions)
				}
				ev.form = fSent
				ev.bytes = sentCarbon(ev.leg2(), m.forwarded(r.IntN(2) == 0))
			case kSession:
				if r.IntN(3) == 0 { // a stray carbon on another leg
					ev.form = fReceived
					ev.bytes = receivedCarbon(ev.leg2(), m.forwarded(true))
				} else {
					ev.leg, ev.form = m.target, fDirect
					ev.bytes = m.plain("")
				}
			default:
				ev.form = r.IntN(3) // direct, offline or received carbon
				switch ev.form {
				case fDirect:
					ev.bytes = m.plain("")
				case fOffline:
					ev.bytes = m.plain(delay())
				case fReceived:
					ev.bytes = receivedCarbon(ev.leg2(), m.forwarded(true))
				}
			}
			evs = append(evs, ev)
			if r.IntN(5) == 0 { // an XEP-0198 retransmission of the same bytes
				again := ev
				again.t = ev.t + r.Float64()*(T-ev.t)
				if ev.form != fMAM {
					evs = append(evs, again)
				}
			}
		}
	}
	slices.SortStableFunc(evs, func(x, y propEvent) int {
		switch {
		case x.t < y.t:
			return -1
		case x.t > y.t:
			return 1
		}
		return 0
	})
	return msgs, lives, evs
}

var inf = math.Inf(1)

func (e propEvent) leg2() string { return propSessions[e.leg] }

var bodyRE = regexp.MustCompile(`<body>m(\d+)</body>`)

// checkCase runs one timeline and returns what went wrong, or "".
func checkCase(seed uint64) string {
	msgs, lives, evs := genCase(seed)
	a := NewAccount(acct, 1024)
	type key struct{ s, m int }
	live, mam := map[key]int{}, map[key]int{}
	var problems []string
	record := func(ds []Delivery) {
		for _, d := range ds {
			s := slices.Index(propSessions, d.Session)
			st := string(d.Stanza)
			if strings.Contains(st, "<received xmlns='urn:xmpp:carbons:2'") {
				problems = append(problems, d.Session+" got a <received/> wrapper: "+st)
			}
			sm := bodyRE.FindStringSubmatch(st)
			if s < 0 || sm == nil {
				problems = append(problems, "unexpected delivery to "+d.Session+": "+st)
				continue
			}
			i, _ := strconv.Atoi(sm[1])
			if strings.Contains(st, "<result xmlns='urn:xmpp:mam:2'") {
				mam[key{s, i}]++
			} else {
				live[key{s, i}]++
			}
		}
	}
	for _, ev := range evs {
		switch ev.op {
		case "join":
			a.Join(propSessions[ev.leg])
		case "synced":
			record(a.Synced(propSessions[ev.leg]))
		case "leave":
			a.Leave(propSessions[ev.leg])
		default:
			ds, err := a.Observe(Event{Session: propSessions[ev.leg], Stanza: []byte(ev.bytes)})
			if err != nil {
				problems = append(problems, "Observe: "+err.Error())
			}
			record(ds)
		}
	}
	// The oracle.
	for s, l := range lives {
		in := func(t float64) bool { return l.joined && t > l.join && t < l.leave }
		complete := l.joined && l.sync < l.leave
		for i, m := range msgs {
			k := key{s, i}
			var anyLeg, ownLeg, ownDirect, ownMAM int
			for _, ev := range evs {
				if ev.op != "" || ev.msg != i || !in(ev.t) {
					continue
				}
				if ev.leg == s {
					switch ev.form {
					case fMAM:
						ownMAM++
					case fDirect, fOffline:
						ownDirect++
						ownLeg++
					default:
						ownLeg++
					}
				}
				if ev.form != fMAM {
					anyLeg++
				}
			}
			total := live[k] + mam[k]
			if mam[k] != ownMAM {
				problems = append(problems, fmt.Sprintf("%s got %d catch-up results of m%d, want %d", propSessions[s], mam[k], i, ownMAM))
			}
			var lo, hi int
			switch m.kind {
			case kInbound:
				lo, hi = min(1, anyLeg+ownMAM), 1
			case kSent:
				lo, hi = min(1, anyLeg+ownMAM), 1
				if m.sender == s {
					lo, hi = ownMAM, ownMAM
					if live[k] != 0 {
						problems = append(problems, fmt.Sprintf("%s got its own sent m%d back", propSessions[s], i))
					}
				}
			case kSession:
				lo, hi = 0, 0
				if m.target == s {
					lo, hi = min(1, ownDirect+ownMAM), 1
				}
			case kKeyless:
				lo, hi = ownLeg, ownLeg
			}
			if !complete {
				lo = min(lo, ownMAM)
			}
			if total < lo || total > hi {
				problems = append(problems, fmt.Sprintf("%s got m%d %d times (%d live, %d catch-up), want %d..%d; %s",
					propSessions[s], i, total, live[k], mam[k], lo, hi, describe(m)))
			}
		}
	}
	if problems == nil {
		return ""
	}
	return strings.Join(problems, "\n") + "\ntimeline:\n" + timeline(lives, evs)
}

func describe(m propMsg) string {
	return fmt.Sprintf("kind %d %s%s", m.kind, m.attrs, m.sidEl)
}

func timeline(lives []propLife, evs []propEvent) string {
	var b strings.Builder
	for s, l := range lives {
		fmt.Fprintf(&b, "  %s: joined %v at %.1f, synced %.1f, leaves %.1f\n", propSessions[s], l.joined, l.join, l.sync, l.leave)
	}
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %7.1f %-6s %s %s\n", ev.t, ev.op, propSessions[ev.leg], ev.bytes)
	}
	return b.String()
}

// FuzzObserve feeds arbitrary bytes to a 3-session account, one of them
// catching up: Observe never panics, and nothing it delivers is a
// <received/> carbon or malformed.
func FuzzObserve(f *testing.F) {
	for _, s := range []string{
		hello, receivedCarbon(sb, helloFwd), sentCarbon(sb, fromA),
		mamResult(sb, "", "S1", helloArchived), mamResult(sb, room, "R1", fwd("from='"+room+"/x' type='groupchat'", body("x"))),
		"<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message/></forwarded></received></message>",
		"<message from='" + acct + "'><received xmlns='urn:xmpp:carbons:2'/></message>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stanza []byte) {
		a := NewAccount(acct, 4)
		a.Join(sa)
		a.Synced(sa)
		a.Join(sb)
		a.Join(sc)
		a.Synced(sc)
		var ds []Delivery
		for range 2 {
			for _, s := range propSessions {
				out, _ := a.Observe(Event{Session: s, Stanza: stanza})
				ds = append(ds, out...)
			}
		}
		ds = append(ds, a.Synced(sb)...)
		for _, d := range ds {
			p, err := parse(d.Stanza, acct)
			if err != nil {
				t.Fatalf("delivered a malformed stanza to %s: %v: %q", d.Session, err, d.Stanza)
			}
			if p.form == received {
				t.Fatalf("delivered a <received/> carbon to %s: %q", d.Session, d.Stanza)
			}
		}
	})
}
