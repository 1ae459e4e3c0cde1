//go:build integration

package integration

import (
	"context"
	"encoding/xml"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// TestMelliumClientThroughTheProxy logs in with mellium.im/xmpp, a real Go
// XMPP library doing its own STARTTLS, SCRAM and bind negotiation, and
// sends a message that a second client receives.
func TestMelliumClientThroughTheProxy(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		conn, err := net.Dial("tcp", e.proxy.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		origin := jid.MustParse("alice@" + domain)
		sess, err := xmpp.NewClientSession(ctx, origin, conn,
			xmpp.StartTLS(e.cert.ClientConfig(domain)),
			xmpp.SASL("", password, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
			xmpp.BindResource(),
		)
		if err != nil {
			t.Fatalf("mellium session through the proxy: %v", err)
		}
		served := make(chan error, 1)
		go func() { served <- sess.Serve(nil) }()
		defer func() {
			// Closing sends </stream:stream>; the proxy relays the
			// server's reply and Serve returns.
			sess.Close()
			select {
			case <-served:
			case <-time.After(wait):
				t.Error("mellium session did not end after Close")
			}
		}()
		body := "from mellium " + harness.NewID()
		msg := stanza.Message{To: jid.MustParse(bob.JID), Type: stanza.ChatMessage}
		err = sess.Send(ctx, msg.Wrap(xmlstream.Wrap(
			xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}},
		)))
		if err != nil {
			t.Fatal(err)
		}
		got := waitFor(t, bob, "<message", body)
		if !contains(got, sess.LocalAddr().String()) {
			t.Errorf("message from %s lacks the mellium session's JID: %s", sess.LocalAddr(), got)
		}
	})
}
