package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

const (
	privateEl = "<private xmlns='urn:xmpp:carbons:2'/>"
	alice1    = "alice@localhost/one"
	bobDesk   = "bob@localhost/desk"
)

// privateFixture is one proxy's registry with a 2.0 session of alice
// (alice1), a classic session of alice and a classic session of bob.
type privateFixture struct {
	srv            *Server
	x2             *relay
	v              *session2
	bob, aliceDesk *relay
}

func newPrivateFixture() *privateFixture {
	srv := &Server{registry: newRegistry()}
	classic := func(jid string) *relay {
		srv.registry.bind(jid)
		return &relay{s: &session{srv: srv, fullJIDBound: jid}, hooks: classicHooks{}}
	}
	f := &privateFixture{srv: srv, bob: classic(bobDesk), aliceDesk: classic("alice@localhost/desk")}
	f.v = &session2{sm: sm.New(sm.Config{}), jid: alice1}
	f.x2 = &relay{s: &session{srv: srv, log: slog.New(slog.NewTextHandler(io.Discard, nil)), v2: f.v}, hooks: f.v}
	f.v.acc = joinAs(srv, alice1, f.x2)
	return f
}

func (f *privateFixture) hints() int { return int(f.v.acc.private.n.Load()) }

// chat is a chat message to a full JID, with extra as its last children.
func chat(from, to, id, extra string) []byte {
	attrs := fmt.Sprintf(" to='%s' type='chat'", to)
	if from != "" {
		attrs = fmt.Sprintf(" from='%s'", from) + attrs
	}
	if id != "" {
		attrs += fmt.Sprintf(" id='%s'", id)
	}
	return []byte("<message" + attrs + "><body>hi</body>" + extra + "</message>")
}

func TestPrivateThroughProsody(t *testing.T) {
	tests := []struct {
		name string
		// sender is the classic session that sends sent (nil: nothing is
		// sent through the proxy); delivered then arrives on alice1's leg.
		sender    func(f *privateFixture) *relay
		sent      []byte
		delivered []byte
		// stays: the copy keeps to=alice1 and carries <private/>; else it
		// was rerouted to the bare JID.
		stays     bool
		hintsLeft int
	}{
		{
			name:      "a classic sender's private chat that Prosody stripped stays with the addressed session",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "p1", privateEl),
			delivered: chat(bobDesk, alice1, "p1", ""),
			stays:     true,
		},
		{
			name:      "a private chat that ejabberd delivered with its marker uses the hint up",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "p1", privateEl),
			delivered: chat(bobDesk, alice1, "p1", privateEl),
			stays:     true,
		},
		{
			name:      "JIDs match whatever their case, and ids with their references resolved",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      []byte(`<message to='Alice@LOCALHOST/one' type='chat' id="a'b"><body>hi</body>` + privateEl + "</message>"),
			delivered: chat("Bob@localhost/desk", "alice@localhost/one", "a&apos;b", ""),
			stays:     true,
		},
		{
			name:      "another classic session of the account is a sender like any other",
			sender:    func(f *privateFixture) *relay { return f.aliceDesk },
			sent:      chat("", alice1, "p1", privateEl),
			delivered: chat("alice@localhost/desk", alice1, "p1", ""),
			stays:     true,
		},
		{
			name:      "a sender not connected through the proxy leaves no hint: the stripped chat is rerouted",
			delivered: chat("bob@remote.example/desk", alice1, "p1", ""),
		},
		{
			name:      "a private chat without id cannot be matched: it leaves no hint and is rerouted",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "", privateEl),
			delivered: chat(bobDesk, alice1, "", ""),
		},
		{
			name:      "a chat without private leaves no hint",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "p1", ""),
			delivered: chat(bobDesk, alice1, "p1", ""),
		},
		{
			name:      "a private nested in another element leaves no hint",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "p1", "<x xmlns='urn:example'>"+privateEl+"</x>"),
			delivered: chat(bobDesk, alice1, "p1", ""),
		},
		{
			name:      "a hint names the sender: the same id from someone else is rerouted",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", alice1, "p1", privateEl),
			delivered: chat("carol@localhost/desk", alice1, "p1", ""),
			hintsLeft: 1,
		},
		{
			name:      "a private message to a JID that is not a 2.0 session leaves no hint",
			sender:    func(f *privateFixture) *relay { return f.bob },
			sent:      chat("", "alice@localhost/desk", "p1", privateEl),
			delivered: chat(bobDesk, alice1, "p1", ""),
		},
		{
			name:      "a private message to an account without 2.0 sessions leaves no hint",
			sender:    func(f *privateFixture) *relay { return f.aliceDesk },
			sent:      chat("", "bob@localhost/two", "p1", privateEl),
			delivered: chat(bobDesk, alice1, "p1", ""),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newPrivateFixture()
			if tc.sender != nil {
				tc.sender(f).classicClient(tc.sent)
			}
			got := string(f.v.route(f.x2, tc.delivered))
			stays := strings.Contains(got, "to='"+alice1+"'") && strings.Count(got, privateEl) == 1
			rerouted := strings.Contains(got, "to='alice@localhost'") && !strings.Contains(got, privateEl)
			if tc.stays && !stays || !tc.stays && !rerouted {
				t.Errorf("stays = %v, want %v: %s", stays, tc.stays, got)
			}
			if n := f.hints(); n != tc.hintsLeft {
				t.Errorf("%d hints left, want %d", n, tc.hintsLeft)
			}
		})
	}
}

func TestPrivateHintsAreBoundedAndUsedOnce(t *testing.T) {
	var h messageHints
	hint := func(i int) messageHint { return messageHint{from: bobDesk, to: alice1, id: fmt.Sprint(i)} }
	for i := 0; i <= maxHints; i++ {
		h.add(hint(i))
	}
	if n := int(h.n.Load()); n != maxHints {
		t.Fatalf("%d hints kept, want %d", n, maxHints)
	}
	if h.take(hint(0)) {
		t.Error("the oldest hint was kept beyond the bound")
	}
	if !h.take(hint(maxHints)) {
		t.Error("the newest hint is missing")
	}
	if h.take(hint(maxHints)) {
		t.Error("a hint was used twice")
	}
}

// Every message a classic client sends, and every message a 2.0 session
// receives, passes these checks: without a private message in flight they
// cost no allocation.
func TestPrivateHotPathAllocs(t *testing.T) {
	f := newPrivateFixture()
	plain := chat("", alice1, "p1", "")
	delivered := chat(bobDesk, alice1, "p1", "")
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"a classic client's message without the carbons namespace", func() { f.bob.classicClient(plain) }},
		{"a 2.0 session's message while no hint waits", func() { f.v.acc.restorePrivate(delivered) }},
	} {
		if got := testing.AllocsPerRun(100, tc.f); got != 0 {
			t.Errorf("%s: %v allocations, want 0", tc.name, got)
		}
	}
}
