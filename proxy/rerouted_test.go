package proxy

import (
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

const (
	alice2    = "alice@localhost/two"
	carolX2   = "carol@localhost/peer"
	xmpp2Mark = "<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>"
)

func TestAMessageMeantForAnotherSessionIsDroppedWhereverItLands(t *testing.T) {
	// alice has 2.0 sessions one and two (and a classic one, desk); carol
	// is a 2.0 session of this proxy. Each case: what carol sends (through
	// noteFullJIDSend), then the copies the server delivers, each to the
	// session named, and whether that session drops it.
	type landing struct {
		at      string
		copy    []byte
		dropped bool
	}
	readdressed := func(to, id string) []byte { return chat(carolX2, to, id, privateEl+xmpp2Mark) }
	tests := []struct {
		name      string
		sent      []byte // nil: nothing sent through the proxy
		landings  []landing
		hintsLeft int
	}{
		{
			name: "a copy ejabberd readdressed to another session is dropped, every one of them",
			sent: chat("", alice1, "m1", ""),
			landings: []landing{
				{alice2, readdressed(alice2, "m1"), true},
				{"alice@localhost/three", readdressed("alice@localhost/three", "m1"), true},
			},
			hintsLeft: 1,
		},
		{
			name:     "the addressed session gets its message and uses the hint up",
			sent:     chat("", alice1, "m1", ""),
			landings: []landing{{alice1, readdressed(alice1, "m1"), false}},
		},
		{
			name:     "a message without the 2.0 mark is never judged by a hint",
			sent:     chat("", alice1, "m1", ""),
			landings: []landing{{alice2, chat(carolX2, alice2, "m1", ""), false}},
			// the hint waits for the addressed session
			hintsLeft: 1,
		},
		{
			name:     "a sender elsewhere leaves no hint: its copy cannot be told from a message to this session",
			landings: []landing{{alice2, readdressed(alice2, "m1"), false}},
		},
		{
			name:     "a message to a classic resource leaves no hint",
			sent:     chat("", "alice@localhost/desk", "m1", ""),
			landings: []landing{{alice2, readdressed(alice2, "m1"), false}},
		},
		{
			name:     "a message without id leaves no hint",
			sent:     chat("", alice1, "", ""),
			landings: []landing{{alice2, readdressed(alice2, ""), false}},
		},
		{
			name:     "a message to the bare JID leaves no hint",
			sent:     chat("", "alice@localhost", "m1", ""),
			landings: []landing{{alice2, readdressed(alice2, "m1"), false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPrivateFixture()
			if tt.sent != nil {
				f.x2.noteFullJIDSend(carolX2, tt.sent)
			}
			for i, l := range tt.landings {
				if got := f.v.acc.misdelivered(l.copy, l.at); got != l.dropped {
					t.Errorf("copy %d at %s: dropped = %v, want %v", i+1, l.at, got, l.dropped)
				}
			}
			if got := int(f.v.acc.sent.n.Load()); got != tt.hintsLeft {
				t.Errorf("%d hints left, want %d", got, tt.hintsLeft)
			}
		})
	}
}

func TestNoteFullJIDSendAllocatesNothingForABareJIDMessage(t *testing.T) {
	f := newPrivateFixture()
	msg := []byte("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
	if n := testing.AllocsPerRun(100, func() { f.x2.noteFullJIDSend(carolX2, msg) }); n != 0 {
		t.Fatalf("%v allocations per bare-JID message, want 0", n)
	}
}

// The rule is wired in: what a 2.0 client sends to a session's full JID
// leaves the hint, and the leg a readdressed copy lands on drops it.
func TestARerouted20MessageIsDroppedOnTheLegItLandsOn(t *testing.T) {
	f := newPrivateFixture()
	two := &relay{s: &session{srv: f.srv, log: f.x2.s.log, v2: &session2{sm: sm.New(sm.Config{}), jid: alice2}}}
	two.hooks = two.s.v2
	two.s.v2.acc = joinAs(f.srv, alice2, two)
	carol := &session2{sm: sm.New(sm.Config{}), jid: carolX2}
	viaCarol := quietRelay(f.srv, nil, carolX2)
	viaCarol.s.v2 = carol
	viaCarol.hooks = viaCarol.s.v2
	carol.fromClient(viaCarol, chat("", alice2, "m1", ""))
	if up := queued(&viaCarol.up); len(up) != 1 {
		t.Fatalf("carol's message was not forwarded: upstream got %q", up)
	}
	// alice2 went away before the server delivered; ejabberd gave the
	// copy to alice1, readdressed.
	if got := f.v.route(f.x2, chat(carolX2, alice1, "m1", privateEl+xmpp2Mark)); got != nil {
		t.Fatalf("the copy readdressed to alice1 was delivered: %s", got)
	}
}
