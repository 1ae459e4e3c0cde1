package rewrite

import (
	"bytes"
	"encoding/xml"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

const (
	private = "<private xmlns='urn:xmpp:carbons:2'/>"
	noCopy  = "<no-copy xmlns='urn:xmpp:hints'/>"
	noStore = "<no-store xmlns='urn:xmpp:hints'/>"
	noPerm  = "<no-permanent-store xmlns='urn:xmpp:hints'/>"
	x2      = "<xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>"
	x1      = "<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>"
	mucUser = "<x xmlns='http://jabber.org/protocol/muc#user'/>"
)

type leavingCase struct {
	name, in, want string
}

var leavingCases = []leavingCase{
	{
		name: "leaving: a message to a full JID gets private, no-copy and no-store",
		in:   "<message to='bob@example.net/phone' type='chat' id='m1'><body>hi</body></message>",
		want: "<message to='bob@example.net/phone' type='chat' id='m1'><body>hi</body>" + private + noCopy + noStore + x2 + "</message>",
	},
	{
		name: "leaving: every message gets xmpp-2",
		in:   "<message to='bob@example.net' type='chat' id='m1'><body>hi</body></message>",
		want: "<message to='bob@example.net' type='chat' id='m1'><body>hi</body>" + x2 + "</message>",
	},
	{
		name: "leaving: a message without to is for the sender's bare JID and only gets xmpp-2",
		in:   "<message type='chat'><body>note to self</body></message>",
		want: "<message type='chat'><body>note to self</body>" + x2 + "</message>",
	},
	{
		name: "leaving: modifiers already present are not added again",
		in:   "<message to='bob@example.net/phone'>" + noStore + "<body>hi</body>" + private + "</message>",
		want: "<message to='bob@example.net/phone'>" + noStore + "<body>hi</body>" + private + noCopy + x2 + "</message>",
	},
	{
		name: "leaving: xmpp-2 already present is not added again",
		in:   "<message to='bob@example.net'>" + x2 + "<body>hi</body></message>",
		want: "<message to='bob@example.net'>" + x2 + "<body>hi</body></message>",
	},
	{
		name: "leaving: a self-closing message is opened for the added elements",
		in:   "<message to='bob@example.net/phone' id='p'/>",
		want: "<message to='bob@example.net/phone' id='p'>" + private + noCopy + noStore + x2 + "</message>",
	},
	{
		name: "leaving: a self-closing message with a space before the slash keeps it",
		in:   "<message to='bob@example.net' />",
		want: "<message to='bob@example.net' >" + x2 + "</message>",
	},
	{
		name: "leaving: a modifier nested inside forwarded does not count",
		in:   "<message to='bob@example.net/phone'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + noCopy + noStore + x2 + "</message></forwarded></message>",
		want: "<message to='bob@example.net/phone'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + noCopy + noStore + x2 + "</message></forwarded>" + private + noCopy + noStore + x2 + "</message>",
	},
	{
		name: "leaving: a prefixed modifier declared on the child counts",
		in:   "<message to='bob@example.net/phone'><h:no-copy xmlns:h='urn:xmpp:hints'/></message>",
		want: "<message to='bob@example.net/phone'><h:no-copy xmlns:h='urn:xmpp:hints'/>" + private + noStore + x2 + "</message>",
	},
	{
		name: "leaving: a prefixed modifier declared on the message counts",
		in:   "<message xmlns:h='urn:xmpp:hints' xmlns:c='urn:xmpp:carbons:2' to='bob@example.net/phone'><c:private/><h:no-store></h:no-store></message>",
		want: "<message xmlns:h='urn:xmpp:hints' xmlns:c='urn:xmpp:carbons:2' to='bob@example.net/phone'><c:private/><h:no-store></h:no-store>" + noCopy + x2 + "</message>",
	},
	{
		name: "leaving: an element with a modifier's name in another namespace does not count",
		in:   "<message to='bob@example.net/phone'><private xmlns='urn:xmpp:carbons:1'/><no-copy/></message>",
		want: "<message to='bob@example.net/phone'><private xmlns='urn:xmpp:carbons:1'/><no-copy/>" + private + noCopy + noStore + x2 + "</message>",
	},
	{
		name: "leaving: double quotes, an explicit jabber:client and whitespace are kept",
		in:   "\n<message xmlns=\"jabber:client\" to=\"bob@example.net/phone\"  type=\"chat\">\n  <body>a &amp; b &#x263A;</body>\n</message>\n",
		want: "\n<message xmlns=\"jabber:client\" to=\"bob@example.net/phone\"  type=\"chat\">\n  <body>a &amp; b &#x263A;</body>\n" + private + noCopy + noStore + x2 + "</message>\n",
	},
	{
		name: "leaving: a prefixed message in jabber:client is a message",
		in:   "<c:message xmlns:c='jabber:client' to='bob@example.net'/>",
		want: "<c:message xmlns:c='jabber:client' to='bob@example.net'>" + x2 + "</c:message>",
	},
	{
		name: "leaving: an error message to a full JID gets the modifiers too",
		in:   "<message to='bob@example.net/phone' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		want: "<message to='bob@example.net/phone' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>" + private + noCopy + noStore + x2 + "</message>",
	},
	{
		name: "leaving: presence is unchanged",
		in:   "<presence to='bob@example.net/phone'><show>away</show></presence>",
		want: "<presence to='bob@example.net/phone'><show>away</show></presence>",
	},
	{
		name: "leaving: iq is unchanged",
		in:   "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
		want: "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
	},
	{
		name: "leaving: a message in another namespace is not a stanza message",
		in:   "<message xmlns='urn:example' to='bob@example.net/phone'/>",
		want: "<message xmlns='urn:example' to='bob@example.net/phone'/>",
	},
}

func TestLeaving(t *testing.T) {
	for _, tc := range leavingCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Leaving([]byte(tc.in))
			if err != nil {
				t.Fatalf("Leaving: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Leaving\n in: %s\ngot: %s\nwant: %s", tc.in, got, tc.want)
			}
			again, err := Leaving(got)
			if err != nil {
				t.Fatalf("Leaving twice: %v", err)
			}
			if !bytes.Equal(again, got) {
				t.Errorf("Leaving is not idempotent\nonce: %s\ntwice: %s", got, again)
			}
			if !wellFormed(got) {
				t.Errorf("output is not well-formed: %s", got)
			}
		})
	}
}

type enteringCase struct {
	name, in, want string
	route          Route
}

var (
	account          = Route{Scope: ScopeAccount}
	accountTransient = Route{Scope: ScopeAccount, Transient: true}
	session          = Route{Scope: ScopeSession, Transient: true}
)

var enteringCases = []enteringCase{
	{
		name:  "entering: a message carrying xmpp-2 has every 1.0 modifier stripped",
		in:    "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + private + noCopy + noStore + noPerm + x2 + "</message>",
		want:  "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + x2 + "</message>",
		route: Route{Scope: ScopeSession, Transient: true, Marked2: true},
	},
	{
		name:  "entering: a message carrying xmpp-2 to a full JID is transient and single-session, whatever its type",
		in:    "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + x2 + "</message>",
		want:  "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + x2 + "</message>",
		route: Route{Scope: ScopeSession, Transient: true, Marked2: true},
	},
	{
		name:  "entering: a message carrying xmpp-2 to the bare JID goes to the account",
		in:    "<message to='alice@example.com' type='chat'>" + x2 + "<body>hi</body></message>",
		want:  "<message to='alice@example.com' type='chat'>" + x2 + "<body>hi</body></message>",
		route: Route{Scope: ScopeAccount, Marked2: true},
	},
	{
		name:  "entering: a message to the bare JID goes to every session of the account and is marked xmpp-1",
		in:    "<message from='bob@example.net/laptop' to='alice@example.com' type='chat' id='m1'><body>hi</body></message>",
		want:  "<message from='bob@example.net/laptop' to='alice@example.com' type='chat' id='m1'><body>hi</body>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a full-JID message with private is single-session",
		in:    "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + private + "</message>",
		want:  "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + private + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a full-JID message with no-copy is single-session",
		in:    "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + noCopy + "</message>",
		want:  "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + noCopy + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a full-JID chat without modifiers is rerouted to the bare JID",
		in:    "<message from='bob@example.net/laptop' to='alice@example.com/phone' type='chat' id='m1'><body>hi</body></message>",
		want:  "<message from='bob@example.net/laptop' to='alice@example.com' type='chat' id='m1'><body>hi</body>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a full-JID normal message with a body is rerouted like chat",
		in:    "<message to='alice@example.com/phone' type='normal'><body>hi</body></message>",
		want:  "<message to='alice@example.com' type='normal'><body>hi</body>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a message without type is normal",
		in:    "<message to='alice@example.com/phone'><subject>re: lunch</subject></message>",
		want:  "<message to='alice@example.com'><subject>re: lunch</subject>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a message of unknown type is normal",
		in:    "<message to='alice@example.com/phone' type='shout'/>",
		want:  "<message to='alice@example.com/phone' type='shout'>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a full-JID normal message with other archivable content is rerouted like chat",
		in:    "<message to='alice@example.com/phone'><reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>+1</reaction></reactions></message>",
		want:  "<message to='alice@example.com'><reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>+1</reaction></reactions>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a bodiless full-JID normal message is transient and single-session",
		in:    "<message to='alice@example.com/phone'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
		want:  "<message to='alice@example.com/phone'><received xmlns='urn:xmpp:receipts' id='m1'/>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a body nested deeper does not make a normal message archivable",
		in:    "<message to='alice@example.com/phone'><result xmlns='urn:xmpp:mam:2' id='a1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>old</body></message></forwarded></result></message>",
		want:  "<message to='alice@example.com/phone'><result xmlns='urn:xmpp:mam:2' id='a1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>old</body></message></forwarded></result>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: groupchat to a full JID is transient and single-session",
		in:    "<message from='room@muc.example.com/bob' to='alice@example.com/phone' type='groupchat'><body>hi all</body></message>",
		want:  "<message from='room@muc.example.com/bob' to='alice@example.com/phone' type='groupchat'><body>hi all</body>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: headline to a full JID is transient and single-session",
		in:    "<message to='alice@example.com/phone' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>",
		want:  "<message to='alice@example.com/phone' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'/>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a MUC private message is single-session",
		in:    "<message from='room@muc.example.com/bob' to='alice@example.com/phone' type='chat'><body>psst</body>" + mucUser + "</message>",
		want:  "<message from='room@muc.example.com/bob' to='alice@example.com/phone' type='chat'><body>psst</body>" + mucUser + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a message already marked xmpp-1 is not marked again",
		in:    "<message to='alice@example.com' type='chat'>" + x1 + "<body>hi</body></message>",
		want:  "<message to='alice@example.com' type='chat'>" + x1 + "<body>hi</body></message>",
		route: account,
	},
	{
		name:  "entering: a message carrying xmpp-2 loses a stray xmpp-1",
		in:    "<message to='alice@example.com' type='chat'>" + x1 + "<body>hi</body>" + x2 + "</message>",
		want:  "<message to='alice@example.com' type='chat'><body>hi</body>" + x2 + "</message>",
		route: Route{Scope: ScopeAccount, Marked2: true},
	},
	{
		name:  "entering: a 1.0 message keeps its modifiers",
		in:    "<message to='alice@example.com' type='chat'><body>hi</body>" + noCopy + noPerm + "</message>",
		want:  "<message to='alice@example.com' type='chat'><body>hi</body>" + noCopy + noPerm + x1 + "</message>",
		route: accountTransient,
	},
	{
		name:  "entering: a full-JID chat with only no-store is rerouted but transient",
		in:    "<message to='alice@example.com/phone' type='chat'><body>hi</body>" + noStore + "</message>",
		want:  "<message to='alice@example.com' type='chat'><body>hi</body>" + noStore + x1 + "</message>",
		route: accountTransient,
	},
	{
		name:  "entering: a headline to the bare JID goes to the account and is transient",
		in:    "<message to='alice@example.com' type='headline'><body>news</body></message>",
		want:  "<message to='alice@example.com' type='headline'><body>news</body>" + x1 + "</message>",
		route: accountTransient,
	},
	{
		name:  "entering: an error message is single-session and only marked",
		in:    "<message from='bob@example.net' to='alice@example.com' type='error' id='m1'><body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		want:  "<message from='bob@example.net' to='alice@example.com' type='error' id='m1'><body>hi</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: a bounce of a 2.0 message loses the modifiers that leaving added",
		in:    "<message from='bob@example.net/phone' to='alice@example.com/phone' type='error'><body>hi</body>" + private + noCopy + noStore + x2 + "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		want:  "<message from='bob@example.net/phone' to='alice@example.com/phone' type='error'><body>hi</body>" + x2 + "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
		route: Route{Scope: ScopeSession, Transient: true, Marked2: true},
	},
	{
		name:  "entering: a message without to comes from the server and is single-session",
		in:    "<message from='example.com' type='chat'><body>maintenance at noon</body></message>",
		want:  "<message from='example.com' type='chat'><body>maintenance at noon</body>" + x1 + "</message>",
		route: session,
	},
	{
		name:  "entering: modifiers nested inside forwarded are kept",
		in:    "<message to='alice@example.com'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + noCopy + "</message></forwarded>" + x2 + noStore + "</message>",
		want:  "<message to='alice@example.com'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + noCopy + "</message></forwarded>" + x2 + "</message>",
		route: Route{Scope: ScopeAccount, Marked2: true},
	},
	{
		name:  "entering: prefixed modifiers and a prefixed xmpp-2 are recognised",
		in:    "<message xmlns:h='urn:xmpp:hints' to='alice@example.com/phone' type='chat'><h:no-copy/><body>hi</body><c:private xmlns:c='urn:xmpp:carbons:2'></c:private><x:xmpp-2 xmlns:x='urn:xmpp:xmpp2:0'/></message>",
		want:  "<message xmlns:h='urn:xmpp:hints' to='alice@example.com/phone' type='chat'><body>hi</body><x:xmpp-2 xmlns:x='urn:xmpp:xmpp2:0'/></message>",
		route: Route{Scope: ScopeSession, Transient: true, Marked2: true},
	},
	{
		name:  "entering: rerouting keeps double quotes and every other attribute",
		in:    "<message xmlns=\"jabber:client\" xml:lang=\"en\" to=\"alice@example.com/phone\" type=\"chat\">\n\t<body>hi</body>\n</message>",
		want:  "<message xmlns=\"jabber:client\" xml:lang=\"en\" to=\"alice@example.com\" type=\"chat\">\n\t<body>hi</body>\n" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: rerouting a to with references writes the bare JID escaped",
		in:    "<message to='alice@example.com&#x2F;ph&amp;one' type='chat'><body>hi</body></message>",
		want:  "<message to='alice@example.com' type='chat'><body>hi</body>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: a self-closing rerouted chat is opened for xmpp-1",
		in:    "<message to='alice@example.com/phone' type='chat'/>",
		want:  "<message to='alice@example.com' type='chat'>" + x1 + "</message>",
		route: account,
	},
	{
		name:  "entering: presence is unchanged and single-session",
		in:    "<presence from='bob@example.net/laptop'><show>away</show></presence>",
		want:  "<presence from='bob@example.net/laptop'><show>away</show></presence>",
		route: Route{Scope: ScopeSession},
	},
	{
		name:  "entering: iq is unchanged and single-session",
		in:    "<iq type='result' id='r1'/>",
		want:  "<iq type='result' id='r1'/>",
		route: Route{Scope: ScopeSession},
	},
}

func TestEntering(t *testing.T) {
	for _, tc := range enteringCases {
		t.Run(tc.name, func(t *testing.T) {
			got, route, err := Entering([]byte(tc.in))
			if err != nil {
				t.Fatalf("Entering: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Entering\n in: %s\ngot: %s\nwant: %s", tc.in, got, tc.want)
			}
			if route != tc.route {
				t.Errorf("route = %+v, want %+v", route, tc.route)
			}
			again, route2, err := Entering(got)
			if err != nil {
				t.Fatalf("Entering twice: %v", err)
			}
			if !bytes.Equal(again, got) || route2 != route {
				t.Errorf("Entering is not idempotent\nonce: %s %+v\ntwice: %s %+v", got, route, again, route2)
			}
			if !wellFormed(got) {
				t.Errorf("output is not well-formed: %s", got)
			}
		})
	}
}

// A 2.0 client's full-JID message, once through the upstream, arrives at the
// addressed 2.0 session as the client wrote it plus <xmpp-2/>.
func TestLeavingThenEnteringRoundTrip(t *testing.T) {
	in := "<message to='alice@example.com/phone' type='chat' id='m1'><body>hi</body></message>"
	up, err := Leaving([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	down, route, err := Entering(up)
	if err != nil {
		t.Fatal(err)
	}
	want := "<message to='alice@example.com/phone' type='chat' id='m1'><body>hi</body>" + x2 + "</message>"
	if string(down) != want {
		t.Errorf("got  %s\nwant %s", down, want)
	}
	if want := (Route{Scope: ScopeSession, Transient: true, Marked2: true}); route != want {
		t.Errorf("route = %+v, want %+v", route, want)
	}
}

func TestUnchangedStanzaIsReturnedAsIs(t *testing.T) {
	in := []byte("<message to='alice@example.com'>" + x1 + "</message>")
	out, _, err := Entering(in)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &in[0] {
		t.Error("Entering copied a stanza it did not change")
	}
	in = []byte("<iq type='get' id='x'/>")
	out, err = Leaving(in)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &in[0] {
		t.Error("Leaving copied a stanza it did not change")
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"empty input is not an element", "", ErrNotWellFormed},
		{"whitespace is not an element", " \n", ErrNotWellFormed},
		{"text is not an element", "hello", ErrNotWellFormed},
		{"an unclosed element is refused", "<message><body>hi</body>", ErrNotWellFormed},
		{"a mismatched end tag is refused", "<message><body>hi</subject></message>", ErrNotWellFormed},
		{"a mismatched prefixed end tag is refused", "<a:message xmlns:a='jabber:client'></b:message>", ErrNotWellFormed},
		{"two elements are refused", "<message/><message/>", ErrNotWellFormed},
		{"text after the element is refused", "<message/>x", ErrNotWellFormed},
		{"CDATA after the element is refused", "<message/><![CDATA[]]>", ErrNotWellFormed},
		{"a repeated attribute is refused", "<message to='a@b/c' to='a@b'/>", ErrNotWellFormed},
		{"an undefined entity is refused", "<message><body>&nbsp;</body></message>", ErrNotWellFormed},
		{"an unquoted attribute is refused", "<message to=a@b/>", ErrNotWellFormed},
		{"a comment is restricted XML", "<message><!-- hi --></message>", ErrRestrictedXML},
		{"a processing instruction is restricted XML", "<?xml version='1.0'?><message/>", ErrRestrictedXML},
		{"a DTD is restricted XML", "<!DOCTYPE message><message/>", ErrRestrictedXML},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Leaving([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Errorf("Leaving(%q) error = %v, want %v", tc.in, err, tc.want)
			}
			if _, _, err := Entering([]byte(tc.in)); !errors.Is(err, tc.want) {
				t.Errorf("Entering(%q) error = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestSyntaxErrorIsKept(t *testing.T) {
	_, err := Leaving([]byte("<message><body>&nbsp;</body></message>"))
	var syn *xml.SyntaxError
	if !errors.As(err, &syn) {
		t.Errorf("error %v does not wrap an *xml.SyntaxError", err)
	}
}

func TestJID(t *testing.T) {
	for _, tc := range []struct {
		jid, bare string
		full      bool
	}{
		{"alice@example.com", "alice@example.com", false},
		{"alice@example.com/phone", "alice@example.com", true},
		{"example.com/res/with/slashes@x", "example.com", true},
		{"example.com", "example.com", false},
		{"", "", false},
		{"/nothing", "/nothing", false},
	} {
		if got := isFullJID([]byte(tc.jid)); got != tc.full {
			t.Errorf("isFullJID(%q) = %v, want %v", tc.jid, got, tc.full)
		}
		if got := string(bareJID([]byte(tc.jid))); got != tc.bare {
			t.Errorf("bareJID(%q) = %q, want %q", tc.jid, got, tc.bare)
		}
	}
}

func TestScopeString(t *testing.T) {
	if ScopeSession.String() != "session" || ScopeAccount.String() != "account" {
		t.Errorf("Scope strings: %v %v", ScopeSession, ScopeAccount)
	}
}

// wellFormed is the test oracle: exactly one element, whose tags match,
// with only whitespace around it. It uses the namespace-aware Token, not
// RawToken as the package does.
func wellFormed(b []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return depth == 0 && roots == 1
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) != 0 {
				return false
			}
		}
	}
}

// diffStanza names the first field in which two parses differ, or "".
func diffStanza(a, b stanza) string {
	switch {
	case a.message != b.message:
		return "message"
	case !bytes.Equal(a.qname, b.qname):
		return "qname"
	case a.tagStart != b.tagStart, a.tagEnd != b.tagEnd, a.selfClosing != b.selfClosing:
		return "start tag"
	case a.closeStart != b.closeStart:
		return "end tag"
	case !bytes.Equal(a.to, b.to):
		return "to"
	case !bytes.Equal(a.typ, b.typ):
		return "type"
	case a.has != b.has:
		return "children"
	}
	as, bs := a.spans(), b.spans()
	if len(as) != len(bs) {
		return "spans"
	}
	for i := range as {
		if as[i] != bs[i] {
			return "spans"
		}
	}
	return ""
}

// Everything in the tables is parsed the same by both paths, and ordinary
// traffic never needs the slow one.
func TestScanAgreesWithDecode(t *testing.T) {
	var all []string
	for _, tc := range leavingCases {
		all = append(all, tc.in, tc.want)
	}
	for _, tc := range enteringCases {
		all = append(all, tc.in, tc.want)
	}
	for _, in := range all {
		ref, err := decode([]byte(in))
		if err != nil {
			t.Fatalf("decode(%q): %v", in, err)
		}
		fast, ok := scan([]byte(in))
		if !ok {
			continue
		}
		if d := diffStanza(fast, ref); d != "" {
			t.Errorf("scan and decode disagree on %s: %q", d, in)
		}
	}
	for _, in := range [][]byte{benchIn, benchOut,
		[]byte("<message to='a@b/c'><body>caf\u00e9 &amp; \U0001F600 &#x263A;\r\n</body></message>"),
		[]byte("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>"),
	} {
		if _, ok := scan(in); !ok {
			t.Errorf("ordinary stanza left to the slow path: %s", in)
		}
	}
}

// The slow path gives the same answers on what only it can read.
func TestSlowPath(t *testing.T) {
	for _, tc := range []enteringCase{
		{
			name:  "CDATA in a body",
			in:    "<message to='alice@example.com/phone' type='chat'><body><![CDATA[<hi>]]></body></message>",
			want:  "<message to='alice@example.com' type='chat'><body><![CDATA[<hi>]]></body>" + x1 + "</message>",
			route: account,
		},
		{
			name:  "a non-ASCII element name",
			in:    "<message to='alice@example.com/phone' type='chat'><bödy xmlns='urn:x'/></message>",
			want:  "<message to='alice@example.com' type='chat'><bödy xmlns='urn:x'/>" + x1 + "</message>",
			route: account,
		},
		{
			name:  "a reference in the type",
			in:    "<message to='alice@example.com/phone' type='&#99;hat'><body>hi</body></message>",
			want:  "<message to='alice@example.com' type='&#99;hat'><body>hi</body>" + x1 + "</message>",
			route: account,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := scan([]byte(tc.in)); ok {
				t.Fatalf("the scanner took %q", tc.in)
			}
			got, route, err := Entering([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || route != tc.route {
				t.Errorf("got  %s %+v\nwant %s %+v", got, route, tc.want, tc.route)
			}
		})
	}
}

// The package is pure: it must never reach for the network.
func TestNoNetwork(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == "net" || strings.HasPrefix(p, "net/") {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
