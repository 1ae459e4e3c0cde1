package proxy

import (
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

func TestTheServersAnswerSaysWhetherAFullJIDIsOnline(t *testing.T) {
	const probe = "x2-online-1"
	errorIQ := func(cond string) string {
		return "<iq type='error' id='" + probe + "' from='bob@localhost/desk'><error type='cancel'><" + cond + " xmlns='" + ns.Stanzas + "'/></error></iq>"
	}
	for _, tc := range []struct {
		name, answer string
		online       bool
	}{
		{"a disco#info result is an online resource", "<iq type='result' id='" + probe + "' from='bob@localhost/desk'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", true},
		{"service-unavailable is the server's answer for no such resource", errorIQ("service-unavailable"), false},
		{"item-not-found says the recipient is not there", errorIQ("item-not-found"), false},
		{"recipient-unavailable says the recipient is not there", errorIQ("recipient-unavailable"), false},
		{"feature-not-implemented comes from a client that is there", errorIQ("feature-not-implemented"), true},
		{"a condition in another namespace is not the server's", "<iq type='error' id='" + probe + "'><error type='cancel'><service-unavailable xmlns='urn:example'/></error></iq>", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, r := probingSession(t)
			got := make(chan bool, 1)
			go func() { got <- v.onlineByServer(r, "bob@localhost/desk") }()
			asked := string(<-r.up.out.current())
			if !strings.Contains(asked, "id='"+probe+"'") || !strings.Contains(asked, "to='bob@localhost/desk'") || !strings.Contains(asked, "disco#info") {
				t.Fatalf("the server was asked %s", asked)
			}
			if out := v.fromUpstream(r, []byte(tc.answer)); out != nil {
				t.Fatalf("the answer went on to the client: %s", out)
			}
			if online := <-got; online != tc.online {
				t.Fatalf("online = %v, want %v", online, tc.online)
			}
			if q := queued(&r.client); len(q) != 0 {
				t.Fatalf("the client got %q", q)
			}
		})
	}
}

func TestAnIQThatOnlyLooksLikeAnAnswerIsNotConsumed(t *testing.T) {
	var p onlineProbes
	if p.answer([]byte("<iq type='result' id='x2-online-1'/>")) {
		t.Fatal("an answer was taken before any question was asked")
	}
	p.start()
	if p.answer([]byte("<iq type='get' id='x2-online-7'><query/></iq>")) {
		t.Fatal("a request with the prefix was taken for an answer")
	}
	if p.answer([]byte("<iq type='result' id='client-1'/>")) {
		t.Fatal("the client's own result was consumed")
	}
	if !p.answer([]byte("<iq type='result' id='x2-online-99'/>")) {
		t.Fatal("a late answer to a question given up on reached the client")
	}
}

func TestResourcepartsCompareCaseSensitively(t *testing.T) {
	g := newRegistry()
	g.bind("bob@localhost/Desk")
	v := &session2{sm: sm.New(sm.Config{}), jid: alice1, served: func(d string) bool { return d == "localhost" }, isLocal: g.isLocal}
	for _, tc := range []struct {
		name, to string
		check    bool
	}{
		{"the bound resource needs no question", "bob@localhost/Desk", false},
		{"localpart and domain compare without case", "BOB@LocalHost/Desk", false},
		{"a resource that differs only in case is another resource", "bob@localhost/desk", true},
		{"a bare JID is not for the bounce rule", "bob@localhost", false},
		{"a domain not served is not for the bounce rule", "bob@example.org/Desk", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, check := v.fullJIDToCheck([]byte("<message to='" + tc.to + "' type='chat'/>")); check != tc.check {
				t.Fatalf("check = %v, want %v", check, tc.check)
			}
		})
	}
	if _, check := v.fullJIDToCheck([]byte("<message type='error' to='bob@localhost/gone'/>")); check {
		t.Fatal("an error message would be answered with an error")
	}
}

// probingSession is a 2.0 session whose upstream queue the test reads.
func probingSession(t *testing.T) (*session2, *relay) {
	t.Helper()
	srv := &Server{registry: newRegistry()}
	v := &session2{sm: sm.New(sm.Config{}), jid: alice1, served: func(d string) bool { return d == "localhost" }, isLocal: srv.registry.isLocal}
	r := quietRelay(srv, v, alice1)
	r.up.out.acquire() // the queue's channel exists before the question is sent
	r.up.out.release()
	return v, r
}

func TestAnotherProxysQuestionIsAnsweredForTheClient(t *testing.T) {
	v, r := probingSession(t)
	q := "<iq type='get' id='x2-online-5' from='carol@localhost/peer' to='" + alice1 + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
	if out := v.fromUpstream(r, []byte(q)); out != nil {
		t.Fatalf("the question went on to the client: %s", out)
	}
	if got := queued(&r.client); len(got) != 0 {
		t.Fatalf("the client saw %q", got)
	}
	up := queued(&r.up)
	if len(up) != 1 || up[0] != "<iq type='result' id='x2-online-5' to='carol@localhost/peer'/>" {
		t.Fatalf("upstream got %q, want the result for carol", up)
	}
	// A client's own disco#info question is not the proxy's to answer.
	mine := "<iq type='get' id='disco1' from='carol@localhost/peer'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
	v.fromUpstream(r, []byte(mine))
	if got := queued(&r.client); len(got) != 1 || got[0] != mine {
		t.Fatalf("the client got %q, want the question that is its own", got)
	}
}
