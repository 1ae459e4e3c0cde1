//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

// browserDir holds the page, its driver and their pinned npm packages.
const browserDir = "clients/browser"

// chromiumPath is Debian's Chromium, which playwright-core drives (it
// downloads no browser of its own).
const chromiumPath = "/usr/bin/chromium"

// converseDist is the headless build the converse.js package ships.
const converseDist = "node_modules/converse.js/src/headless/dist"

// servePage serves the test page and Converse.js headless on a loopback
// port and returns the page's URL.
func servePage(t *testing.T) string {
	t.Helper()
	dir, _ := filepath.Abs(browserDir)
	for _, need := range []string{filepath.Join(dir, converseDist), filepath.Join(dir, "node_modules", "playwright-core")} {
		if _, err := os.Stat(need); err != nil {
			t.Fatalf("%s is missing: run `npm ci --prefix %s` (make deps does)", need, dir)
		}
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is not installed (%v): apt-get install chromium (make deps does)", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(filepath.Join(dir, converseDist)))))
	// The page, and only its two files from the driver's directory
	// (ServeFile types .mjs as JavaScript, as a module script needs).
	for pattern, name := range map[string]string{"/{$}": "index.html", "/page.mjs": "page.mjs"} {
		file := filepath.Join(dir, name)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	}
	// Chromium asks for one; a 404 would be a console error in every run.
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// runConverse starts Converse.js in headless Chromium, logged in as user
// over the WebSocket at wsURL, and streams the driver's events.
func runConverse(t *testing.T, page, wsURL, user string, args ...string) (<-chan clientEvent, func() error) {
	t.Helper()
	dir, _ := filepath.Abs(browserDir)
	base := []string{filepath.Join(dir, "driver.mjs"), "--page", page, "--websocket-url", wsURL,
		"--jid", user + "@" + domain, "--password", password, "--chromium", chromiumPath}
	if os.Getenv("BROWSER_TRACE") != "" {
		base = append(base, "--trace")
	}
	events, wait := runClient(t, "node", append(base, args...)...)
	return teeOnFailure(t, events), wait
}

// teeOnFailure passes events on and, if the test fails, logs every one
// of them: what the browser saw is the first thing to read.
func teeOnFailure(t *testing.T, events <-chan clientEvent) <-chan clientEvent {
	out := make(chan clientEvent, cap(events))
	var seen limitedBuffer
	seen.max = 64 << 10
	go func() {
		defer close(out)
		for ev := range events {
			fmt.Fprintf(&seen, "%+v\n", ev)
			out <- ev
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser driver events:\n%s", seen.String())
		}
	})
	return out
}

// browserEnd is where a browser reaches an XMPP server over WebSocket,
// with a classic login to the same server.
type browserEnd struct {
	wsURL string
	srv   harness.Server
	// login logs a classic client in, through the proxy when the browser
	// goes through it.
	login func(t *testing.T, user string) *harness.Client
}

// browserRoute is one row: how the browser gets to the server.
type browserRoute struct {
	name string
	open func(t *testing.T) browserEnd
}

// browserRoutes lists, per server, the direct row (the server's own
// WebSocket endpoint: the reference) and the row through the proxy's
// WebSocket listener, whose origin check lets page in.
func browserRoutes(page string) []browserRoute {
	var routes []browserRoute
	for _, srv := range servers {
		direct := browserRoute{name: srv.Name() + "/direct to its own websocket", open: directProsodyWebSocket}
		if ej, ok := srv.(*harness.Ejabberd); ok {
			direct.open = func(*testing.T) browserEnd { return ownWebSocket(ej, ej.Cert, ej.WebSocketURL()) }
		}
		routes = append(routes, direct, browserRoute{
			name: srv.Name() + "/through the proxy's websocket",
			open: func(t *testing.T) browserEnd { return proxyWebSocket(t, srv, page) },
		})
	}
	return routes
}

// ownWebSocket is srv's own WebSocket endpoint at wsURL, with classic
// logins straight to srv, which serves cert.
func ownWebSocket(srv harness.Server, cert *harness.Cert, wsURL string) browserEnd {
	e := &env{srv: srv, addr: srv.Addr(), cert: cert}
	return browserEnd{wsURL: wsURL, srv: srv, login: func(t *testing.T, user string) *harness.Client { return e.login(t, user) }}
}

// directProsodyWebSocket starts a Prosody of this test's own with
// mod_websocket on, so the shared Prosody keeps the configuration every
// other test expects.
func directProsodyWebSocket(t *testing.T) browserEnd {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := harness.StartProsody(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	wsURL, err := harness.EnableProsodyWebSocket(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	return ownWebSocket(p, p.Cert, wsURL)
}

// proxyWebSocket starts a proxy in front of srv with its plain WebSocket
// listener on a loopback port, taking pages from the test page's origin
// only. The classic client logs in through the same proxy over STARTTLS.
func proxyWebSocket(t *testing.T, srv harness.Server, page string) browserEnd {
	origin, err := url.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	e := startProxy(t, srv, func(c *proxy.Config) {
		c.WebSocketListen = "127.0.0.1:0"
		c.WebSocketOrigins = []string{origin.Host}
	})
	wsURL := "ws://" + e.proxy.WebSocketAddr().String() + proxy.DefaultConfig().WebSocketPath
	return browserEnd{wsURL: wsURL, srv: srv, login: func(t *testing.T, user string) *harness.Client { return e.login(t, user) }}
}

// freshAccounts registers new accounts on srv, one per name prefix, so no
// offline message or roster entry of another test reaches this one.
func freshAccounts(t *testing.T, srv harness.Server, prefixes ...string) []string {
	t.Helper()
	id := harness.NewID()[:8]
	users := make([]string, len(prefixes))
	for i, p := range prefixes {
		users[i] = p + id
		if err := srv.Register(users[i], password); err != nil {
			t.Fatal(err)
		}
	}
	return users
}

// messagesEachWay is how many chat messages go each way per row.
const messagesEachWay = 3

// TestConverseInChromiumExchangesMessagesWithAClassicClient runs the real
// Converse.js (headless build) in Debian's Chromium: it logs in over
// WebSocket, sends messagesEachWay chat messages to a classic client and
// receives as many from it. Each side must get every message exactly once,
// in order, from the right full JID.
func TestConverseInChromiumExchangesMessagesWithAClassicClient(t *testing.T) {
	page := servePage(t)
	for _, route := range browserRoutes(page) {
		t.Run(route.name, func(t *testing.T) {
			end := route.open(t)
			users := freshAccounts(t, end.srv, "web", "classic")
			addContact(t, end.login(t, users[0]), users[1]+"@"+domain)
			peer := end.login(t, users[1])
			goOnline(t, peer)
			exchangeWithConverse(t, page, end.wsURL, users[0], peer)
		})
	}
}

// addContact puts jid on the roster of c's account, as a user adds the
// person they chat with. Converse 14 needs it on servers without XEP-0191
// blocking (this ejabberd): opening a chat with a JID that is not a
// contact waits for a blocklist that never comes, and no message is sent.
func addContact(t *testing.T, c *harness.Client, jid string) {
	t.Helper()
	id := "roster-" + harness.NewID()
	send(t, c, fmt.Sprintf("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='%s'/></query></iq>", id, jid))
	if got := waitFor(t, c, "<iq", "id='"+id+"'"); attrValue(string(got), "type") != "result" {
		t.Fatalf("roster set refused: %s", got)
	}
	c.Close()
}

// exchangeWithConverse has Converse, logged in as user, send to bob and
// receive from bob, and checks both sides' counts.
func exchangeWithConverse(t *testing.T, page, wsURL, user string, bob *harness.Client) {
	marker := harness.NewID()
	out, in, last := "from converse "+marker, "to converse "+marker, "last to converse "+marker
	events, wait := runConverse(t, page, wsURL, user, "--to", bare(bob.JID), "--message", out,
		"--count", strconv.Itoa(messagesEachWay), "--until", last)
	online := nextEvent(t, events, "connected")
	if bare(online.JID) != user+"@"+domain || online.JID == bare(online.JID) {
		t.Fatalf("Converse connected as %q, want a full JID of %s@%s", online.JID, user, domain)
	}
	for i := 1; i <= messagesEachWay; i++ {
		got := waitFor(t, bob, "<message", out+" ")
		if want := fmt.Sprintf("<body>%s %d</body>", out, i); !strings.Contains(string(got), want) {
			t.Fatalf("bob's message %d from Converse is %s, want %s", i, got, want)
		}
		if from := attrValue(string(got), "from"); from != online.JID {
			t.Fatalf("bob got Converse's message from %q, want %q", from, online.JID)
		}
	}
	for i := 1; i <= messagesEachWay+1; i++ {
		body := fmt.Sprintf("%s %d", in, i)
		if i > messagesEachWay {
			body = last
		}
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat' id='%s-%d'><body>%s</body></message>", online.JID, marker, i, body))
	}
	var got []string
	for ev := range events {
		switch ev.Event {
		case "error":
			t.Fatalf("the browser driver failed: %s", ev.Error)
		case "message":
			if !strings.Contains(ev.Body, marker) {
				continue // an offline message left by another test
			}
			if ev.From != bob.JID {
				t.Errorf("Converse got %q from %q, want from %q", ev.Body, ev.From, bob.JID)
			}
			got = append(got, ev.Body)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := make([]string, 0, messagesEachWay+1)
	for i := 1; i <= messagesEachWay; i++ {
		want = append(want, fmt.Sprintf("%s %d", in, i))
	}
	want = append(want, last)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Converse received\n%s\nwant each once, in order:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConversePageFromAnotherOriginIsRefused loads the page from an origin
// the proxy's websocket_origins does not list: Chromium sends its real
// Origin header, the proxy refuses the handshake, and Converse reports the
// connection lost without ever connecting. The check happens before any
// upstream dial, so one server is enough.
func TestConversePageFromAnotherOriginIsRefused(t *testing.T) {
	// Another host name as well as another port: no same-host rule lets
	// the page in.
	page := strings.Replace(servePage(t), "//127.0.0.1:", "//localhost:", 1)
	e := startProxy(t, servers[0], func(c *proxy.Config) {
		c.WebSocketListen = "127.0.0.1:0"
		c.WebSocketOrigins = []string{"chat.example.org"}
	})
	wsURL := "ws://" + e.proxy.WebSocketAddr().String() + proxy.DefaultConfig().WebSocketPath
	events, wait := runConverse(t, page, wsURL, "alice")
	var seen []string
	refused := false
	for ev := range events {
		seen = append(seen, ev.Event)
		switch {
		case ev.Event == "connected":
			t.Fatalf("Converse connected from %s, which websocket_origins does not list", page)
		case ev.Event == "console" && strings.Contains(ev.Body, "WebSocket handshake") && strings.Contains(ev.Body, "403"):
			refused = true // Chromium's own words for the proxy's answer
		}
	}
	if !refused || !slices.Contains(seen, "disconnected") {
		t.Fatalf("driver events %v, want Chromium to log the 403 handshake answer, then a disconnected", seen)
	}
	if err := wait(); err == nil {
		t.Fatal("the driver exited 0 after a refused handshake")
	}
}
