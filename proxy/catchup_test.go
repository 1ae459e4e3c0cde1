package proxy

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
)

func mamResultFor(queryID, id, body string) []byte {
	return []byte("<message to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='" + queryID + "' id='" + id +
		"'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T00:00:00Z'/>" +
		"<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'><body>" + body + "</body></message></forwarded></result></message>")
}

// recordingSink is a client leg that records what a catch-up queues, in
// order, and takes (acks) it when told.
type recordingSink struct {
	out      []string // "body:..." per archived message, the element itself otherwise
	raw      []string // every stanza as queued
	untaken  int      // stanzas queued and not taken yet
	acks     bool
	most     int // the largest untaken seen
	held     [][]byte
	gone     bool     // the client is detached
	rechecks []string // the archive ids a second look was asked after
}

func (s *recordingSink) stanza(it catchItem) {
	s.untaken++
	s.most = max(s.most, s.untaken)
	s.raw = append(s.raw, string(it.raw))
	if m := regexpBody(it.raw); m != "" {
		s.out = append(s.out, "body:"+m)
		return
	}
	s.out = append(s.out, string(it.raw))
}
func (s *recordingSink) element(b []byte)     { s.out = append(s.out, string(b)) }
func (s *recordingSink) backlog() (int, bool) { return s.untaken, s.acks }
func (s *recordingSink) delivered(raw []byte) {}
func (s *recordingSink) attached() bool       { return !s.gone }
func (s *recordingSink) caughtUp(int, int)    {}
func (s *recordingSink) recheck(after string) { s.rechecks = append(s.rechecks, after) }
func (s *recordingSink) releaseHeld() {
	for _, h := range s.held {
		s.stanza(catchItem{raw: h})
	}
}

func regexpBody(raw []byte) string {
	i := bytes.Index(raw, []byte("<body>"))
	j := bytes.Index(raw, []byte("</body>"))
	if i < 0 || j < i {
		return ""
	}
	return string(raw[i+len("<body>") : j])
}

// testCatchup is a catch-up as a Bind2 replay leaves it: the account's
// <sync/> and rooms with an archive to catch up, first pages asked.
func testCatchup(max int, rooms ...string) (*catchup, *setupState) {
	st := &setupState{out: &bindOutcome{jid: "alice@localhost/one"},
		sync: &archiveSync{queryID: queryIDSync, idPrefix: queryIDSync + "-", max: max}}
	for i, room := range rooms {
		st.joins = append(st.joins, &roomJoin{done: true, catchup: &archiveSync{to: room, queryID: room,
			idPrefix: fmt.Sprintf("x2-room%d-", i), max: max}})
	}
	c := newCatchup(st, time.Hour, 8)
	c.expire = func() {}
	return c, st
}

// feed gives the catch-up one archived message as it comes from upstream.
func feed(t *testing.T, c *catchup, queryID, id, body string) {
	t.Helper()
	raw := mamResultFor(queryID, id, body)
	res, ok := mam.ParseResult(raw)
	if !ok {
		t.Fatalf("not a MAM result: %s", raw)
	}
	if mine, _ := c.result(res, catchItem{raw: raw}); !mine {
		t.Fatalf("the catch-up did not take a result of its own query %s", queryID)
	}
}

func finIQ(complete bool, last string) mam.Fin {
	return mam.Fin{OK: true, Complete: complete, Last: last}
}

func TestTheCatchUpDeliversEachArchivedMessageOnce(t *testing.T) {
	c, _ := testCatchup(100)
	sink := &recordingSink{}
	// ejabberd was seen to answer one query with a result twice under
	// the same archive id.
	for _, id := range []string{"A1", "A2", "A1", "A3", "A2"} {
		feed(t, c, queryIDSync, id, "m-"+id)
	}
	c.fin(queryIDSync+"-0", finIQ(true, "A3"))
	c.advance(sink)
	got := strings.Join(sink.out, " ")
	for _, id := range []string{"A1", "A2", "A3"} {
		if n := strings.Count(got, "body:m-"+id); n != 1 {
			t.Errorf("archive id %s is in the catch-up %d times, want once", id, n)
		}
	}
	if !strings.Contains(got, "count='3'") || !strings.Contains(got, "last='A3'") {
		t.Errorf("<synced/> does not count what was delivered: %s", got)
	}
}

func TestLiveTrafficHeldDuringSetupGetsTheEnteringRules(t *testing.T) {
	c, _ := testCatchup(100)
	c.pending = [][]byte{
		[]byte("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='live1'><body>live</body></message>"),
		[]byte("<presence from='bob@localhost/x'/>"),
	}
	sink := &recordingSink{}
	c.fin(queryIDSync+"-0", finIQ(true, ""))
	c.advance(sink)
	if !strings.HasPrefix(sink.out[0], "<synced") {
		t.Fatalf("live traffic came before <synced/>: %q", sink.out)
	}
	if after := strings.Join(sink.raw, "\n"); strings.Count(after, "xmpp-1") != 1 {
		t.Fatalf("the live message released after <synced/> is not marked xmpp-1 once: %s", after)
	}
}

// The second look at the archive (recheck.go) follows a complete catch-up
// around which messages moved, from the last archive id delivered, and
// costs an idle account's login nothing.
func TestACompleteCatchUpWithTrafficAsksForASecondLook(t *testing.T) {
	live := []byte("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='live1'><body>live</body></message>")
	tests := []struct {
		name    string
		results []string
		pending [][]byte
		fin     mam.Fin
		want    string // "" for no second look
	}{
		{"after the last message the catch-up delivered", []string{"A1", "A2"}, nil, finIQ(true, "A2"), "A2"},
		{"after the sync's own id when only live traffic came", nil, [][]byte{live}, finIQ(true, ""), "A0"},
		{"none for an idle account", nil, [][]byte{[]byte("<presence from='bob@localhost/x'/>")}, finIQ(true, ""), ""},
		{"none after a catch-up that failed", []string{"A1"}, nil, mam.Fin{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := testCatchup(100)
			c.account.after = "A0"
			c.pending = tc.pending
			for _, id := range tc.results {
				feed(t, c, queryIDSync, id, "m-"+id)
			}
			sink := &recordingSink{}
			c.fin(queryIDSync+"-0", tc.fin)
			c.advance(sink)
			if got := strings.Join(sink.rechecks, ","); got != tc.want {
				t.Fatalf("second look after %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTheCatchUpStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"an archived message reaches the client before its page ends", func(t *testing.T) {
			c, _ := testCatchup(100)
			sink := &recordingSink{}
			feed(t, c, queryIDSync, "A1", "first")
			if req := c.advance(sink); req != nil {
				t.Fatalf("asked for a page before this one ended: %s", req)
			}
			if len(sink.out) != 1 || sink.out[0] != "body:first" {
				t.Fatalf("the first message waits for its page: %q", sink.out)
			}
		}},
		{"the next page is asked after the last id the page brought", func(t *testing.T) {
			c, _ := testCatchup(1000)
			sink := &recordingSink{}
			feed(t, c, queryIDSync, "A1", "one")
			c.fin(queryIDSync+"-0", finIQ(false, "A1"))
			req := c.advance(sink)
			if !bytes.Contains(req, []byte("<after>A1</after>")) || !bytes.Contains(req, []byte("id='"+queryIDSync+"-1'")) {
				t.Fatalf("next page request = %s", req)
			}
		}},
		{"the next page waits until the client took all but a page", func(t *testing.T) {
			c, _ := testCatchup(1000)
			// 50 of the page before are still unacked when this page of
			// 100 (what the server gave) ends.
			sink := &recordingSink{acks: true, untaken: 50}
			for i := range 100 {
				feed(t, c, queryIDSync, fmt.Sprintf("A%d", i), "m")
			}
			c.fin(queryIDSync+"-0", finIQ(false, "Alast"))
			if req := c.advance(sink); req != nil {
				t.Fatalf("asked for a page with %d stanzas untaken: %s", sink.untaken, req)
			}
			if last := sink.out[len(sink.out)-1]; last != string(requestAck) {
				t.Fatalf("a client with SM was not asked to ack the page: %q", last)
			}
			sink.untaken = 100
			if req := c.advance(sink); req == nil {
				t.Fatal("the page the client took did not free the next request")
			}
		}},
		{"room archives follow the account's whatever arrives first", func(t *testing.T) {
			c, _ := testCatchup(100, "room@muc.localhost")
			sink := &recordingSink{}
			feed(t, c, "room@muc.localhost", "R1", "room")
			c.fin("x2-room0-0", finIQ(true, "R1"))
			c.advance(sink)
			if len(sink.out) != 0 {
				t.Fatalf("the room archive overtook the account's: %q", sink.out)
			}
			feed(t, c, queryIDSync, "A1", "account")
			c.fin(queryIDSync+"-0", finIQ(true, "A1"))
			c.advance(sink)
			want := []string{"body:account", "body:room"}
			if len(sink.out) < 3 || sink.out[0] != want[0] || sink.out[1] != want[1] || !strings.HasPrefix(sink.out[2], "<synced") {
				t.Fatalf("order = %q, want %q then <synced/>", sink.out, want)
			}
		}},
		{"a page the server never ends is given up as incomplete and its late results are dropped", func(t *testing.T) {
			c, _ := testCatchup(100)
			sink := &recordingSink{}
			feed(t, c, queryIDSync, "A1", "arrived")
			c.advance(sink)
			c.giveUp(sink)
			got := strings.Join(sink.out, " ")
			if !strings.Contains(got, "body:arrived") || !strings.Contains(got, "complete='false'") {
				t.Fatalf("given up catch-up = %s", got)
			}
			res, _ := mam.ParseResult(mamResultFor(queryIDSync, "A2", "late"))
			if mine, kept := c.result(res, catchItem{raw: mamResultFor(queryIDSync, "A2", "late")}); !mine || kept {
				t.Fatalf("a late result after giving up: mine %v kept %v, want taken and dropped", mine, kept)
			}
		}},
		{"live stanzas wait for synced and then come in order", func(t *testing.T) {
			c, _ := testCatchup(100)
			sink := &recordingSink{held: [][]byte{[]byte("<message><body>held message</body></message>")}}
			if held, err := c.hold(catchItem{raw: []byte("<presence from='bob@localhost/x'/>")}); !held || err != nil {
				t.Fatalf("hold = %v, %v", held, err)
			}
			feed(t, c, queryIDSync, "A1", "archived")
			c.fin(queryIDSync+"-0", finIQ(true, "A1"))
			c.advance(sink)
			want := []string{"body:archived", "<synced", "<presence", "body:held message"}
			if len(sink.out) != len(want) {
				t.Fatalf("out = %q, want %q", sink.out, want)
			}
			for i, w := range want {
				if !strings.HasPrefix(sink.out[i], w) {
					t.Fatalf("out[%d] = %q, want %q", i, sink.out[i], w)
				}
			}
			if held, _ := c.hold(catchItem{raw: []byte("<presence/>")}); held {
				t.Fatal("a stanza after synced was held")
			}
		}},
		{"synced waits for a detached client to come back", func(t *testing.T) {
			c, _ := testCatchup(100)
			sink := &recordingSink{gone: true}
			feed(t, c, queryIDSync, "A1", "archived")
			c.fin(queryIDSync+"-0", finIQ(true, "A1"))
			c.advance(sink)
			if c.finished || strings.Contains(strings.Join(sink.out, " "), "<synced") {
				t.Fatalf("synced was written to a detached client: %q", sink.out)
			}
			sink.gone = false
			c.advance(sink)
			if !c.finished || !strings.HasPrefix(sink.out[len(sink.out)-1], "<synced") {
				t.Fatalf("synced did not follow the client's return: %q", sink.out)
			}
		}},
		{"too much live traffic during the catch-up ends the session", func(t *testing.T) {
			c, _ := testCatchup(100)
			var err error
			for i := 0; i <= c.maxHeld && err == nil; i++ {
				_, err = c.hold(catchItem{raw: []byte("<presence/>")})
			}
			if err != errHoldOverflow {
				t.Fatalf("err = %v, want errHoldOverflow", err)
			}
		}},
		{"what came during setup and is in the archive comes once", func(t *testing.T) {
			c, _ := testCatchup(100)
			c.pending = [][]byte{[]byte("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='m1'>" +
				"<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='A1'/><body>dup</body></message>")}
			sink := &recordingSink{}
			feed(t, c, queryIDSync, "A1", "dup")
			c.fin(queryIDSync+"-0", finIQ(true, "A1"))
			c.advance(sink)
			if n := strings.Count(strings.Join(sink.out, " "), "body:dup"); n != 1 {
				t.Fatalf("the message came %d times: %q", n, sink.out)
			}
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}

// TestACatchUpHoldsAtMostTwoPages streams a catch-up of 2000 messages to a
// client that acks each page when asked, with the server answering each
// request at once: the stanzas the proxy holds never exceed two pages.
func TestACatchUpHoldsAtMostTwoPages(t *testing.T) {
	const total = 2000
	c, _ := testCatchup(total)
	sink := &recordingSink{acks: true}
	sent, page, asked := 0, 0, true
	for sent < total {
		if !asked {
			// The client acks everything it has, as it does on <r/>.
			sink.untaken = 0
			if c.advance(sink) == nil {
				t.Fatalf("no page asked with the client caught up, %d sent", sent)
			}
			page++
			asked = true
		}
		n := min(syncPage, total-sent)
		for i := range n {
			feed(t, c, queryIDSync, fmt.Sprintf("A%d", sent+i), "m")
		}
		sent += n
		last := fmt.Sprintf("A%d", sent-1)
		c.fin(fmt.Sprintf("%s-%d", queryIDSync, page), finIQ(sent == total, last))
		if req := c.advance(sink); req != nil {
			page++
			asked = true // asked at once: the next page comes
			continue
		}
		asked = false
	}
	if sink.most > 2*syncPage {
		t.Fatalf("the proxy held %d stanzas for the client, more than two pages (%d)", sink.most, 2*syncPage)
	}
	if c.heldAtMost != sink.most {
		t.Fatalf("the catch-up says it held at most %d stanzas, the client leg had %d", c.heldAtMost, sink.most)
	}
	if !c.finished || !strings.Contains(strings.Join(sink.out, " "), fmt.Sprintf("count='%d'", total)) {
		t.Fatal("the catch-up did not end with every message counted")
	}
}
