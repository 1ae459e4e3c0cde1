package proxy

import (
	"bytes"
	"strings"
	"testing"
)

func mamResultFor(queryID, id, body string) []byte {
	return []byte("<message to='alice@localhost/one'><result xmlns='urn:xmpp:mam:2' queryid='" + queryID + "' id='" + id +
		"'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-11-30T00:00:00Z'/>" +
		"<message xmlns='jabber:client' from='bob@localhost/x' to='alice@localhost' type='chat'><body>" + body + "</body></message></forwarded></result></message>")
}

func TestTheCatchUpDeliversEachArchivedMessageOnce(t *testing.T) {
	st := &setupState{out: &boundSession{jid: "alice@localhost/one"}, sync: &archiveSync{queryID: queryIDSync, max: 100}}
	// ejabberd was seen to answer one query with a result twice under
	// the same archive id.
	for _, id := range []string{"A1", "A2", "A1", "A3", "A2"} {
		st.onMessage(mamResultFor(queryIDSync, id, "m-"+id))
	}
	b, _ := st.appendCatchup(nil, "alice@localhost")
	for _, id := range []string{"A1", "A2", "A3"} {
		if n := bytes.Count(b, []byte("id='"+id+"'")); n != 1 {
			t.Errorf("archive id %s is in the catch-up %d times, want once", id, n)
		}
	}
	if !bytes.Contains(b, []byte("count='3'")) || !bytes.Contains(b, []byte("last='A3'")) {
		t.Errorf("<synced/> does not count what was delivered: %s", b)
	}
}

func TestLiveTrafficHeldDuringSetupGetsTheEnteringRules(t *testing.T) {
	st := &setupState{out: &boundSession{jid: "alice@localhost/one"}, sync: &archiveSync{queryID: queryIDSync, max: 100}}
	st.onMessage([]byte("<message from='bob@localhost/x' to='alice@localhost' type='chat' id='live1'><body>live</body></message>"))
	st.onPresence([]byte("<presence from='bob@localhost/x'/>"))
	b, _ := st.appendCatchup(nil, "alice@localhost")
	after := b[bytes.Index(b, []byte("<synced")):]
	if !bytes.Contains(after, []byte("<xmpp-1 xmlns='urn:xmpp:xmpp2:0'/>")) {
		t.Fatalf("the live message released after <synced/> is not marked xmpp-1: %s", after)
	}
	if strings.Count(string(after), "xmpp-1") != 1 {
		t.Fatalf("something besides the message was marked: %s", after)
	}
}
