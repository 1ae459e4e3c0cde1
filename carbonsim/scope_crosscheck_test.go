package carbonsim

import (
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// TestScopeAgreesWithRewrite pins carbonsim's derived scope to the entering
// rules as package rewrite applies them, one message per rule, so the two
// cannot drift apart.
func TestScopeAgreesWithRewrite(t *testing.T) {
	const acct = "alice@localhost"
	msgs := map[string]string{
		"error":                      "<message type='error' to='alice@localhost/one'><body>x</body></message>",
		"no to":                      "<message type='chat'><body>x</body></message>",
		"xmpp-2 to bare":             "<message type='chat' to='alice@localhost'><body>x</body><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>",
		"xmpp-2 to full":             "<message type='chat' to='alice@localhost/one'><body>x</body><xmpp-2 xmlns='urn:xmpp:xmpp2:0'/></message>",
		"bare chat":                  "<message type='chat' to='alice@localhost'><body>x</body></message>",
		"bare headline":              "<message type='headline' to='alice@localhost'><body>x</body></message>",
		"full with private":          "<message type='chat' to='alice@localhost/one'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
		"full with no-copy":          "<message type='chat' to='alice@localhost/one'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
		"MUC private message":        "<message type='chat' to='alice@localhost/one'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
		"full chat":                  "<message type='chat' to='alice@localhost/one'><body>x</body></message>",
		"full normal with body":      "<message to='alice@localhost/one'><body>x</body></message>",
		"full normal with oob":       "<message to='alice@localhost/one'><x xmlns='jabber:x:oob'><url>u</url></x></message>",
		"full normal without body":   "<message to='alice@localhost/one'><x xmlns='urn:example'/></message>",
		"full groupchat":             "<message type='groupchat' to='alice@localhost/one'><body>x</body></message>",
		"full headline":              "<message type='headline' to='alice@localhost/one'><body>x</body></message>",
		"unknown type with body":     "<message type='weird' to='alice@localhost/one'><body>x</body></message>",
		"nested body does not count": "<message to='alice@localhost/one'><x xmlns='urn:example'><body>x</body></x></message>",
	}
	for name, raw := range msgs {
		t.Run(name, func(t *testing.T) {
			p, err := parse([]byte(raw), acct)
			if err != nil {
				t.Fatal(err)
			}
			_, route, err := rewrite.Entering([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			want := ScopeSession
			if route.Scope == rewrite.ScopeAccount {
				want = ScopeAccount
			}
			if got := scopeOf(&p.outer); got != want {
				t.Fatalf("carbonsim scope %v, rewrite scope %v", got, route.Scope)
			}
		})
	}
}
