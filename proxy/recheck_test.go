package proxy

import (
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

// recheckResult is an answer to the second look at alice's archive.
func recheckResult(id, from string, msg string) []byte {
	attr := ""
	if from != "" {
		attr = " from='" + from + "'"
	}
	return []byte("<message" + attr + " to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='x2-recheck' id='" + id +
		"'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T10:00:00Z'/>" + msg + "</forwarded></result></message>")
}

// The second look delivers, as live traffic and through the account's
// delivery state, what a session missed, and nothing it had; only the
// account's own archive answers it.
func TestTheSecondLookDeliversWhatTheSessionsMissedOnce(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	one := quietRelay(srv, &session2{sm: sm.New(sm.Config{}), jid: alice1}, alice1)
	two := quietRelay(srv, &session2{sm: sm.New(sm.Config{}), jid: alice2}, alice2)
	had := "<message from='bob@localhost/pc' to='alice@localhost' type='chat' id='h1'><body>had</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='A1'/></message>"
	one.s.v2.fromUpstream(one, []byte(had))
	queued(&one.client)
	queued(&two.client)
	one.s.v2.recheck.asked.Store(true)

	missed := "<message from='bob@localhost/pc' to='alice@localhost' type='chat' id='m2'><body>missed</body></message>"
	private := "<message from='bob@localhost/pc' to='alice@localhost/two' type='chat' id='p3'><body>for two</body><private xmlns='urn:xmpp:carbons:2'/></message>"
	for _, raw := range [][]byte{
		recheckResult("A1", "", had),
		recheckResult("A2", "alice@localhost", missed),
		recheckResult("A3", "", private),
		recheckResult("A4", "mallory@localhost", strings.ReplaceAll(missed, "m2", "m4")),
	} {
		one.s.v2.fromUpstream(one, raw)
	}
	for _, r := range []*relay{one, two} {
		all := queued(&r.client)
		got := strings.Join(all, "\n")
		var m2 []string
		for _, el := range all {
			if strings.Contains(el, "id='m2'") {
				m2 = append(m2, el)
			}
		}
		if len(m2) != 1 || !strings.Contains(m2[0], "<delay xmlns='urn:xmpp:delay' from='alice@localhost'") ||
			!strings.Contains(m2[0], "by='alice@localhost' id='A2'") || strings.Contains(m2[0], "<result") {
			t.Errorf("%s got %s\nwant the missed message once, as a live message with its stanza-id and a delay", r.s.v2.jid, got)
		}
		if strings.Contains(got, "id='h1'") || strings.Contains(got, "id='p3'") {
			t.Errorf("%s got what it had, or what was for another session: %s", r.s.v2.jid, got)
		}
		if r == one && !strings.Contains(got, "id='m4'") {
			t.Errorf("a stranger's forged result was taken as the archive's (not passed on as live traffic): %s", got)
		}
	}
	one.s.v2.fromUpstream(one, []byte("<iq type='result' id='x2-recheck'><fin xmlns='urn:xmpp:mam:2' complete='true'/></iq>"))
	if one.s.v2.recheck.asked.Load() {
		t.Error("the query's end did not end the second look")
	}
	if got := queued(&one.client); len(got) != 0 {
		t.Errorf("the query's end reached the client: %q", got)
	}
}
