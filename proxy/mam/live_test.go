package mam

import "testing"

// result wraps a forwarded message in an archive result with id A7.
func result(msg string) string {
	return "<message to='alice@localhost/phone'><result xmlns='urn:xmpp:mam:2' queryid='q' id='A7'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T10:00:00Z'/>" + msg + "</forwarded></result></message>"
}

func TestLiveRendersAMissedArchivedMessageAsTheServerDeliversIt(t *testing.T) {
	const sid = "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='A7'/>"
	const delay = "<delay xmlns='urn:xmpp:delay' from='alice@localhost' stamp='2026-11-30T10:00:00Z'/>"
	tests := []struct {
		name, raw, want string
	}{
		{"a received message comes as itself, with a delay",
			result("<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body>" + sid + "</message>"),
			"<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body>" + sid + delay + "</message>"},
		{"the archive's stanza-id is added when the archived copy lacks it",
			result("<message from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body></message>"),
			"<message from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body>" + sid + delay + "</message>"},
		{"a message that carries a delay keeps its own only",
			result("<message from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T09:00:00Z'/></message>"),
			"<message from='bob@localhost/pc' to='alice@localhost' type='chat'><body>hi</body><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T09:00:00Z'/>" + sid + "</message>"},
		{"a message another resource sent comes as a sent carbon to the session",
			result("<message from='Alice@localhost/laptop' to='bob@localhost' type='chat'><body>yo</body></message>"),
			"<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" + delay + "<message from='Alice@localhost/laptop' to='bob@localhost' type='chat'><body>yo</body>" + sid + "</message></forwarded></sent></message>"},
		{"a live message is not a result", "<message from='bob@localhost/pc' to='alice@localhost'><body>hi</body></message>", ""},
		{"a result without a message", "<message><result xmlns='urn:xmpp:mam:2' id='A7'><forwarded xmlns='urn:xmpp:forward:0'/></result></message>", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Live([]byte(tc.raw), "alice@localhost", "alice@localhost/phone")); got != tc.want {
				t.Fatalf("Live\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
