package muc

import (
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

func TestTheSelfPresenceIsStatus110InMUCUser(t *testing.T) {
	const x = "<x xmlns='http://jabber.org/protocol/muc#user'>"
	tests := []struct {
		name, raw string
		self      bool
	}{
		{"status 110 in the muc#user x is the self-presence",
			`<presence from='room@muc/me'>` + x + `<item affiliation='none' role='participant'/><status code='110'/></x></presence>`, true},
		{"double quotes are the same",
			`<presence from="room@muc/me"><x xmlns="http://jabber.org/protocol/muc#user"><status code="110"/><status code="100"/></x></presence>`, true},
		{"another status code is not",
			`<presence from='room@muc/other'>` + x + `<status code='100'/></x></presence>`, false},
		{"code='110' as data in another attribute's value is not",
			`<presence from='room@muc/other' id="code='110'">` + x + `<item role='participant'/></x></presence>`, false},
		{"code='110' in a status text is not",
			`<presence from='room@muc/other'><status>code='110'</status>` + x + `<item role='participant'/></x></presence>`, false},
		{"a status 110 outside muc#user is not",
			`<presence from='room@muc/other'><x xmlns='urn:example'><status code='110'/></x></presence>`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsSelfPresence([]byte(tc.raw)); got != tc.self {
				t.Fatalf("IsSelfPresence = %v, want %v", got, tc.self)
			}
		})
	}
}

func TestACopiedChildIsOneWholeElement(t *testing.T) {
	const generic = "<error type='cancel'><undefined-condition xmlns='" + ns.Stanzas + "'/></error>"
	tests := []struct {
		name, raw, want string
	}{
		{"the error child is copied as it arrived",
			`<presence type='error'><x xmlns='http://jabber.org/protocol/muc'/><error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
			`<error type='auth'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`},
		{"an element whose name begins with error is not the error",
			`<presence type='error'><errors xmlns='urn:example'/><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
			`<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`},
		{"an error nested in another child is not the stanza's error",
			`<presence type='error'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><x xmlns='urn:example'><error>inner</error></x></presence>`,
			`<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`},
		{"no error child: the generic one",
			`<presence type='error'/>`, generic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := JoinError([]byte(tc.raw)); string(got) != tc.want {
				t.Fatalf("JoinError = %s, want %s", got, tc.want)
			}
		})
	}
	meta := `<iq type='result' id='x'><metadata xmlns='urn:xmpp:mam:2'><start id='a' timestamp='t'/></metadata><other/></iq>`
	if got := stream.ChildElement([]byte(meta), ns.MAM, "metadata"); string(got) != `<metadata xmlns='urn:xmpp:mam:2'><start id='a' timestamp='t'/></metadata>` {
		t.Fatalf("metadata child = %s", got)
	}
}

func TestAJoinAsksForNoLegacyHistory(t *testing.T) {
	tests := []struct {
		name, room, nick, password, want string
	}{
		{"a join without a password",
			"room@muc", "me", "",
			"<presence to='room@muc/me'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>"},
		{"a join with a password carries it, escaped",
			"room@muc", "m&e", "p<w",
			"<presence to='room@muc/m&amp;e'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/><password>p&lt;w</password></x></presence>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Join(tc.room, tc.nick, tc.password)); got != tc.want {
				t.Fatalf("Join = %s, want %s", got, tc.want)
			}
		})
	}
}
