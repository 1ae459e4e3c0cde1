package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
)

func TestSystemShutdownComesOnlyAfterTheClientsStanzasAreUpstream(t *testing.T) {
	srv := &Server{registry: newRegistry()}
	r := detachableRelay(t, srv, alice1, true, 1<<20)
	v := r.s.v2
	v.sm = sm.New(sm.Config{UpstreamSM: true})
	if _, err := v.sm.Enable(true, true); err != nil {
		t.Fatal(err)
	}
	r.up.out.acquire() // the queue's channel exists before anything is sent
	r.up.out.release()
	up := r.up.out.current()
	v.fromClient(r, []byte("<message to='bob@localhost' type='chat' id='m1'><body>last words</body></message>"))
	if got := string(<-up); !strings.Contains(got, "id='m1'") {
		t.Fatalf("upstream got %s first, want the client's message", got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.shutdownDrained(context.Background())
	}()
	if got := string(<-up); got != "<r xmlns='urn:xmpp:sm:3'/>" {
		t.Fatalf("upstream got %s, want the proxy asking for an ack", got)
	}
	select {
	case <-done:
		t.Fatal("the shutdown did not wait for the upstream's ack")
	default:
	}
	if got := queued(&r.client); len(got) != 0 {
		t.Fatalf("the client got %q before its stanza was upstream", got)
	}
	v.upstreamSM(r, "a", []byte("<a xmlns='urn:xmpp:sm:3' h='1'/>"))
	<-done
	got := queued(&r.client)
	if len(got) < 2 || got[0] != "<a xmlns='urn:xmpp:sm:3' h='1'/>" || !strings.Contains(got[1], "<system-shutdown") {
		t.Fatalf("the client got %q, want <a h='1'/> and then <system-shutdown/>", got)
	}
}
