package bind2

import (
	"encoding/xml"
	"testing"
)

func TestTheInlinePresenceGoesUpUnaddressed(t *testing.T) {
	tests := []struct {
		name, bind, want string
	}{
		{"to, from and type are dropped; id and xml:lang are kept",
			"<bind xmlns='urn:xmpp:bind:0'><presence xmlns='jabber:client' to='bob@localhost' from='eve@localhost' id='p&amp;1' xml:lang='en'><show>away</show></presence></bind>",
			"<presence id='p&amp;1' xml:lang='en'><show>away</show></presence>"},
		{"a presence in no namespace is accepted",
			"<bind xmlns='urn:xmpp:bind:0'><presence xmlns=''>\n <priority>5</priority>\n</presence></bind>",
			"<presence><priority>5</priority></presence>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := xml.Unmarshal([]byte(tc.bind), &r); err != nil || r.Presence == nil {
				t.Fatalf("decoding %s: %v, presence %v", tc.bind, err, r.Presence)
			}
			if got := string(AppendPresence(nil, r.Presence)); got != tc.want {
				t.Fatalf("AppendPresence = %s, want %s", got, tc.want)
			}
		})
	}
}
