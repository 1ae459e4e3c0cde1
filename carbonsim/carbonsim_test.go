package carbonsim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	acct = "alice@example.org"
	sa   = acct + "/a"
	sb   = acct + "/b"
	sc   = acct + "/c"
	bob  = "bob@example.net/phone"
	room = "room@muc.example.net"
)

// Stanza builders: the top-level message as a leg receives it, and the
// forwarded message inside carbons and archive results.
func msgXML(attrs, children string) string {
	return "<message " + attrs + ">" + children + "</message>"
}

func fwd(attrs, children string) string {
	return "<message xmlns='jabber:client' " + attrs + ">" + children + "</message>"
}

func receivedCarbon(to, forwarded string) string {
	return "<message from='" + acct + "' to='" + to + "' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + forwarded + "</forwarded></received></message>"
}

func sentCarbon(to, forwarded string) string {
	return "<message from='" + acct + "' to='" + to + "' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + forwarded + "</forwarded></sent></message>"
}

// mamResult is an archive result; from is the archive, "" for the
// account's own (as Prosody sends it).
func mamResult(to, from, id, forwarded string) string {
	f := ""
	if from != "" {
		f = " from='" + from + "'"
	}
	return "<message to='" + to + "'" + f + "><result xmlns='urn:xmpp:mam:2' queryid='x2-sync' id='" + id + "'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>" + forwarded + "</forwarded></result></message>"
}

func sid(id string) string {
	return "<stanza-id xmlns='urn:xmpp:sid:0' by='" + acct + "' id='" + id + "'/>"
}
func oid(id string) string { return "<origin-id xmlns='urn:xmpp:sid:0' id='" + id + "'/>" }
func body(s string) string { return "<body>" + s + "</body>" }
func delay() string {
	return "<delay xmlns='urn:xmpp:delay' from='example.org' stamp='2026-01-01T00:00:00Z'/>"
}
func roomSID(id string) string {
	return "<stanza-id xmlns='urn:xmpp:sid:0' by='" + room + "' id='" + id + "'/>"
}

// Messages used across the cases.
var (
	// hello is a chat from bob to the account's bare JID, archived as S1.
	helloAttrs = "from='" + bob + "' to='" + acct + "' type='chat' id='h1'"
	hello      = msgXML(helloAttrs, body("hello")+oid("O1")+sid("S1"))
	helloFwd   = fwd(helloAttrs, body("hello")+oid("O1")+sid("S1"))
	// helloArchived is hello as the archive forwards it: Prosody strips the
	// stanza-id, the result id carries it.
	helloArchived = fwd(helloAttrs, body("hello")+oid("O1"))
	// fromA is what session a sent to bob (as the server stamped it).
	fromAAttrs = "from='" + sa + "' to='bob@example.net' type='chat' id='a1'"
	fromA      = fwd(fromAAttrs, body("from a")+oid("OA"))
)

// step is one thing that happens to the account.
type step struct {
	op      string // "join", "synced", "leave", or "" for an Observe
	session string
	stanza  string
	scope   Scope
}

func join(s string) step   { return step{op: "join", session: s} }
func synced(s string) step { return step{op: "synced", session: s} }
func leave(s string) step  { return step{op: "leave", session: s} }

// online joins sessions with an empty catch-up.
func online(ss ...string) []step {
	var out []step
	for _, s := range ss {
		out = append(out, join(s), synced(s))
	}
	return out
}

func on(session, stanza string) step { return step{session: session, stanza: stanza} }

func steps(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("steps: %T", p))
		}
	}
	return out
}

// got is one delivery as the tables write it: the session's resource and
// the stanza.
type got struct{ to, stanza string }

func run(t *testing.T, memory int, ss []step) ([]got, error) {
	t.Helper()
	a := NewAccount(acct, memory)
	var out []got
	var errs []error
	add := func(ds []Delivery) {
		for _, d := range ds {
			_, res, _ := strings.Cut(d.Session, "/")
			out = append(out, got{res, string(d.Stanza)})
		}
	}
	for _, s := range ss {
		switch s.op {
		case "join":
			a.Join(s.session)
		case "synced":
			add(a.Synced(s.session))
		case "leave":
			a.Leave(s.session)
		default:
			ds, err := a.Observe(Event{Session: s.session, Stanza: []byte(s.stanza), Scope: s.scope})
			add(ds)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return out, errors.Join(errs...)
}

func TestDeliveryRules(t *testing.T) {
	groupchat := msgXML("from='"+room+"/carol' to='"+sa+"' type='groupchat' id='g1'", body("hi room")+roomSID("R1"))
	tests := []struct {
		name   string
		memory int
		steps  []step
		want   []got
	}{
		{
			name:  "a received carbon is unwrapped into the original message",
			steps: steps(online(sb), on(sb, receivedCarbon(sb, helloFwd))),
			want:  []got{{"b", helloFwd}},
		},
		{
			name:  "a sent carbon is kept and not echoed to the sending session",
			steps: steps(online(sa, sb, sc), on(sb, sentCarbon(sb, fromA))),
			want:  []got{{"b", sentCarbon(sb, fromA)}, {"c", sentCarbon(sb, fromA)}},
		},
		{
			name: "a message a session sent to its own account does not come back to it",
			steps: steps(online(sa, sb),
				on(sb, sentCarbon(sb, fwd("from='"+sa+"' to='"+acct+"' type='chat' id='self1'", body("note")))),
				on(sb, msgXML("from='"+sa+"' to='"+acct+"' type='chat' id='self1'", body("note"))),
				on(sa, msgXML("from='"+sa+"' to='"+acct+"' type='chat' id='self1'", body("note")))),
			want: []got{{"b", sentCarbon(sb, fwd("from='"+sa+"' to='"+acct+"' type='chat' id='self1'", body("note")))}},
		},
		{
			name:  "a session's catch-up includes what it sent",
			steps: steps(join(sa), on(sa, mamResult(sa, "", "S9", fromA)), synced(sa)),
			want:  []got{{"a", mamResult(sa, "", "S9", fromA)}},
		},
		{
			name: "a sent carbon on each other leg is delivered once to each",
			steps: steps(online(sa, sb, sc),
				on(sb, sentCarbon(sb, fromA)), on(sc, sentCarbon(sc, fromA))),
			want: []got{{"b", sentCarbon(sb, fromA)}, {"c", sentCarbon(sb, fromA)}},
		},
		{
			name: "a bare-JID message reaching one session directly reaches every online session once",
			steps: steps(online(sa, sb, sc),
				on(sa, hello), on(sb, receivedCarbon(sb, helloFwd)), on(sc, receivedCarbon(sc, helloFwd))),
			want: []got{{"a", hello}, {"b", hello}, {"c", hello}},
		},
		{
			name: "a bare-JID message delivered to every leg directly is delivered once to each",
			steps: steps(online(sa, sb),
				on(sb, hello), on(sa, hello)),
			want: []got{{"a", hello}, {"b", hello}},
		},
		{
			name:  "a groupchat carbon is dropped",
			steps: steps(online(sb), on(sb, receivedCarbon(sb, fwd("from='"+room+"/carol' to='"+sa+"' type='groupchat' id='g1'", body("x"))))),
		},
		{
			name:  "a headline carbon is dropped",
			steps: steps(online(sb), on(sb, receivedCarbon(sb, fwd("from='news.example.net' to='"+acct+"' type='headline' id='n1'", body("x"))))),
		},
		{
			name:  "a sent groupchat carbon is dropped",
			steps: steps(online(sb), on(sb, sentCarbon(sb, fwd("from='"+sa+"' to='"+room+"' type='groupchat' id='g2'", body("x"))))),
		},
		{
			name:  "a carbon whose outer from is not the account's bare JID is dropped",
			steps: steps(online(sb), on(sb, strings.Replace(receivedCarbon(sb, helloFwd), "from='"+acct+"'", "from='"+bob+"'", 1))),
		},
		{
			name:  "a received carbon of a private full-JID message is dropped",
			steps: steps(online(sb), on(sb, receivedCarbon(sb, fwd("from='"+bob+"' to='"+sa+"' type='chat' id='p1'", body("psst")+"<private xmlns='urn:xmpp:carbons:2'/>")))),
		},
		{
			name:  "a sent carbon of a message sent with <no-copy/> is dropped",
			steps: steps(online(sb), on(sb, sentCarbon(sb, fwd(fromAAttrs, body("x")+"<no-copy xmlns='urn:xmpp:hints'/>")))),
		},
		{
			name: "a full-JID chat without modifier is rerouted to every session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x")))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x"))},
				{"b", msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x"))},
			},
		},
		{
			name: "a full-JID message with <private/> stays in its session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x")+"<private xmlns='urn:xmpp:carbons:2'/>"))),
			want: []got{{"a", msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x")+"<private xmlns='urn:xmpp:carbons:2'/>")}},
		},
		{
			name: "a full-JID message from a 2.0 client stays in its session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x")+"<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>"))),
			want: []got{{"a", msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='c1'", body("x")+"<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>")}},
		},
		{
			name: "a MUC private message to a full JID stays in its session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+room+"/carol' to='"+sa+"' type='chat' id='c1'", body("x")+"<x xmlns='http://jabber.org/protocol/muc#user'/>"))),
			want: []got{{"a", msgXML("from='"+room+"/carol' to='"+sa+"' type='chat' id='c1'", body("x")+"<x xmlns='http://jabber.org/protocol/muc#user'/>")}},
		},
		{
			name: "a normal full-JID message with a body reaches every session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' id='n1'", body("x")))),
			want: []got{{"a", msgXML("from='"+bob+"' to='"+sa+"' id='n1'", body("x"))}, {"b", msgXML("from='"+bob+"' to='"+sa+"' id='n1'", body("x"))}},
		},
		{
			name: "a normal full-JID message without archivable content stays in its session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' id='n1'", "<composing xmlns='http://jabber.org/protocol/chatstates'/>"))),
			want: []got{{"a", msgXML("from='"+bob+"' to='"+sa+"' id='n1'", "<composing xmlns='http://jabber.org/protocol/chatstates'/>")}},
		},
		{
			name:  "a message without a 'to' stays in its session",
			steps: steps(online(sa, sb), on(sa, msgXML("from='example.org' id='n1'", body("x")))),
			want:  []got{{"a", msgXML("from='example.org' id='n1'", body("x"))}},
		},
		{
			name: "a normal full-JID correction reaches every session",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+sa+"' id='n1'", "<replace xmlns='urn:xmpp:message-correct:0' id='n0'/>"))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+sa+"' id='n1'", "<replace xmlns='urn:xmpp:message-correct:0' id='n0'/>")},
				{"b", msgXML("from='"+bob+"' to='"+sa+"' id='n1'", "<replace xmlns='urn:xmpp:message-correct:0' id='n0'/>")},
			},
		},
		{
			name:  "a headline to the bare JID reaches every session",
			steps: steps(online(sa, sb), on(sa, msgXML("from='news.example.net' to='"+acct+"' type='headline' id='n1'", body("x")))),
			want: []got{
				{"a", msgXML("from='news.example.net' to='"+acct+"' type='headline' id='n1'", body("x"))},
				{"b", msgXML("from='news.example.net' to='"+acct+"' type='headline' id='n1'", body("x"))},
			},
		},
		{
			name:  "a groupchat message stays in the session of its leg",
			steps: steps(online(sa, sb), on(sa, groupchat)),
			want:  []got{{"a", groupchat}},
		},
		{
			name:  "an error message stays in the session of its leg",
			steps: steps(online(sa, sb), on(sa, msgXML("from='bob@example.net' to='"+acct+"' type='error' id='e1'", "<error type='cancel'/>"))),
			want:  []got{{"a", msgXML("from='bob@example.net' to='"+acct+"' type='error' id='e1'", "<error type='cancel'/>")}},
		},
		{
			name: "an explicit scope overrides the derived one",
			steps: steps(online(sa, sb),
				step{session: sa, stanza: hello, scope: ScopeSession},
				step{session: sa, stanza: groupchat, scope: ScopeAccount}),
			want: []got{{"a", hello}, {"a", groupchat}, {"b", groupchat}},
		},
		{
			name:  "a retransmitted message is not delivered twice",
			steps: steps(online(sa), on(sa, hello), on(sa, hello)),
			want:  []got{{"a", hello}},
		},
		{
			name: "an offline message flushed to one session reaches the others, and its catch-up copy does not repeat it",
			steps: steps(online(sa), join(sb),
				on(sb, msgXML(helloAttrs, body("hello")+oid("O1")+sid("S1")+delay())),
				on(sb, mamResult(sb, "", "S1", helloArchived)),
				synced(sb)),
			want: []got{
				{"a", msgXML(helloAttrs, body("hello")+oid("O1")+sid("S1")+delay())},
				{"b", mamResult(sb, "", "S1", helloArchived)},
			},
		},
		{
			name: "a live copy of a message already delivered by MAM catch-up is dropped",
			steps: steps(join(sb), on(sb, mamResult(sb, "", "S1", helloArchived)), synced(sb),
				on(sb, receivedCarbon(sb, helloFwd)), on(sb, hello)),
			want: []got{{"b", mamResult(sb, "", "S1", helloArchived)}},
		},
		{
			name: "live traffic during a catch-up is held until synced, minus what the catch-up delivered",
			steps: steps(join(sb),
				on(sb, hello),
				on(sb, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='h2'", body("again")+sid("S2"))),
				on(sb, mamResult(sb, "", "S1", helloArchived)),
				synced(sb)),
			want: []got{
				{"b", mamResult(sb, "", "S1", helloArchived)},
				{"b", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='h2'", body("again")+sid("S2"))},
			},
		},
		{
			name: "a copy held from another leg is also cancelled by the catch-up",
			steps: steps(online(sa), join(sb),
				on(sa, hello), on(sb, mamResult(sb, "", "S1", helloArchived)), synced(sb)),
			want: []got{{"a", hello}, {"b", mamResult(sb, "", "S1", helloArchived)}},
		},
		{
			name:   "a catch-up longer than the memory still cancels the held copy",
			memory: 2,
			steps: steps(join(sb), on(sb, hello),
				on(sb, mamResult(sb, "", "S1", helloArchived)),
				on(sb, mamResult(sb, "", "S2", fwd("from='"+bob+"' to='"+acct+"' id='2'", body("2")))),
				on(sb, mamResult(sb, "", "S3", fwd("from='"+bob+"' to='"+acct+"' id='3'", body("3")))),
				synced(sb)),
			want: []got{
				{"b", mamResult(sb, "", "S1", helloArchived)},
				{"b", mamResult(sb, "", "S2", fwd("from='"+bob+"' to='"+acct+"' id='2'", body("2")))},
				{"b", mamResult(sb, "", "S3", fwd("from='"+bob+"' to='"+acct+"' id='3'", body("3")))},
			},
		},
		{
			name:   "repeated copies during a catch-up are held once",
			memory: 2,
			steps: steps(online(sa), join(sb),
				on(sb, hello), on(sa, hello), on(sb, receivedCarbon(sb, helloFwd)), on(sb, hello),
				on(sb, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='h2'", body("again"))),
				synced(sb)),
			want: []got{
				{"a", hello},
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='h2'", body("again"))},
				{"b", hello},
				{"b", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='h2'", body("again"))},
			},
		},
		{
			name:  "a MAM result is always delivered, even for a message the session already has",
			steps: steps(online(sb), on(sb, hello), on(sb, mamResult(sb, "", "S1", helloArchived))),
			want:  []got{{"b", hello}, {"b", mamResult(sb, "", "S1", helloArchived)}},
		},
		{
			name: "a MAM result goes only to the session whose catch-up it is",
			steps: steps(online(sa), join(sb), on(sb, mamResult(sb, "", "S1", helloArchived)), synced(sb),
				on(sa, hello)),
			want: []got{{"b", mamResult(sb, "", "S1", helloArchived)}, {"a", hello}},
		},
		{
			name:  "a MAM result forged by a stranger is delivered but cancels nothing",
			steps: steps(join(sb), on(sb, hello), on(sb, mamResult(sb, "evil@example.com", "S1", helloArchived)), synced(sb)),
			want:  []got{{"b", mamResult(sb, "evil@example.com", "S1", helloArchived)}, {"b", hello}},
		},
		{
			name: "a room catch-up result cancels the held live copy of the groupchat message",
			steps: steps(join(sa), on(sa, groupchat),
				on(sa, mamResult(sa, room, "R1", fwd("from='"+room+"/carol' to='"+sa+"' type='groupchat' id='g1'", body("hi room")))),
				synced(sa)),
			want: []got{{"a", mamResult(sa, room, "R1", fwd("from='"+room+"/carol' to='"+sa+"' type='groupchat' id='g1'", body("hi room")))}},
		},
		{
			name: "a message with only an origin-id is de-duplicated by it",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+oid("O7"))),
				on(sb, receivedCarbon(sb, fwd("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+oid("O7"))))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+oid("O7"))},
				{"b", msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+oid("O7"))},
			},
		},
		{
			name: "a message with only an id is de-duplicated by id and sender",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))),
				on(sb, receivedCarbon(sb, fwd("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))},
				{"b", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))},
			},
		},
		{
			name: "the same id from two senders is two messages",
			steps: steps(online(sa),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))),
				on(sa, msgXML("from='carol@example.net/pc' to='"+acct+"' type='chat' id='x1'", body("y")))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x"))},
				{"a", msgXML("from='carol@example.net/pc' to='"+acct+"' type='chat' id='x1'", body("y"))},
			},
		},
		{
			name: "two messages with different stanza-ids are two messages even if the sender reused an id",
			steps: steps(online(sa),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x")+sid("S1"))),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("y")+sid("S2")))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("x")+sid("S1"))},
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat' id='x1'", body("y")+sid("S2"))},
			},
		},
		{
			name: "a stanza-id by someone else does not count",
			steps: steps(online(sa),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.net' id='S1'/>")),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("y")+"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.net' id='S1'/>"))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x")+"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.net' id='S1'/>")},
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("y")+"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.net' id='S1'/>")},
			},
		},
		{
			name: "a sent carbon without stanza-id matches its archived copy by origin-id",
			steps: steps(online(sb), join(sc),
				on(sb, sentCarbon(sb, fromA)),
				on(sc, mamResult(sc, "", "S9", fromA)),
				on(sc, sentCarbon(sc, fromA)),
				synced(sc)),
			want: []got{{"b", sentCarbon(sb, fromA)}, {"c", mamResult(sc, "", "S9", fromA)}},
		},
		{
			name: "a message with no key goes only to the session of its leg, once per arrival",
			steps: steps(online(sa, sb),
				on(sa, msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x"))),
				on(sb, receivedCarbon(sb, fwd("from='"+bob+"' to='"+acct+"' type='chat'", body("x"))))),
			want: []got{
				{"a", msgXML("from='"+bob+"' to='"+acct+"' type='chat'", body("x"))},
				{"b", fwd("from='"+bob+"' to='"+acct+"' type='chat'", body("x"))},
			},
		},
		{
			name: "a sent carbon with no key goes only to the session of its leg",
			steps: steps(online(sa, sb, sc),
				on(sb, sentCarbon(sb, fwd("from='"+sa+"' to='bob@example.net' type='chat'", body("x"))))),
			want: []got{{"b", sentCarbon(sb, fwd("from='"+sa+"' to='bob@example.net' type='chat'", body("x")))}},
		},
		{
			name:  "a session that joins late gets the first copy that arrives after it joined",
			steps: steps(online(sa), on(sa, hello), online(sb), on(sb, receivedCarbon(sb, helloFwd))),
			want:  []got{{"a", hello}, {"b", helloFwd}},
		},
		{
			name:  "a session that left gets nothing",
			steps: steps(online(sa, sb), leave(sb), on(sa, hello)),
			want:  []got{{"a", hello}},
		},
		{
			name:  "a message on the leg of a session that left still reaches the others",
			steps: steps(online(sa, sb), leave(sb), on(sb, hello)),
			want:  []got{{"a", hello}},
		},
		{
			name:  "a session that rejoins starts afresh",
			steps: steps(online(sa), on(sa, hello), online(sa), on(sa, hello)),
			want:  []got{{"a", hello}, {"a", hello}},
		},
		{
			name:   "a duplicate within the memory window is dropped, one beyond it is delivered again",
			memory: 2,
			steps: steps(online(sa),
				on(sa, msgXML("from='"+bob+"' id='1'", body("1"))),
				on(sa, msgXML("from='"+bob+"' id='2'", body("2"))),
				on(sa, msgXML("from='"+bob+"' id='1'", body("1"))), // in the window: refreshed
				on(sa, msgXML("from='"+bob+"' id='3'", body("3"))), // evicts 2
				on(sa, msgXML("from='"+bob+"' id='1'", body("1"))),
				on(sa, msgXML("from='"+bob+"' id='2'", body("2")))),
			want: []got{
				{"a", msgXML("from='"+bob+"' id='1'", body("1"))},
				{"a", msgXML("from='"+bob+"' id='2'", body("2"))},
				{"a", msgXML("from='"+bob+"' id='3'", body("3"))},
				{"a", msgXML("from='"+bob+"' id='2'", body("2"))},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.memory, tc.steps)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(out) != fmt.Sprint(tc.want) {
				t.Fatalf("deliveries\n got %d: %s\nwant %d: %s", len(out), format(out), len(tc.want), format(tc.want))
			}
		})
	}
}

func format(gs []got) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "\n  %s <- %s", g.to, g.stanza)
	}
	return b.String()
}

func TestHoldOverflowEndsTheSession(t *testing.T) {
	ss := steps(online(sa), join(sb))
	for i := range 3 {
		ss = append(ss, on(sa, msgXML(fmt.Sprintf("from='%s' to='%s' type='chat' id='m%d'", bob, acct, i), body("x"))))
	}
	ss = append(ss, on(sa, hello), synced(sb))
	out, err := run(t, 2, ss)
	var ho *HoldOverflowError
	if !errors.As(err, &ho) || len(ho.Sessions) != 1 || ho.Sessions[0] != sb {
		t.Fatalf("error = %v, want a HoldOverflowError for %s", err, sb)
	}
	for _, g := range out {
		if g.to != "a" {
			t.Fatalf("a session that overflowed got %s", g.stanza)
		}
	}
	if len(out) != 4 {
		t.Fatalf("the other session got %d stanzas, want 4", len(out))
	}
}

func TestRefusedStanzas(t *testing.T) {
	tests := []struct {
		name, stanza string
		notMessage   bool
	}{
		{"a presence is not a message", "<presence from='" + bob + "'/>", true},
		{"a message in another namespace is not a message", "<message xmlns='urn:example'/>", true},
		{"a truncated stanza is malformed", "<message from='" + bob + "'><body>x", false},
		{"mismatched tags are malformed", "<message><body></message></body>", false},
		{"nothing is malformed", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccount(acct, 0)
			a.Join(sa)
			a.Synced(sa)
			out, err := a.Observe(Event{Session: sa, Stanza: []byte(tc.stanza)})
			if err == nil || len(out) != 0 {
				t.Fatalf("Observe = %d deliveries, %v; want none and an error", len(out), err)
			}
			if errors.Is(err, ErrNotMessage) != tc.notMessage {
				t.Fatalf("errors.Is(%v, ErrNotMessage) = %v", err, !tc.notMessage)
			}
		})
	}
}

func TestMemoryStaysBounded(t *testing.T) {
	const memory = 64
	a := NewAccount(acct, memory)
	for _, s := range []string{sa, sb, sc} {
		a.Join(s)
		a.Synced(s)
	}
	for i := range 20 * memory {
		st := fmt.Sprintf("<message from='%s' to='%s' type='chat' id='i%d'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o%d'/><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='s%d'/></message>", bob, acct, i, i, acct, i)
		out, err := a.Observe(Event{Session: sa, Stanza: []byte(st)})
		if err != nil || len(out) != 3 {
			t.Fatalf("message %d: %d deliveries, %v", i, len(out), err)
		}
	}
	for _, s := range a.sessions {
		if n := s.seen.len(); n > memory {
			t.Errorf("%s remembers %d messages, bound %d", s.name, n, memory)
		}
		if n := len(s.seen.index); n > 3*memory {
			t.Errorf("%s indexes %d keys, bound %d", s.name, n, 3*memory)
		}
		if n := s.seen.len(); n != memory {
			t.Errorf("%s remembers %d messages, want the full window %d", s.name, n, memory)
		}
	}
	// The most recent window is still recognised; the one before is not.
	last := fmt.Sprintf("<message from='%s' to='%s' type='chat' id='i%d'><body>x</body></message>", bob, acct, 20*memory-1)
	if out, _ := a.Observe(Event{Session: sa, Stanza: []byte(last)}); len(out) != 0 {
		t.Errorf("a duplicate inside the window was delivered %d times", len(out))
	}
	first := fmt.Sprintf("<message from='%s' to='%s' type='chat' id='i%d'><body>x</body></message>", bob, acct, 0)
	if out, _ := a.Observe(Event{Session: sa, Stanza: []byte(first)}); len(out) != 3 {
		t.Errorf("a duplicate beyond the window was delivered %d times, want once per session", len(out))
	}
}

// TestTwoSessionsOfOneJIDKeepTheirOwnState covers a device replacing its
// own session (XEP-0386): the new and the old session share a full JID for
// a moment, and the old one's end must not take the new one's state.
func TestTwoSessionsOfOneJIDKeepTheirOwnState(t *testing.T) {
	a := NewAccount(acct, 0)
	a.JoinAs("old", sa)
	a.Synced("old")
	a.JoinAs("new", sa)
	a.Synced("new")
	a.Leave("old")
	ds, err := a.Observe(Event{Session: "new", Stanza: []byte(hello)})
	if err != nil || len(ds) != 1 || ds[0].Session != "new" {
		t.Fatalf("after the old session left, the new one got %v (err %v), want hello once", ds, err)
	}
	full := msgXML("from='"+bob+"' to='"+sa+"' type='chat' id='f1'", body("to a")+sid("S9"))
	if ds, _ := a.Observe(Event{Session: "new", Stanza: []byte(full)}); len(ds) != 1 || ds[0].Session != "new" {
		t.Fatalf("a full-JID message on the new leg went to %v, want the new session", ds)
	}
	echo := sentCarbon(sb, fwd("from='"+sa+"' to='bob@example.net' type='chat' id='e1'", body("mine")+oid("OE")))
	if ds, _ := a.Observe(Event{Session: "new", Stanza: []byte(echo)}); len(ds) != 0 {
		t.Fatalf("what the JID sent came back to %v", ds)
	}
}
