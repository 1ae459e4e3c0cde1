package proxy

import "testing"

func TestACatchUpLeavesOutWhatWasForAnotherSessionOnly(t *testing.T) {
	const self = "alice@localhost/new"
	result := func(inner string) []byte {
		return []byte("<message to='" + self + "'><result xmlns='urn:xmpp:mam:2' queryid='x2-sync' id='A1'>" +
			"<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-25T00:00:00Z'/>" +
			inner + "</forwarded></result></message>")
	}
	tests := []struct {
		name  string
		inner string
		left  bool
	}{
		{"a 1.0 chat with private to another session is left out",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost/one' type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", true},
		{"a 1.0 chat with no-copy to another session is left out",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost/one' type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>", true},
		{"a MUC private message to another session is left out",
			"<message xmlns='jabber:client' from='room@conference.localhost/bob' to='alice@localhost/one' type='chat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>", true},
		{"a full-JID chat without modifiers, rerouted to the whole account, is kept",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost/one' type='chat'><body>hi</body></message>", false},
		{"a private chat to this very session is kept",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='" + self + "' type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"a message to the bare JID is kept",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost' type='chat'><body>hi</body></message>", false},
		{"the account's own private message to someone else is kept",
			"<message xmlns='jabber:client' from='alice@localhost/one' to='bob@localhost/desk' type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", false},
		{"a resourcepart differing only in case is another session (RFC 7622)",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='alice@localhost/NEW' type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", true},
		{"JIDs compare whatever their case",
			"<message xmlns='jabber:client' from='bob@localhost/desk' to='Alice@LOCALHOST/one' type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := forAnotherSession(result(tt.inner), self); got != tt.left {
				t.Fatalf("left out = %v, want %v", got, tt.left)
			}
		})
	}
}
