package proxy

import (
	"bytes"
	"testing"
	"time"
)

func TestArchiveEdgeCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newEdgeCache(8)
	c.now = func() time.Time { return now }
	full := archiveEdges{startID: "S", startTS: "t0", endID: "E", endTS: "t1"}
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
			c.put("dave@localhost", archiveEdges{})
			if _, ok := c.get("dave@localhost"); ok {
				t.Fatal("an empty archive was cached")
			}
		}},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestTheArchiveEndComesFromTheCatchUpWhenItCan(t *testing.T) {
	cached := archiveEdges{startID: "S", startTS: "t0", endID: "E", endTS: "t1"}
	for _, tc := range []struct {
		name    string
		after   string
		results []string // archive ids the first page brought
		fin     mamFin
		wantEnd string // "" when the proxy must ask the server
	}{
		{"a complete first page ends at its last message", "E", []string{"N1", "N2"}, mamFin{ok: true, complete: true}, "N2"},
		{"nothing after the cached end keeps the cached end", "E", nil, mamFin{ok: true, complete: true}, "E"},
		{"nothing after an id that is not the cached end asks the server", "OLD", nil, mamFin{ok: true, complete: true}, ""},
		{"a gap longer than a page asks the server", "E", []string{"N1"}, mamFin{ok: true, last: "N1"}, ""},
		{"a failed catch-up query asks the server", "E", nil, mamFin{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{edges: newEdgeCache(8)}
			srv.edges.put("alice@localhost", cached)
			st := &setupState{s: &session{srv: srv}, out: &boundSession{jid: "alice@localhost/one"},
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
			if asked || !st.meta.done || st.meta.edges.endID != tc.wantEnd || st.meta.edges.startID != "S" {
				t.Fatalf("edges = %+v done=%v asked=%v, want end %s from the catch-up", st.meta.edges, st.meta.done, asked, tc.wantEnd)
			}
			if got, _ := srv.edges.get("alice@localhost"); got.endID != tc.wantEnd {
				t.Fatalf("cached end = %s, want %s", got.endID, tc.wantEnd)
			}
		})
	}
}
