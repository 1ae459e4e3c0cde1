package proxy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

// quietRelay is a relay whose writers never start: what is sent to a leg
// stays in its queue for the test to read.
func quietRelay(srv *Server, v *session2, jid string) *relay {
	r := &relay{s: &session{srv: srv, ctx: context.Background(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), v2: v, fullJIDBound: jid}}
	r.hooks = classicHooks{}
	if v != nil {
		r.hooks = v
	}
	r.client.out.size, r.up.out.size = 8, 8
	if v != nil {
		r.client.spillMax = 1 << 20
	}
	r.client.writing.Store(true)
	r.up.writing.Store(true)
	if v != nil {
		v.acc = joinAs(srv, jid, r)
	}
	return r
}

// queued takes what waits in l's queue.
func queued(l *relayLeg) []string {
	var out []string
	if ch := l.out.current(); ch != nil {
		for len(ch) > 0 {
			out = append(out, string(<-ch))
			l.out.refill()
		}
	}
	return out
}

func TestAMessageToAnOfflineFullJIDIsAnsweredByTheProxyAndNeverGoesUpstream(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	v := &session2{sm: sm.New(sm.Config{}), jid: carolX2, served: func(d string) bool { return d == "localhost" }, isLocal: srv.registry.isLocal, online: serverSaysOffline}
	r := quietRelay(srv, nil, carolX2)
	r.s.v2 = v
	r.hooks = r.s.v2
	v.fromClient(r, []byte("<message to='alice@localhost/gone' id='b1' type='chat'><body>hi</body></message>"))
	if up := queued(&r.up); len(up) != 0 {
		t.Fatalf("forwarded upstream: %q", up)
	}
	got := queued(&r.client)
	if len(got) != 1 || !strings.Contains(got[0], "<service-unavailable") || !strings.Contains(got[0], "id='b1'") {
		t.Fatalf("the client got %q, want one service-unavailable bounce", got)
	}
}

func TestTheClassicLegTapGivesABareJIDMessageToEvery20SessionOnce(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	one := quietRelay(srv, &session2{sm: sm.New(sm.Config{}), jid: alice1}, alice1)
	two := quietRelay(srv, &session2{sm: sm.New(sm.Config{}), jid: alice2}, alice2)
	desk := quietRelay(srv, nil, "alice@localhost/desk")
	desk.classicBindSeen, desk.classicAccount = true, "alice@localhost"
	// The server gave a bare-JID message only to the classic session,
	// which holds a higher priority.
	msg := []byte("<message from='bob@localhost/desk' to='alice@localhost' type='chat' id='t1'><body>hi</body></message>")
	desk.classicUpstream(msg)
	for _, r := range []*relay{one, two} {
		got := queued(&r.client)
		if len(got) != 1 || !strings.Contains(got[0], "id='t1'") || !strings.Contains(got[0], "<xmpp-1 ") {
			t.Fatalf("%s got %q, want the message once, marked xmpp-1", r.s.v2.jid, got)
		}
	}
	// The carbon of it reaches one's own leg later: no second copy.
	carbon := []byte("<message from='alice@localhost' to='alice@localhost/one' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + string(msg) + "</forwarded></received></message>")
	if mine := one.s.v2.route(one, carbon); mine != nil {
		t.Fatalf("the carbon of a message already delivered came through: %s", mine)
	}
	if got := queued(&two.client); len(got) != 0 {
		t.Fatalf("two got a second copy: %q", got)
	}
}

// joinAs makes r, a 2.0 session bound to jid, one of its account's
// delivery targets under the name jid.
func joinAs(srv *Server, jid string, r *relay) *account {
	r.name = jid
	if r.s.v2 == nil {
		r.s.v2 = &session2{sm: sm.New(sm.Config{}), jid: jid}
		r.hooks = r.s.v2
	}
	r.s.v2.jid = jid
	acc, _ := srv.registry.join(r, false)
	return acc
}
