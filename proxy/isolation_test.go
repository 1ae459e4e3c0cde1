package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/sessioncache"
)

func TestAQueueThatSpillsKeepsItsOrderAndItsBound(t *testing.T) {
	q := &queue{size: 2}
	for i := range 6 {
		if !q.offer([]byte{byte('a' + i)}, 4) {
			t.Fatalf("offer %d refused below the bound", i)
		}
	}
	if q.offer([]byte("g"), 4) {
		t.Fatal("the spill took a fifth byte beyond a 4-byte bound")
	}
	if !q.offer(nil, 4) {
		t.Fatal("the stop marker was refused by a full spill")
	}
	var got []byte
	ch := q.current()
	for q.len() > 0 {
		b := <-ch
		q.refill()
		if b == nil {
			got = append(got, '.')
			continue
		}
		got = append(got, b...)
	}
	if string(got) != "abcdef." {
		t.Fatalf("the writer got %q, want abcdef then the stop marker", got)
	}
}

// detachableRelay is a 2.0 session whose client never reads: its writers
// never start, and its client leg spills at most spill bytes.
func detachableRelay(t *testing.T, srv *Server, jid string, withSM bool, spill int) *relay {
	t.Helper()
	v := &session2{sm: sm.New(sm.Config{}), jid: jid, smID: "sm-" + jid}
	if withSM {
		if _, err := v.sm.Enable(true, true); err != nil {
			t.Fatal(err)
		}
	}
	r := quietRelay(srv, v, jid)
	r.client.spillMax = spill
	client, peer := net.Pipe()
	t.Cleanup(func() { client.Close(); peer.Close() })
	r.s.rawConn, r.s.conn = client, client
	r.client.gone = make(chan struct{})
	r.s.ctx, r.s.cancel = context.WithCancelCause(context.Background())
	t.Cleanup(func() { r.s.cancel(nil) })
	return r
}

func TestDeliveringToASiblingThatDoesNotReadNeverWaits(t *testing.T) {
	for _, tc := range []struct {
		name         string
		sm           bool
		wantDetached bool
	}{
		{name: "a resumable session that does not read is detached and keeps every stanza for its replay", sm: true, wantDetached: true},
		{name: "a session without stream management that does not read is ended", sm: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &Server{registry: newRegistry(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			var err error
			srv.detached, err = sessioncache.New(10, 10, time.Hour, (*relay).dropDetached)
			if err != nil {
				t.Fatal(err)
			}
			stalled := detachableRelay(t, srv, alice1, tc.sm, 2048)
			reader := quietRelay(srv, &session2{sm: sm.New(sm.Config{}), jid: alice2}, alice2)
			done := make(chan struct{})
			const n = 200
			go func() {
				defer close(done)
				for i := range n {
					msg := fmt.Sprintf("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='m%d'><body>%s</body></message>", i, strings.Repeat("x", 100))
					ds, _ := reader.s.v2.acc.observe(reader.name, []byte(msg))
					for _, d := range ds {
						d.to.deliver(entering(d.stanza))
					}
				}
			}()
			<-done // a delivery that waited on the stalled client would hang here
			if got := len(queued(&reader.client)); got != n {
				t.Fatalf("the reading sibling got %d of %d", got, n)
			}
			if stalled.detached() != tc.wantDetached {
				t.Fatalf("detached = %v, want %v", stalled.detached(), tc.wantDetached)
			}
			if tc.wantDetached {
				if c := stalled.s.v2.sm.Counts(); srv.detached.Len() != 1 || c.Unacked != n {
					t.Fatalf("held %d sessions with %d unacked stanzas, want 1 with %d", srv.detached.Len(), c.Unacked, n)
				}
				return
			}
			stalled.mu.Lock()
			ending := stalled.ending
			stalled.mu.Unlock()
			if !ending {
				t.Fatal("the session that does not read was neither detached nor ended")
			}
		})
	}
}

func TestABounceIsAStanzaTheClientCounts(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	v := &session2{sm: sm.New(sm.Config{}), jid: carolX2, served: func(d string) bool { return d == "localhost" }, isLocal: srv.registry.isLocal, online: serverSaysOffline}
	if _, err := v.sm.Enable(true, true); err != nil {
		t.Fatal(err)
	}
	r := quietRelay(srv, v, carolX2)
	v.fromClient(r, []byte("<message to='alice@localhost/gone' id='b1' type='chat'><body>hi</body></message>"))
	v.toClient(r, []byte("<message from='bob@localhost/x' id='later'/>"))
	if c := v.sm.Counts(); c.Sent != 2 || c.Unacked != 2 {
		t.Fatalf("sent count %d with %d unacked, want the bounce and the message counted", c.Sent, c.Unacked)
	}
	// The client acks the bounce (h=1) and vanishes: the later message is
	// what a resumption must replay.
	if ok, _ := v.smDetach(); !ok {
		t.Fatal("the session could not detach")
	}
	res, ok := v.resume(r, 1)
	if !ok || len(res.Replay) != 1 || !bytes.Contains(res.Replay[0].Raw, []byte("id='later'")) {
		t.Fatalf("resume with h=1 replayed %v, want exactly the later message", res.Replay)
	}
}

func TestANewSessionOfTheSameDeviceReplacesTheOldOneAndSurvivesItsEnd(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	old := quietRelay(srv, nil, alice1)
	old.s.v2 = &session2{sm: sm.New(sm.Config{}), jid: alice1}
	old.hooks = old.s.v2
	old.name = alice1 + "#1"
	acc, _ := srv.registry.join(old, false)
	old.s.v2.acc = acc
	fresh := quietRelay(srv, nil, alice1)
	fresh.s.v2 = &session2{sm: sm.New(sm.Config{}), jid: alice1}
	fresh.hooks = fresh.s.v2
	fresh.name = alice1 + "#2"
	acc2, replaced := srv.registry.join(fresh, false)
	fresh.s.v2.acc = acc2
	if len(replaced) != 1 || replaced[0] != old {
		t.Fatalf("join replaced %v, want the old session", replaced)
	}
	srv.registry.leave(old) // the old session's teardown comes last
	msg := []byte("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='r1'><body>hi</body></message>")
	if mine := fresh.s.v2.route(fresh, msg); mine == nil {
		t.Fatal("after the old session ended, the new one no longer gets its messages")
	}
}
