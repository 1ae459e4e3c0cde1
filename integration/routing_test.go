//go:build integration

package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// routingFixture is the cast of contract sections 5 and 6: two 2.0 sessions
// and one classic session of alice, a classic peer (bob) and a 2.0 peer
// (carol), all through one proxy whose upstream legs run through a Tap.
type routingFixture struct {
	e          *env
	up         *harness.Tap    // what the proxy writes upstream
	a1, a2, a3 *harness.Client // alice: 2.0, 2.0, classic
	bob        *harness.Client // classic peer
	carol      *harness.Client // 2.0 peer
}

// newRoutingFixture starts a proxy in front of srv, with its upstream legs
// tapped, and logs the cast in through it.
func newRoutingFixture(t *testing.T, srv harness.Server) *routingFixture {
	t.Helper()
	up, err := harness.NewTap(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	e := startProxy(t, srv, func(c *proxy.Config) { c.Upstream = up.Addr() })
	x2 := func(tag string) func(*harness.Login) {
		return func(l *harness.Login) {
			l.SASL2 = true
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>" + tag + "</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/><presence xmlns='jabber:client'/></bind>"
		}
	}
	f := &routingFixture{e: e, up: up, a1: e.login(t, "alice", x2("one")), a2: e.login(t, "alice", x2("two")), a3: e.login(t, "alice")}
	// A typical classic client: carbons on, online.
	send(t, f.a3, "<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	waitFor(t, f.a3, "carbons", "result")
	goOnline(t, f.a3)
	f.bob = e.login(t, "bob")
	goOnline(t, f.bob)
	f.carol = e.login(t, "carol", x2("peer"))
	f.drain()
	return f
}

// sentUpstream returns every message carrying marker that the proxy wrote
// upstream, on any leg, as written.
func (f *routingFixture) sentUpstream(marker string) []string {
	var out []string
	for _, leg := range f.up.Sent() {
		rest := string(leg)
		for {
			i := strings.Index(rest, marker)
			if i < 0 {
				break
			}
			start := strings.LastIndex(rest[:i], "<message")
			end := strings.Index(rest[i:], "</message>")
			if start < 0 || end < 0 {
				rest = rest[i+len(marker):]
				continue
			}
			end += i + len("</message>")
			out = append(out, rest[start:end])
			rest = rest[end:]
		}
	}
	return out
}

// drain reads and drops whatever the cast has received so far.
func (f *routingFixture) drain() {
	for _, c := range []*harness.Client{f.a1, f.a2, f.a3, f.bob, f.carol} {
		c.Collect(300 * time.Millisecond)
	}
}

// seen is what one client received that carries a marker.
type seen struct {
	n   int
	els []string
}

func (s seen) has(part string) bool {
	for _, el := range s.els {
		if strings.Contains(el, part) {
			return true
		}
	}
	return false
}

// collect reads each client for a while and keeps the elements with marker.
func collect(marker string, clients ...*harness.Client) []seen {
	out := make([]seen, len(clients))
	done := make(chan struct{})
	for i, c := range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, el := range c.Collect(time.Second) {
				if strings.Contains(string(el), marker) {
					out[i].n++
					out[i].els = append(out[i].els, string(el))
				}
			}
		}()
	}
	for range clients {
		<-done
	}
	return out
}

func TestRoutingAndMigrationRules(t *testing.T) {
	// expect is how many copies each client of the fixture receives, and
	// how many the archive of alice's account holds. The archive is the
	// 1.0 server's: it decides what it stores, the proxy only adds
	// <no-store/> to what a 2.0 client sends to a full JID. Both servers
	// were checked to store the same messages.
	type expect struct{ a1, a2, a3, bob, carol, archived int }
	// bareTo is the exact address of a message rerouted to alice's bare JID.
	bareTo := "to='alice@" + domain + "'"
	tests := []struct {
		name string
		// send sends a message carrying marker.
		send func(t *testing.T, f *routingFixture, marker string)
		want expect
		// check looks at what was seen: [a1, a2, a3, bob, carol].
		check func(t *testing.T, f *routingFixture, marker string, s []seen)
		// after restores the fixture.
		after func(t *testing.T, f *routingFixture)
	}{
		{
			name: "section 5: a bare-JID chat reaches every 2.0 session once and classic keeps 1.0 delivery",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, "alice@"+domain, "chat", m)
			},
			want: expect{a1: 1, a2: 1, a3: 1, archived: 1},
		},
		{
			name: "section 5: a bare-JID chat reaches every 2.0 session once even when a classic session holds a higher priority",
			send: func(t *testing.T, f *routingFixture, m string) {
				// The 1.0 server now delivers to the classic session only
				// and carbons the rest.
				setPresence(t, f.a3, "<presence><priority>10</priority></presence>", "<priority>10</priority>")
				sendChat(f.bob, "alice@"+domain, "chat", m)
			},
			want: expect{a1: 1, a2: 1, a3: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 0; i < 2; i++ {
					if !s[i].has("<message") || !s[i].has(bareTo) {
						t.Errorf("2.0 session %d did not get the unwrapped message: %v", i+1, s[i].els)
					}
				}
			},
			after: func(t *testing.T, f *routingFixture) { setPresence(t, f.a3, "<presence/>", "") },
		},
		{
			name: "section 5: a bare-JID headline reaches every 2.0 session once even when a classic session holds a higher priority",
			send: func(t *testing.T, f *routingFixture, m string) {
				// Servers give bare-JID headlines to every resource
				// (RFC 6121 8.5.2.1.1) and the proxy's tap of the classic
				// leg sees it too: still once per 2.0 session.
				setPresence(t, f.a3, "<presence><priority>10</priority></presence>", "<priority>10</priority>")
				sendChat(f.bob, "alice@"+domain, "headline", m)
			},
			// Neither server archives headlines.
			want:  expect{a1: 1, a2: 1, a3: 1, archived: 0},
			after: func(t *testing.T, f *routingFixture) { setPresence(t, f.a3, "<presence/>", "") },
		},
		{
			name: "section 5: a bare-JID normal message without body reaches every 2.0 session once even when a classic session holds a higher priority",
			send: func(t *testing.T, f *routingFixture, m string) {
				setPresence(t, f.a3, "<presence><priority>10</priority></presence>", "<priority>10</priority>")
				_ = f.bob.Send(fmt.Sprintf("<message to='alice@%s' id='%s'><x xmlns='urn:example:marker'>%s</x></message>", domain, harness.NewID(), m))
			},
			// Nothing archivable in it: neither server stores it.
			want:  expect{a1: 1, a2: 1, a3: 1, archived: 0},
			after: func(t *testing.T, f *routingFixture) { setPresence(t, f.a3, "<presence/>", "") },
		},
		{
			name: "section 5: a 2.0 message to this session's full JID is delivered here only and not archived",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.carol, f.a1.JID, "chat", m)
			},
			want: expect{a1: 1, archived: 0},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				if s[0].has("urn:xmpp:carbons:2") || s[0].has("urn:xmpp:hints") {
					t.Errorf("1.0 modifiers reached the 2.0 client: %v", s[0].els)
				}
				if !s[0].has("<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>") {
					t.Errorf("the 2.0 marker is missing: %v", s[0].els)
				}
			},
		},
		{
			name: "section 5: a bare-JID normal message with a body reaches every 2.0 session once",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, "alice@"+domain, "normal", m)
			},
			want: expect{a1: 1, a2: 1, a3: 1, archived: 1},
		},
		{
			name: "section 5: a message by a classic session of the account reaches the 2.0 sessions as a sent carbon",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.a3, "bob@"+domain, "chat", m)
			},
			want: expect{a1: 1, a2: 1, bob: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 0; i < 2; i++ {
					if !s[i].has("<sent xmlns='urn:xmpp:carbons:2'>") {
						t.Errorf("2.0 session %d did not get a sent carbon: %v", i+1, s[i].els)
					}
				}
			},
		},
		{
			name: "section 6 entering: a full-JID normal message with other archivable content is rerouted like chat",
			send: func(t *testing.T, f *routingFixture, m string) {
				// A reaction, no body.
				_ = f.bob.Send(fmt.Sprintf("<message to='%s' id='%s'><reactions xmlns='urn:xmpp:reactions:0' id='%s'><reaction>+1</reaction></reactions></message>", f.a1.JID, harness.NewID(), m))
			},
			want: expect{a1: 1, a2: 1, a3: 0, archived: 0},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 0; i < 2; i++ {
					if !s[i].has(bareTo) {
						t.Errorf("2.0 session %d: not rerouted to the bare JID: %v", i+1, s[i].els)
					}
				}
			},
		},
		{
			name: "section 5: a message by another session of the account arrives as a sent carbon",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.a1, "bob@"+domain, "chat", m)
			},
			// The sender's archive holds what the account sent.
			want: expect{a2: 1, a3: 1, bob: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 1; i < 3; i++ {
					if !s[i].has("<sent xmlns='urn:xmpp:carbons:2'>") {
						t.Errorf("alice session %d did not get a sent carbon: %v", i+1, s[i].els)
					}
				}
			},
		},
		{
			name: "section 6 leaving: a message to a full JID gets private, no-copy, no-store and xmpp-2",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.a1, f.bob.JID, "chat", m)
			},
			want: expect{bob: 1, archived: 0},
			check: func(t *testing.T, f *routingFixture, m string, s []seen) {
				modifiers := []string{"<private xmlns='urn:xmpp:carbons:2'/>", "<no-copy xmlns='urn:xmpp:hints'/>", "<no-store xmlns='urn:xmpp:hints'/>", "<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>"}
				up := f.sentUpstream(m)
				if len(up) != 1 {
					t.Fatalf("the proxy wrote the message upstream %d times, want once: %q", len(up), up)
				}
				for _, part := range modifiers {
					if !strings.Contains(up[0], part) {
						t.Errorf("the message the proxy wrote upstream lacks %s: %s", part, up[0])
					}
				}
				// What the receiving server does with <private/>:
				// Prosody takes it off (it honours it by sending no
				// carbons), ejabberd keeps it.
				keepsPrivate, ok := map[string]bool{"prosody": false, "ejabberd": true}[f.e.srv.Name()]
				if !ok {
					t.Fatalf("no <private/> delivery recorded for %s", f.e.srv.Name())
				}
				for _, part := range modifiers {
					want := part != modifiers[0] || keepsPrivate
					if s[3].has(part) != want {
						t.Errorf("bob's copy has %s: %v, want %v: %v", part, !want, want, s[3].els)
					}
				}
				// no-store keeps it out of the receiver's archive too.
				control := "control-" + harness.NewID()
				sendChat(f.a1, "bob@"+domain, "chat", control)
				if n := archiveCounts(t, f.bob, control, m)[0]; n != 0 {
					t.Errorf("bob's archive holds the full-JID message %d times, want none", n)
				}
			},
		},
		{
			name: "section 6 leaving: every message gets xmpp-2",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.a1, "bob@"+domain, "chat", m)
			},
			want: expect{a2: 1, a3: 1, bob: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				if !s[3].has("<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>") || s[3].has("<no-store") {
					t.Errorf("bob's copy of a bare-JID message: %v", s[3].els)
				}
			},
		},
		{
			name: "section 6 entering: a 1.0 message to the bare JID is marked xmpp-1",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, "alice@"+domain, "chat", m)
			},
			want: expect{a1: 1, a2: 1, a3: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 0; i < 2; i++ {
					if !s[i].has("<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>") {
						t.Errorf("2.0 session %d: no xmpp-1 marker: %v", i+1, s[i].els)
					}
				}
			},
		},
		{
			name: "section 6 entering: a 2.0 message to the bare JID is not marked xmpp-1",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.carol, "alice@"+domain, "chat", m)
			},
			want: expect{a1: 1, a2: 1, a3: 1, archived: 1},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				for i := 0; i < 2; i++ {
					if s[i].has("<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>") || !s[i].has("<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>") {
						t.Errorf("2.0 session %d: want xmpp-2 and no xmpp-1: %v", i+1, s[i].els)
					}
				}
			},
		},
		{
			name: "section 6 entering: a full-JID chat without modifiers is rerouted to every 2.0 session and archived",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, f.a1.JID, "chat", m)
			},
			want:  expect{a1: 1, a2: 1, a3: 1, archived: 1},
			check: checkRerouted,
		},
		{
			name: "section 6 entering: a full-JID normal message with a body is rerouted like chat and archived",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, f.a1.JID, "normal", m)
			},
			want:  expect{a1: 1, a2: 1, a3: 1, archived: 1},
			check: checkRerouted,
		},
		{
			name: "section 6 entering: a bodiless full-JID normal message stays with that session and is not archived",
			send: func(t *testing.T, f *routingFixture, m string) {
				_ = f.bob.Send(fmt.Sprintf("<message to='%s' id='%s'><x xmlns='urn:example:marker'>%s</x></message>", f.a1.JID, harness.NewID(), m))
			},
			want: expect{a1: 1, archived: 0},
		},
		{
			name: "section 6 entering: a full-JID message with no-copy stays with that session",
			send: func(t *testing.T, f *routingFixture, m string) {
				_ = f.bob.Send(fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s</body><no-copy xmlns='urn:xmpp:hints'/></message>", f.a1.JID, harness.NewID(), m))
			},
			// Both servers archive a 1.0 chat with a body whatever its
			// address: the proxy cannot keep it out of the archive.
			want: expect{a1: 1, archived: 1},
		},
		{
			name: "section 6 entering: a headline to a full JID stays with that session and is not archived",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, f.a1.JID, "headline", m)
			},
			want: expect{a1: 1, archived: 0},
		},
		{
			name: "section 6 entering: a 1.0 message is marked xmpp-1",
			send: func(t *testing.T, f *routingFixture, m string) {
				sendChat(f.bob, f.a1.JID, "headline", m)
			},
			want: expect{a1: 1, archived: 0},
			check: func(t *testing.T, _ *routingFixture, _ string, s []seen) {
				if !s[0].has("<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>") {
					t.Errorf("no xmpp-1 marker: %v", s[0].els)
				}
			},
		},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				marker := "m-" + harness.NewID()
				tc.send(t, f, marker)
				s := collect(marker, f.a1, f.a2, f.a3, f.bob, f.carol)
				if tc.after != nil {
					tc.after(t, f)
					f.drain()
				}
				for i := 0; i < 2; i++ {
					if s[i].has("<received xmlns='urn:xmpp:carbons:2'") {
						t.Errorf("2.0 session %d saw a <received> carbon wrapper: %v", i+1, s[i].els)
					}
				}
				w := tc.want
				for i, want := range []int{w.a1, w.a2, w.a3, w.bob, w.carol} {
					if s[i].n != want {
						t.Errorf("%s saw the message %d times, want %d: %v", []string{"a1", "a2", "a3", "bob", "carol"}[i], s[i].n, want, s[i].els)
					}
				}
				// Every message above was handled by the server before
				// this control, sent after the copies arrived.
				control := "control-" + harness.NewID()
				sendChat(f.bob, "alice@"+domain, "chat", control)
				if n := archiveCounts(t, f.a3, control, marker)[0]; n != w.archived {
					t.Errorf("alice's archive holds the message %d times, want %d", n, w.archived)
				}
				if tc.check != nil {
					tc.check(t, f, marker, s)
				}
			})
		}
	})
}

// checkRerouted checks a full-JID message rerouted to the bare JID: both
// 2.0 sessions get it addressed to the bare JID, and the classic session
// gets the received carbon both 1.0 servers send for a full-JID chat, or
// normal message with a body, to another resource.
func checkRerouted(t *testing.T, f *routingFixture, _ string, s []seen) {
	t.Helper()
	for i := 0; i < 2; i++ {
		if !s[i].has("to='alice@" + domain + "'") {
			t.Errorf("2.0 session %d: the rerouted copy is not addressed to the bare JID: %v", i+1, s[i].els)
		}
	}
	if !s[2].has("<received xmlns='urn:xmpp:carbons:2'>") || !s[2].has("to='"+f.a1.JID+"'") {
		t.Errorf("the classic session did not get the 1.0 received carbon of the message to %s: %v", f.a1.JID, s[2].els)
	}
}

// TestA20MessageToAnOfflineFullJIDBounces: the proxy answers a 2.0
// client's message to an offline full JID itself. Nothing reaches alice,
// nothing goes upstream, and so no archive holds it: not alice's, and not
// carol's, as if it had been delivered.
func TestA20MessageToAnOfflineFullJIDBounces(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		marker := "gone-" + harness.NewID()
		id := harness.NewID()
		_ = f.carol.Send(fmt.Sprintf("<message to='alice@%s/no-such-resource' type='chat' id='%s'><body>%s</body></message>", domain, id, marker))
		bounce := waitFor(t, f.carol, "type='error'", id, "service-unavailable")
		if !contains(bounce, "from='alice@"+domain+"/no-such-resource'") {
			t.Errorf("bounce not from the offline JID: %s", bounce)
		}
		s := collect(marker, f.a1, f.a2, f.a3)
		for i := range s {
			if s[i].n != 0 {
				t.Errorf("alice session %d got a message meant for an offline resource", i+1)
			}
		}
		// carol's next message is archived in both accounts; once it is
		// there, the bounced one, sent before on the same leg, would be.
		control := "control-" + harness.NewID()
		sendChat(f.carol, "alice@"+domain, "chat", control)
		if n := archiveCounts(t, f.a3, control, marker)[0]; n != 0 {
			t.Errorf("alice's archive holds the bounced message %d times", n)
		}
		if n := archiveCounts(t, f.carol, control, marker)[0]; n != 0 {
			t.Errorf("carol's archive holds the bounced message %d times", n)
		}
		if up := f.sentUpstream(marker); len(up) != 0 {
			t.Errorf("the proxy sent the bounced message upstream: %q", up)
		}
	})
}

// TestA20MessageTheServerReroutedIsDropped: a second proxy in front of the
// same server cannot know alice's resources, so its 2.0 client's message
// to an offline resource of alice goes up as the leaving rule makes it,
// and the 1.0 server reroutes it to the bare JID. dave, connected directly
// to the server, plays that proxy.
func TestA20MessageTheServerReroutedIsDropped(t *testing.T) {
	// What the 1.0 server makes of it for alice's classic session.
	classic := map[string]struct {
		to      func(f *routingFixture) string
		private bool
	}{
		// Prosody delivers it to every resource, to unchanged and
		// <private/> stripped.
		"prosody": {func(*routingFixture) string { return "alice@" + domain + "/ghost" }, false},
		// ejabberd delivers it to every resource of the highest priority
		// and addresses each copy to that resource (ejabberd_c2s
		// fix_from_to), <private/> kept.
		"ejabberd": {func(f *routingFixture) string { return f.a3.JID }, true},
	}
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		dave := f.e.login(t, "dave", directTo(srv))
		ghost := "ghost-" + harness.NewID()
		send(t, dave, fmt.Sprintf("<message to='alice@%s/ghost' type='chat' id='%s'><body>%s</body>"+
			"<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/><no-store xmlns='urn:xmpp:hints'/>"+
			"<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>", domain, harness.NewID(), ghost))
		// The server handles dave's stanzas in order, so each session has
		// had its copy of the ghost before a later bare-JID chat. A copy
		// one leg handed to a sibling is queued before that leg's own
		// control message, so a second round covers those too.
		got := make([][][]byte, 3)
		for round := 0; round < 2; round++ {
			control := "control-" + harness.NewID()
			sendChat(dave, "alice@"+domain, "chat", control)
			for i, c := range []*harness.Client{f.a1, f.a2, f.a3} {
				got[i] = append(got[i], readThrough(t, c, control)...)
			}
		}
		t.Run("the classic session gets it as the 1.0 server delivers it", func(t *testing.T) {
			want, ok := classic[srv.Name()]
			if !ok {
				t.Fatalf("no 1.0 delivery recorded for %s", srv.Name())
			}
			copies := elementsWith(got[2], ghost)
			if len(copies) != 1 {
				t.Fatalf("the classic session got %d copies, want 1: %q", len(copies), copies)
			}
			if to := attrValue(string(copies[0]), "to"); to != want.to(f) {
				t.Errorf("the classic copy is to %q, want %q", to, want.to(f))
			}
			if private := contains(copies[0], "<private xmlns='urn:xmpp:carbons:2'/>"); private != want.private {
				t.Errorf("the classic copy has <private/>: %v, want %v: %s", private, want.private, copies[0])
			}
		})
		t.Run("no 2.0 session of the account sees it", func(t *testing.T) {
			if srv.Name() == "ejabberd" {
				t.Skipf("ejabberd addresses each rerouted copy to the session it delivers it to, so it looks like a message to that session "+
					"(docs/protocol.md); the 2.0 sessions got %d and %d copies", len(elementsWith(got[0], ghost)), len(elementsWith(got[1], ghost)))
			}
			for i := 0; i < 2; i++ {
				if copies := elementsWith(got[i], ghost); len(copies) != 0 {
					t.Errorf("2.0 session %d got the rerouted message: %q", i+1, copies)
				}
			}
		})
	})
}

// readThrough reads c up to and including the first element with marker.
func readThrough(t *testing.T, c *harness.Client, marker string) [][]byte {
	t.Helper()
	var read [][]byte
	_, err := c.WaitFor(wait, func(el []byte) bool {
		read = append(read, el)
		return contains(el, marker)
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", marker, err)
	}
	return read
}

// elementsWith returns the elements that contain marker.
func elementsWith(els [][]byte, marker string) [][]byte {
	var out [][]byte
	for _, el := range els {
		if contains(el, marker) {
			out = append(out, el)
		}
	}
	return out
}

// sendChat sends a message of type typ with body to to.
func sendChat(c *harness.Client, to, typ, body string) {
	_ = c.Send(fmt.Sprintf("<message to='%s' type='%s' id='%s'><body>%s</body></message>", to, typ, harness.NewID(), body))
}

// TestRoomMessagesToAFullJIDStayWithThatSession covers the MUC rows: a
// groupchat message and a MUC private message reach the joined 2.0 session
// only, once. alice's classic session, not in the room, gets nothing: no
// server sends carbons of either.
func TestRoomMessagesToAFullJIDStayWithThatSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		room := fmt.Sprintf("rules-%s@%s", harness.NewID(), srv.MUCService())
		openRoom(t, f.bob, room, "bob")
		send(t, f.a1, fmt.Sprintf("<presence to='%s/alice'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>", room))
		waitFor(t, f.a1, "<presence", room+"/alice", "110")
		f.drain()
		for _, tc := range []struct {
			name string
			send func(marker string)
			// archived is how many times alice's archive holds it.
			archived int
		}{
			// The room archives groupchat; neither server puts it in
			// the occupant's own archive.
			{"section 6 entering: groupchat to a full JID is single-session and not archived", func(m string) {
				sendChat(f.bob, room, "groupchat", m)
			}, 0},
			// Both servers store a MUC private message with a body in
			// the recipient's archive, like any 1.0 chat.
			{"section 6 entering: a MUC private message is single-session", func(m string) {
				sendChat(f.bob, room+"/alice", "chat", m)
			}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				marker := "room-" + harness.NewID()
				tc.send(marker)
				s := collect(marker, f.a1, f.a2, f.a3)
				if s[0].n != 1 || s[1].n != 0 || s[2].n != 0 {
					t.Fatalf("joined session saw it %d times, the other 2.0 session %d times, the classic session %d times; want 1, 0 and 0\n%v\n%v\n%v",
						s[0].n, s[1].n, s[2].n, s[0].els, s[1].els, s[2].els)
				}
				if s[0].has("<received") {
					t.Fatalf("a carbon wrapper reached the 2.0 session: %v", s[0].els)
				}
				control := "control-" + harness.NewID()
				sendChat(f.bob, "alice@"+domain, "chat", control)
				if n := archiveCounts(t, f.a3, control, marker)[0]; n != tc.archived {
					t.Errorf("alice's archive holds it %d times, want %d", n, tc.archived)
				}
			})
		}
	})
}

// TestFullJIDMessagesFromA20ClientAreNotArchived checks the archive: a 2.0
// client's message to a full JID is transient (no-store on the way out).
func TestFullJIDMessagesFromA20ClientAreNotArchived(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		transient, archived := "transient-"+harness.NewID(), "archived-"+harness.NewID()
		sendChat(f.carol, f.a1.JID, "chat", transient)
		sendChat(f.carol, "alice@"+domain, "chat", archived)
		// The bare-JID message, sent second, is the control.
		n := archiveCounts(t, f.a3, archived, transient, archived)
		if n[0] != 0 {
			t.Errorf("the full-JID 2.0 message is archived (%d copies)", n[0])
		}
		if n[1] != 1 {
			t.Errorf("the bare-JID 2.0 message is archived %d times, want once", n[1])
		}
	})
}

// TestAFullJIDMessageWithPrivateStaysWithThatSession: bob is a classic
// session through the proxy. Prosody takes the <private/> off before
// delivery; the proxy saw it on bob's way up and puts it back. <private/>
// also keeps the 1.0 server from sending alice's classic session a carbon.
func TestAFullJIDMessageWithPrivateStaysWithThatSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		marker := "private-" + harness.NewID()
		_ = f.bob.Send(fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s</body><private xmlns='urn:xmpp:carbons:2'/></message>", f.a1.JID, harness.NewID(), marker))
		s := collect(marker, f.a1, f.a2, f.a3)
		if s[0].n != 1 || s[1].n != 0 || s[2].n != 0 {
			t.Fatalf("the addressed 2.0 session saw it %d times, the other %d, the classic session %d; want 1, 0 and 0", s[0].n, s[1].n, s[2].n)
		}
		// Both servers archive a 1.0 chat with a body, <private/> or not:
		// the proxy cannot keep it out of the archive.
		control := "control-" + harness.NewID()
		sendChat(f.bob, "alice@"+domain, "chat", control)
		if n := archiveCounts(t, f.a3, control, marker)[0]; n != 1 {
			t.Errorf("alice's archive holds it %d times, want once", n)
		}
	})
}

// TestNoResourceLockingAReplyToABareJIDStaysBare: bob writes to alice's
// bare JID from one of his two classic sessions, and alice's 2.0 session
// replies to bob's bare JID. The proxy must not lock onto the full JID bob
// wrote from: what it writes upstream is still addressed to the bare JID,
// so the 1.0 server delivers it by its own rules for a bare-JID chat.
func TestNoResourceLockingAReplyToABareJIDStaysBare(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		bob2 := f.e.login(t, "bob")
		goOnline(t, bob2) // the same priority as bob's first session: 0
		f.drain()
		bob2.Collect(300 * time.Millisecond)

		question := "question-" + harness.NewID()
		sendChat(f.bob, "alice@"+domain, "chat", question)
		if s := collect(question, f.a1); s[0].n != 1 || !s[0].has("from='"+f.bob.JID+"'") {
			t.Fatalf("alice's 2.0 session did not get bob's message from %s once: %v", f.bob.JID, s[0].els)
		}

		reply := "reply-" + harness.NewID()
		sendChat(f.a1, "bob@"+domain, "chat", reply)
		s := collect(reply, f.bob, bob2, f.a3)
		bareTo := "to='bob@" + domain + "'"
		up := f.sentUpstream(reply)
		if len(up) != 1 || attrValue(up[0], "to") != "bob@"+domain {
			t.Fatalf("the proxy wrote the reply upstream as %q, want once to bob@%s", up, domain)
		}
		// Both servers deliver a bare-JID chat to every resource at the
		// top priority, and keep the bare `to` on each copy.
		for i, name := range []string{"bob's first session", "bob's second session"} {
			if s[i].n != 1 || !s[i].has(bareTo) {
				t.Errorf("%s got the reply %d times, want once to bob@%s: %v", name, s[i].n, domain, s[i].els)
			}
		}
		// The 1.0 sent carbon forwards the message as the server got it.
		if s[2].n != 1 || !s[2].has("<sent xmlns='urn:xmpp:carbons:2'>") || !s[2].has(bareTo) {
			t.Errorf("alice's classic session did not get a sent carbon of the reply to bob@%s: %v", domain, s[2].els)
		}
	})
}

// archiveCounts queries the archive of c's account (XEP-0313) until it
// holds control, a message archived after the ones under test, and returns
// how many archived messages carry each marker. Waiting for control, not
// for a while, makes a zero mean that the server had the message and did
// not store it.
func archiveCounts(t *testing.T, c *harness.Client, control string, markers ...string) []int {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		results := archiveQuery(t, c)
		if len(elementsWith(results, control)) > 0 {
			counts := make([]int, len(markers))
			for i, m := range markers {
				counts[i] = len(elementsWith(results, m))
			}
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive never held the control message %s", control)
		}
		// No pause: the next question is the next look.
	}
}

// archiveQuery asks the archive of c's account for its last 50 messages and
// returns the results, skipping whatever else c receives meanwhile.
func archiveQuery(t testing.TB, c *harness.Client) [][]byte {
	t.Helper()
	id := harness.NewID()
	send(t, c, "<iq type='set' id='mam-"+id+"'><query xmlns='urn:xmpp:mam:2' queryid='q-"+id+"'>"+
		"<set xmlns='http://jabber.org/protocol/rsm'><max>50</max><before/></set></query></iq>")
	var results [][]byte
	for {
		el := waitFor(t, c, "")
		switch {
		case contains(el, "queryid='q-"+id+"'"):
			results = append(results, el)
		case contains(el, "<iq", "id='mam-"+id+"'"):
			if !contains(el, "type='result'") {
				t.Fatalf("archive query failed: %s", el)
			}
			return results
		}
	}
}

// TestAMessageForOneSessionIsNeverInAnotherSessionsCatchUp: both 1.0
// servers archive a 1.0 chat to a full JID with <private/> or <no-copy/>,
// and a MUC private message, though each was for one session only. A new
// 2.0 session of the account syncing the archive gets none of them; a
// full-JID chat without modifiers (rerouted to the whole account) and a
// bare-JID chat are in its catch-up (contract section 5: full-JID messages
// are never in a catch-up).
func TestAMessageForOneSessionIsNeverInAnotherSessionsCatchUp(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		f := newRoutingFixture(t, srv)
		room := fmt.Sprintf("catchup-%s@%s", harness.NewID(), srv.MUCService())
		openRoom(t, f.bob, room, "bob")
		send(t, f.a1, fmt.Sprintf("<presence to='%s/alice'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>", room))
		waitFor(t, f.a1, "<presence", room+"/alice", "110")
		m := harness.NewID()
		chatTo := func(to, body, extra string) {
			send(t, f.bob, fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s %s</body>%s</message>", to, harness.NewID(), body, m, extra))
		}
		chatTo(f.a1.JID, "private", "<private xmlns='urn:xmpp:carbons:2'/>")
		chatTo(f.a1.JID, "no-copy", "<no-copy xmlns='urn:xmpp:hints'/>")
		chatTo(room+"/alice", "muc-pm", "")
		chatTo(f.a1.JID, "rerouted", "")
		chatTo("alice@"+domain, "bare", "")
		readThrough(t, f.a1, "bare "+m) // all of it has reached the server
		// ejabberd may deliver a message before its archive has it: wait
		// until the archive holds the last one, as the catch-up reads it.
		archiveCounts(t, f.a3, "bare "+m)
		late := f.e.login2(t, "alice", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>late</tag><sync xmlns='urn:xmpp:xmpp2:0' within='60'/></bind>"
		})
		before, synced, _ := catchup(t, late)
		got := strings.Join(bodiesWith(before, m), ", ")
		for _, kind := range []string{"private", "no-copy", "muc-pm"} {
			if strings.Contains(got, kind+" "+m) {
				t.Errorf("the catch-up has the %s message for another session: %s", kind, got)
			}
		}
		for _, kind := range []string{"rerouted", "bare"} {
			if n := strings.Count(got, kind+" "+m); n != 1 {
				t.Errorf("the catch-up has the %s message %d times, want once: %s", kind, n, got)
			}
		}
		if mm := syncedRE.FindSubmatch(synced); mm == nil || string(mm[3]) != "true" {
			t.Errorf("synced = %s, want complete", synced)
		}
	})
}

// TestEvery20SessionGetsABareJIDMessageWhateverItsPriority: in 2.0 there
// are no negative-priority exceptions (contract section 5). A 1.0 server
// keeps a bare-JID message from negative-priority resources, and ejabberd
// stores it offline when every resource is negative; the proxy raises a
// 2.0 session's negative priority to 0 on the way up, inline or later.
func TestEvery20SessionGetsABareJIDMessageWhateverItsPriority(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		x2 := func(tag string) func(*harness.Login) {
			return func(l *harness.Login) {
				l.SASL2 = true
				l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>" + tag + "</tag><presence xmlns='jabber:client'><priority>-5</priority></presence></bind>"
			}
		}
		g1, g2 := e.login(t, "grace", x2("one")), e.login(t, "grace", x2("two"))
		bob := e.login(t, "bob")
		goOnline(t, bob)
		for _, step := range []string{"inline presence", "later presence"} {
			if step == "later presence" {
				send(t, g2, "<presence><show>away</show><priority>-1</priority></presence>")
				waitFor(t, g1, "<presence", "from='"+g2.JID+"'")
			}
			m := "priority-" + harness.NewID()
			sendChat(bob, "grace@"+domain, "chat", m)
			s := collect(m, g1, g2)
			if s[0].n != 1 || s[1].n != 1 {
				t.Errorf("%s: the negative-priority 2.0 sessions got it %d and %d times, want once each", step, s[0].n, s[1].n)
			}
		}
	})
}
