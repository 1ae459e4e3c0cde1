//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// wsEnv is a proxy with its WebSocket listener on loopback (plain ws,
// which counts as TLS there, as behind a web server on the same host),
// and a log the tests wait on instead of sleeping.
type wsEnv struct {
	*env
	log *logWatch
}

// startWSProxy is startProxy with websocket_listen set (and no direct
// TLS listener) and its log watched.
func startWSProxy(t *testing.T, srv harness.Server) *wsEnv {
	t.Helper()
	lw := &logWatch{}
	e := startProxyWith(t, srv, proxyStart{log: lw, mutate: []func(*proxy.Config){noDirectTLS, func(c *proxy.Config) {
		c.WebSocketListen = "127.0.0.1:0"
	}}})
	return &wsEnv{env: e, log: lw}
}

func (e *wsEnv) url() string {
	return "ws://" + e.proxy.WebSocketAddr().String() + "/xmpp-websocket"
}

// overWebSocket makes a login connect to the proxy's WebSocket listener.
func (e *wsEnv) overWebSocket(l *harness.Login) {
	l.WebSocketURL, l.TLS = e.url(), nil
}

// TestWebSocketRawClientLogsInAndExchangesMessages: a raw Go client over
// the WebSocket listener (coder/websocket, RFC 7395 framing) logs in the
// classic way and with SASL2 + Bind2, and exchanges a message each way
// with a classic client on TCP.
func TestWebSocketRawClientLogsInAndExchangesMessages(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startWSProxy(t, srv)
		bob := e.login(t, "bob")
		goOnline(t, bob)
		for _, tc := range []struct {
			name, user string
			login      func(*harness.Login)
		}{
			{"classic SASL and bind", "carol", func(*harness.Login) {}},
			{"SASL2 and Bind2", "dave", func(l *harness.Login) { l.SASL2, l.Inline = true, bind2SM }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := e.login(t, tc.user, e.overWebSocket, tc.login)
				if strings.Contains(string(c.PreAuthFeatures), "starttls") {
					t.Fatalf("STARTTLS offered over WebSocket: %s", c.PreAuthFeatures)
				}
				if tc.name == "SASL2 and Bind2" && (!resourceRE.MatchString(c.JID) || !contains(c.Success, "<bound")) {
					t.Fatalf("SASL2 + Bind2 over WebSocket bound %q: %s", c.JID, c.Success)
				}
				e.log.waitFor(t, 0, "session started", "listener=websocket")
				out, in := "ws out "+harness.NewID(), "ws in "+harness.NewID()
				send(t, c, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", bob.JID, out))
				waitFor(t, bob, "<message", out)
				send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", c.JID, in))
				waitFor(t, c, "<message", in)
			})
		}
	})
}

// TestXMPPJSOverWebSocketWithSASL2AndBind2 runs the real xmpp.js client
// (@xmpp/websocket) against ws://: SASL2 with inline Bind2, SM from
// <bound/>, and a message each way with a classic client.
func TestXMPPJSOverWebSocketWithSASL2AndBind2(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startWSProxy(t, srv)
		bob := e.login(t, "bob")
		goOnline(t, bob)
		dir, _ := filepath.Abs("clients/xmppjs")
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
			t.Fatalf("the xmpp.js driver's packages are not installed: run `npm ci --prefix %s` (make deps does)", dir)
		}
		out := "from xmpp.js over ws " + harness.NewID()
		// henry is the xmpp.js tests' account: nothing stale waits offline.
		events, done := runClient(t, "node", filepath.Join(dir, "client.mjs"), "--service", e.url(),
			"--domain", domain, "--username", "henry", "--password", password, "--resource-tag", "mobile",
			"--to", bob.JID, "--message", out, "--expect", "1")
		auth := nextEvent(t, events, "authenticate")
		if !strings.Contains(auth.XML, "urn:xmpp:sasl:2") || !strings.Contains(auth.XML, "urn:xmpp:bind:0") {
			t.Fatalf("xmpp.js did not send SASL2 with Bind2 over WebSocket: %s", auth.XML)
		}
		online := nextEvent(t, events, "online")
		if !resourceRE.MatchString(online.JID) {
			t.Fatalf("xmpp.js online as %q, want henry@localhost/mobile.HASH", online.JID)
		}
		nextEvent(t, events, "sm_enabled")
		waitFor(t, bob, "<message", out)
		in := "to xmpp.js over ws " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", online.JID, in))
		if got := nextEvent(t, events, "message"); got.Body != in {
			t.Fatalf("xmpp.js received %q, want %q", got.Body, in)
		}
		if err := done(); err != nil {
			t.Fatal(err)
		}
	})
}

var seqRE = regexp.MustCompile(`<body>(\S+) (\d+) </body>`)

// countSeqs counts, per sequence number, the messages of marker in els.
func countSeqs(els [][]byte, marker string, into map[string]int) {
	for _, el := range els {
		for _, m := range seqRE.FindAllSubmatch(el, -1) {
			if string(m[1]) == marker {
				into[string(m[2])]++
			}
		}
	}
}

// readUntil reads c's elements until one holds sentinel, and returns
// them all.
func readUntil(t *testing.T, c *harness.Client, sentinel string) [][]byte {
	t.Helper()
	var got [][]byte
	_, err := c.WaitFor(wait, func(b []byte) bool {
		got = append(got, b)
		return strings.Contains(string(b), sentinel)
	})
	if err != nil {
		t.Fatalf("waiting for %q: %v", sentinel, err)
	}
	return got
}

// TestWebSocketSessionResumesAcrossTransports: a 2.0 session started over
// WebSocket resumes over TCP, and the reverse. A classic peer sends five
// numbered messages that the first connection reads, then five more once
// the proxy holds the session, then a last one; after the resume every
// number has arrived exactly once (none lost, none twice).
func TestWebSocketSessionResumesAcrossTransports(t *testing.T) {
	const before, after = 5, 5
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startWSProxy(t, srv)
		bob := e.login(t, "bob")
		for _, tc := range []struct {
			name          string
			user          string
			first, second func(*harness.Login)
		}{
			{"started over WebSocket, resumed over TCP", "erin", e.overWebSocket, func(*harness.Login) {}},
			{"started over TCP, resumed over WebSocket", "frank", func(*harness.Login) {}, e.overWebSocket},
		} {
			t.Run(tc.name, func(t *testing.T) {
				marker := "xport-" + harness.NewID()
				first := e.login(t, tc.user, tc.first, func(l *harness.Login) { l.SASL2, l.Inline = true, bind2SM })
				previd := smID(t, first)
				seen := map[string]int{}
				for seq := 1; seq <= before; seq++ {
					send(t, bob, numbered(first.JID, "chat", marker, seq, 0))
				}
				countSeqs(readUntil(t, first, fmt.Sprintf("%s %d ", marker, before)), marker, seen)
				h := first.Received
				_ = first.Conn.Close() // vanish: no stream close
				e.log.waitFor(t, 0, "session held for resumption", "jid="+first.JID)
				for seq := before + 1; seq <= before+after; seq++ {
					send(t, bob, numbered(first.JID, "chat", marker, seq, 0))
				}
				again := e.login(t, tc.user, tc.second, func(l *harness.Login) {
					l.SASL2 = true
					l.Inline = fmt.Sprintf("<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%d'/>", previd, h) + bind2SM
				})
				if !contains(again.Success, "<resumed xmlns='urn:xmpp:sm:3' previd='"+previd+"'") || again.JID != first.JID {
					t.Fatalf("not resumed as %s: %s", first.JID, again.Success)
				}
				again.Received = h // XEP-0198: h goes on from the old stream's
				// Everything before the sentinel arrived before it: the
				// replay comes first, and one path keeps the order.
				send(t, bob, numbered(again.JID, "chat", marker, 0, 0))
				countSeqs(readUntil(t, again, marker+" 0 "), marker, seen)
				var lost, twice []int
				for seq := 1; seq <= before+after; seq++ {
					switch n := seen[fmt.Sprint(seq)]; {
					case n == 0:
						lost = append(lost, seq)
					case n > 1:
						twice = append(twice, seq)
					}
				}
				if len(lost) > 0 || len(twice) > 0 {
					t.Fatalf("lost %v, delivered twice %v (of %d)", lost, twice, before+after)
				}
				live := "live after resume " + harness.NewID()
				send(t, again, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", bob.JID, live))
				waitFor(t, bob, "<message", live)
			})
		}
	})
}
