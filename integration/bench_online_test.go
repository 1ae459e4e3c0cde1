//go:build integration

package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// BenchmarkFullJIDMessage measures what the bounce rule's offline check
// costs a 2.0 client's message to a full JID (docs/protocol.md): the time
// from sending a chat to its arrival, in one run, for a recipient bound
// through the same proxy (no question needed), a 2.0 session on another
// instance (the question is answered by that instance), and a classic
// client connected straight to the server (it answers the question
// itself). The extra over the first row is the check's cost per message.
//
//	go test -tags integration -run '^$' -bench FullJIDMessage -benchtime 200x ./integration/
func BenchmarkFullJIDMessage(b *testing.B) {
	for _, srv := range servers {
		b.Run(srv.Name(), func(b *testing.B) {
			e := startProxy(b, srv)
			other := startProxy(b, srv)
			carol := e.login2(b, "carol")
			targets := []struct {
				name    string
				c       *harness.Client
				answers bool
			}{
				{"bound-here", e.login2(b, "alice"), false},
				{"other-instance", other.login2(b, "alice"), false},
				{"direct-on-server", e.login(b, "bob", directTo(srv)), true},
			}
			goOnline(b, targets[2].c)
			per := make([]time.Duration, len(targets))
			for range b.N {
				for i, tgt := range targets {
					per[i] += roundTrip(b, carol, tgt.c, tgt.answers)
				}
			}
			for i, tgt := range targets {
				b.ReportMetric(float64(per[i].Microseconds())/float64(b.N), "µs/msg-"+tgt.name)
			}
			b.ReportMetric(float64((per[1]-per[0]).Microseconds())/float64(b.N), "µs-check-other-instance")
			b.ReportMetric(float64((per[2]-per[0]).Microseconds())/float64(b.N), "µs-check-direct")
		})
	}
}

// roundTrip sends one chat from c to the full JID of to and returns the
// time until to has it; to answers the proxy's question when answers.
func roundTrip(b *testing.B, c, to *harness.Client, answers bool) time.Duration {
	b.Helper()
	marker := "cost-" + harness.NewID()
	start := time.Now()
	if err := c.Send(fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>%s</body></message>", to.JID, harness.NewID(), marker)); err != nil {
		b.Fatal(err)
	}
	_, err := to.WaitFor(wait, func(el []byte) bool {
		if answers && contains(el, "<iq", "type='get'", "disco#info") {
			_ = to.Send(fmt.Sprintf("<iq type='result' id='%s' to='%s'/>", attrValue(string(el), "id"), attrValue(string(el), "from")))
		}
		return contains(el, marker)
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
