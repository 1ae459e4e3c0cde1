package muc

import "testing"

func TestClientErrorDeclaresTheStanzaNamespace(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"an error without a namespace gets jabber:client",
			"<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
			"<error xmlns='jabber:client' type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"},
		{"an empty error gets jabber:client", "<error/>", "<error xmlns='jabber:client'/>"},
		{"an error that declares jabber:client stays", "<error xmlns='jabber:client' type='wait'/>", "<error xmlns='jabber:client' type='wait'/>"},
		{"an error in another namespace stays", "<error xmlns='urn:x' type='wait'/>", "<error xmlns='urn:x' type='wait'/>"},
		{"a prefixed error stays", "<c:error type='wait'/>", "<c:error type='wait'/>"},
		{"another element stays", "<errors type='wait'/>", "<errors type='wait'/>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(clientError([]byte(tc.in))); got != tc.want {
				t.Fatalf("clientError(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
