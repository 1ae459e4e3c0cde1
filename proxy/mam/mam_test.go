package mam

import (
	"strings"
	"testing"
	"time"
)

var timeZero time.Time

func TestDedupKeyPrefersStanzaIDByTheAccount(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"stanza-id by the account wins", "<message id='m1'><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='R'/><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='A'/><origin-id xmlns='urn:xmpp:sid:0' id='O'/></message>", "sid:A"},
		{"origin-id when no stanza-id by the account", "<message id='m1'><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='R'/><origin-id xmlns='urn:xmpp:sid:0' id='O'/></message>", "oid:O"},
		{"the id attribute last", "<message id='m1'><body>x</body></message>", "id:m1"},
		{"nothing to go by", "<message><body>x</body></message>", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DedupKey([]byte(tc.raw), "alice@localhost"); got != tc.want {
				t.Fatalf("DedupKey = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMAMQueryAndResult(t *testing.T) {
	q := string(Query("x2-sync-0", "", "x2-sync", "A1", timeZero, 100, false))
	want := "<iq type='set' id='x2-sync-0'><query xmlns='urn:xmpp:mam:2' queryid='x2-sync'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max><after>A1</after></set></query></iq>"
	if q != want {
		t.Fatalf("query\n got %s\nwant %s", q, want)
	}
	r, ok := ParseResult([]byte("<message to='a@b/c'><result xmlns='urn:xmpp:mam:2' queryid='x2-sync' id='A2'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/><message from='b@b' type='chat'><body>hi</body></message></forwarded></result></message>"))
	if !ok || r.QueryID != "x2-sync" || r.ID != "A2" || r.Stamp != "2026-01-01T00:00:00Z" || !strings.Contains(string(r.Inner), "<body>hi</body>") {
		t.Fatalf("ParseResult = %+v %v", r, ok)
	}
	fin := ParseFin([]byte("<iq type='result' id='x2-sync-0'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><last>A9</last></set></fin></iq>"))
	if !fin.OK || fin.Complete || fin.Last != "A9" {
		t.Fatalf("ParseFin = %+v", fin)
	}
}

func TestTheMetadataAClientIsGivenNamesBothEdgesOrNone(t *testing.T) {
	tests := []struct {
		name string
		in   Metadata
		want string
	}{
		{"an archive with entries gives its start and end",
			Metadata{StartID: "S", StartTS: "t0", EndID: "E&", EndTS: "t1"},
			"<metadata xmlns='urn:xmpp:mam:2'><start id='S' timestamp='t0'/><end id='E&amp;' timestamp='t1'/></metadata>"},
		{"an empty archive gives an empty element",
			Metadata{}, "<metadata xmlns='urn:xmpp:mam:2'/>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(AppendMetadata(nil, tc.in))
			if got != tc.want {
				t.Fatalf("AppendMetadata = %s, want %s", got, tc.want)
			}
			if back := ParseMetadata([]byte(got)); back != tc.in {
				t.Fatalf("ParseMetadata(AppendMetadata(m)) = %+v, want %+v", back, tc.in)
			}
		})
	}
}
