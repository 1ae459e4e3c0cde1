package proxy

import (
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

func TestLateAnswersToAnAbandonedSetupQueryNeverReachTheClient(t *testing.T) {
	ab := &abandonedQueries{}
	ab.add(&archiveSync{queryID: queryIDSync, idPrefix: queryIDSync + "-"})
	ab.idPrefixes = append(ab.idPrefixes, idMetadata)
	for _, tc := range []struct {
		name, raw string
		late      bool
	}{
		{"a late page of the abandoned account catch-up is dropped",
			"<message to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='" + queryIDSync + "' id='A1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>old</body></message></forwarded></result></message>", true},
		{"the late end of the abandoned query is dropped",
			"<iq type='result' id='" + queryIDSync + "-0'><fin xmlns='urn:xmpp:mam:2'/></iq>", true},
		{"a late metadata answer is dropped",
			"<iq type='result' id='" + idMetadata + "'/>", true},
		{"a result of a query the client made goes through",
			"<message to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='mine' id='A1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></result></message>", false},
		{"a request that happens to share the prefix is not an answer",
			"<iq type='get' id='" + queryIDSync + "-0'><ping xmlns='urn:xmpp:ping'/></iq>", false},
		{"a live message goes through",
			"<message from='bob@localhost/x' type='chat'><body>hi</body></message>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, _ := stream.ElementName([]byte(tc.raw))
			if got := ab.late(name, []byte(tc.raw)); got != tc.late {
				t.Fatalf("late = %v, want %v", got, tc.late)
			}
		})
	}
	var none *abandonedQueries
	if none.late([]byte("iq"), []byte("<iq type='result' id='x2-meta'/>")) {
		t.Fatal("a session that abandoned nothing dropped an answer")
	}
}
