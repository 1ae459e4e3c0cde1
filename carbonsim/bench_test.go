package carbonsim

import (
	"fmt"
	"runtime"
	"testing"
)

// benchAccount is a 3-session account, all synced, with the default memory.
func benchAccount() *Account {
	a := NewAccount(acct, 0)
	for _, s := range []string{sa, sb, sc} {
		a.Join(s)
		a.Synced(s)
	}
	return a
}

// distinct is more than DefaultMemory, so every message is new to the
// account when it comes round again: the benchmarks measure the steady
// state with full memories, evicting on every new message.
const distinct = 4 * DefaultMemory

// BenchmarkObserve measures one logical message as a 3-session account
// sees it. direct+2carbons: a bare-JID chat delivered directly to one
// session and carbon-copied to the other two (3 Observe calls, 3
// deliveries). sentCarbon: a message sent by a 1.0 resource, arriving as a
// sent carbon on each of the 3 legs. duplicate: a retransmission of a
// message every session already has.
func BenchmarkObserve(b *testing.B) {
	type leg struct {
		session string
		stanzas [][]byte
	}
	direct := make([][]byte, distinct)
	carbonB, carbonC := make([][]byte, distinct), make([][]byte, distinct)
	sentA, sentB, sentC := make([][]byte, distinct), make([][]byte, distinct), make([][]byte, distinct)
	for i := range distinct {
		attrs := fmt.Sprintf("from='%s' to='%s' type='chat' id='id%d'", bob, acct, i)
		kids := body("hello there, this is message "+fmt.Sprint(i)) + oid(fmt.Sprintf("o%d", i)) + sid(fmt.Sprintf("s%d", i))
		direct[i] = []byte(msgXML(attrs, kids))
		carbonB[i] = []byte(receivedCarbon(sb, fwd(attrs, kids)))
		carbonC[i] = []byte(receivedCarbon(sc, fwd(attrs, kids)))
		sent := fwd(fmt.Sprintf("from='%s' to='bob@example.net' type='chat' id='id%d'", classic, i), body("reply")+oid(fmt.Sprintf("so%d", i)))
		sentA[i], sentB[i], sentC[i] = []byte(sentCarbon(sa, sent)), []byte(sentCarbon(sb, sent)), []byte(sentCarbon(sc, sent))
	}
	cases := []struct {
		name       string
		legs       []leg
		deliveries int
	}{
		{"direct+2carbons", []leg{{sa, direct}, {sb, carbonB}, {sc, carbonC}}, 3},
		{"sentCarbon", []leg{{sa, sentA}, {sb, sentB}, {sc, sentC}}, 3},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			a := benchAccount()
			b.ReportAllocs()
			n := 0
			for i := 0; b.Loop(); i++ {
				for _, l := range tc.legs {
					out, err := a.Observe(Event{Session: l.session, Stanza: l.stanzas[i%distinct]})
					if err != nil {
						b.Fatal(err)
					}
					n += len(out)
				}
			}
			if n != tc.deliveries*b.N {
				b.Fatalf("%d deliveries for %d messages", n, b.N)
			}
		})
	}
	b.Run("duplicate", func(b *testing.B) {
		a := benchAccount()
		if out, _ := a.Observe(Event{Session: sa, Stanza: direct[0]}); len(out) != 3 {
			b.Fatal("not delivered")
		}
		b.ReportAllocs()
		for b.Loop() {
			if out, _ := a.Observe(Event{Session: sa, Stanza: direct[0]}); len(out) != 0 {
				b.Fatal("a duplicate was delivered")
			}
		}
	})
}

// BenchmarkSessionMemory reports the heap one session's memory of
// DefaultMemory messages takes, once full (each message with a stanza-id,
// an origin-id and an id).
func BenchmarkSessionMemory(b *testing.B) {
	stanzas := make([][]byte, DefaultMemory)
	for i := range stanzas {
		stanzas[i] = []byte(msgXML(fmt.Sprintf("from='%s' to='%s' type='chat' id='id%d'", bob, acct, i), body("x")+oid(fmt.Sprintf("o%d", i))+sid(fmt.Sprintf("s%d", i))))
	}
	var perSession float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := benchAccount()
		for _, st := range stanzas {
			if _, err := a.Observe(Event{Session: sa, Stanza: st}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perSession = float64(after.HeapAlloc-before.HeapAlloc) / 3
		runtime.KeepAlive(a)
	}
	b.ReportMetric(perSession, "B/session")
	b.ReportMetric(perSession/DefaultMemory, "B/message")
}
