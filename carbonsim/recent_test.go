package carbonsim

import (
	"fmt"
	"slices"
	"testing"
)

// chat is bob's chat to the account's bare JID, archived as id.
func chat(id string) string {
	return msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='c"+id+"'", body("chat "+id)+sid(id))
}

func TestJoinAfterHandsOverWhatSiblingsHadSinceTheResumePoint(t *testing.T) {
	fromC := msgXML("from='"+sc+"' to='"+acct+"' type='chat' id='own'", body("mine")+sid("S4"))
	tests := []struct {
		name string
		// seen arrive on sa's leg before sc joins.
		seen  []string
		after string
		have  []string
		want  []string
	}{
		{"everything after the resume point, in arrival order", []string{chat("S1"), chat("S2"), chat("S3")}, "S1", nil, []string{chat("S2"), chat("S3")}},
		{"nothing when the resume point is the last one", []string{chat("S1"), chat("S2")}, "S2", nil, nil},
		{"nothing when the resume point is not kept", []string{chat("S1"), chat("S2")}, "S0", nil, nil},
		{"nothing without a resume point", []string{chat("S1")}, "", nil, nil},
		{"not what the session's own leg already brought", []string{chat("S1"), chat("S2"), chat("S3")}, "S1", []string{chat("S3")}, []string{chat("S2")}},
		{"not what the session sent itself", []string{chat("S1"), fromC, chat("S5")}, "S1", nil, []string{chat("S5")}},
		{"a message that came on two legs once", []string{chat("S1"), chat("S2"), chat("S2")}, "S1", nil, []string{chat("S2")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccount(acct, 0)
			a.Join(sa)
			a.Synced(sa)
			for _, m := range tc.seen {
				if _, err := a.Observe(Event{Session: sa, Stanza: []byte(m)}); err != nil {
					t.Fatal(err)
				}
			}
			var have [][]byte
			for _, h := range tc.have {
				have = append(have, []byte(h))
			}
			var got []string
			for _, b := range a.JoinAfter(sc, sc, tc.after, have) {
				got = append(got, string(b))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("handed over %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJoinAfterCountsTheHandOverAsDelivered(t *testing.T) {
	a := NewAccount(acct, 0)
	a.Join(sa)
	a.Synced(sa)
	for _, m := range []string{chat("S1"), chat("S2")} {
		if _, err := a.Observe(Event{Session: sa, Stanza: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.JoinAfter(sc, sc, "S1", nil); len(got) != 1 {
		t.Fatalf("handed over %d, want 1", len(got))
	}
	// Its own leg's late copy, then a sibling's copy of a new one.
	for _, ev := range []Event{{Session: sc, Stanza: []byte(chat("S2"))}, {Session: sa, Stanza: []byte(chat("S3"))}} {
		if _, err := a.Observe(ev); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, d := range a.Synced(sc) {
		got = append(got, string(d.Stanza))
	}
	if want := []string{chat("S3")}; !slices.Equal(got, want) {
		t.Fatalf("released %q, want %q", got, want)
	}
}

func TestRecentMessagesAreBounded(t *testing.T) {
	a := NewAccount(acct, 0)
	a.Join(sa)
	a.Synced(sa)
	for i := range recentMax + 10 {
		if _, err := a.Observe(Event{Session: sa, Stanza: []byte(chat(fmt.Sprint("S", i)))}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.recent) != recentMax {
		t.Fatalf("%d kept, want %d", len(a.recent), recentMax)
	}
	if got := a.JoinAfter(sc, sc, "S0", nil); got != nil {
		t.Fatalf("a resume point that fell out handed over %d", len(got))
	}
	if got := a.JoinAfter(sb, sb, fmt.Sprint("S", recentMax+8), nil); len(got) != 1 {
		t.Fatalf("handed over %d, want 1", len(got))
	}
}
