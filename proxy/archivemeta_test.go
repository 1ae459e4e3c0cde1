package proxy

import (
	"bytes"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
)

func TestArchiveEdgeCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newEdgeCache(8)
	c.now = func() time.Time { return now }
	full := mam.Metadata{StartID: "S", StartTS: "t0", EndID: "E", EndTS: "t1"}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"edges the server gave are kept per account, whatever its case", func(t *testing.T) {
			c.put("Alice@localhost", full)
			if got, ok := c.get("alice@localhost"); !ok || got != full {
				t.Fatalf("get = %+v, %v", got, ok)
			}
		}},
		{"an entry older than the TTL is not used", func(t *testing.T) {
			c.put("bob@localhost", full)
			now = now.Add(archiveEdgeTTL + time.Second)
			defer func() { now = now.Add(-archiveEdgeTTL - time.Second) }()
			if _, ok := c.get("bob@localhost"); ok {
				t.Fatal("a stale start was used")
			}
		}},
		{"a confirmed end does not make the start younger", func(t *testing.T) {
			c.put("carol@localhost", full)
			now = now.Add(archiveEdgeTTL - time.Second)
			c.confirmEnd("carol@localhost", "E2", "t2")
			now = now.Add(2 * time.Second)
			defer func() { now = now.Add(-archiveEdgeTTL - time.Second) }()
			if _, ok := c.get("carol@localhost"); ok {
				t.Fatal("confirming the end extended the start's life")
			}
		}},
		{"an empty archive is not cached", func(t *testing.T) {
			c.put("dave@localhost", mam.Metadata{})
			if _, ok := c.get("dave@localhost"); ok {
				t.Fatal("an empty archive was cached")
			}
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestTheArchiveEndComesFromTheCatchUpWhenItCan(t *testing.T) {
	cached := mam.Metadata{StartID: "S", StartTS: "t0", EndID: "E", EndTS: "t1"}
	for _, tc := range []struct {
		name    string
		after   string
		results []string // archive ids the first page brought
		fin     mam.Fin
		wantEnd string // "" when the proxy must ask the server
	}{
		{"a complete first page ends at its last message", "E", []string{"N1", "N2"}, mam.Fin{OK: true, Complete: true}, "N2"},
		{"nothing after the cached end keeps the cached end", "E", nil, mam.Fin{OK: true, Complete: true}, "E"},
		{"nothing after an id that is not the cached end asks the server", "OLD", nil, mam.Fin{OK: true, Complete: true}, ""},
		{"a gap longer than a page asks the server", "E", []string{"N1"}, mam.Fin{OK: true, Last: "N1"}, ""},
		{"a failed catch-up query asks the server", "E", nil, mam.Fin{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{edges: newEdgeCache(8)}
			srv.edges.put("alice@localhost", cached)
			st := &setupState{s: &session{srv: srv}, out: &bindOutcome{jid: "alice@localhost/one"},
				sync: &archiveSync{queryID: queryIDSync, after: tc.after, max: 100}}
			st.meta.account, st.meta.edges, st.meta.fromCache = "alice@localhost", cached, true
			for _, id := range tc.results {
				st.onMessage(mamResultFor(queryIDSync, id, "m"))
			}
			st.endFromSync(tc.fin)
			asked := bytes.Contains(st.followUp, []byte("<metadata"))
			if tc.wantEnd == "" {
				if !asked || st.meta.done {
					t.Fatalf("the proxy did not ask for <metadata/>: done=%v followUp=%s", st.meta.done, st.followUp)
				}
				return
			}
			if asked || !st.meta.done || st.meta.edges.EndID != tc.wantEnd || st.meta.edges.StartID != "S" {
				t.Fatalf("edges = %+v done=%v asked=%v, want end %s from the catch-up", st.meta.edges, st.meta.done, asked, tc.wantEnd)
			}
			if got, _ := srv.edges.get("alice@localhost"); got.EndID != tc.wantEnd {
				t.Fatalf("cached end = %s, want %s", got.EndID, tc.wantEnd)
			}
		})
	}
}
