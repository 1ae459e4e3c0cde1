//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
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
	for _, name := range []string{"index.html", "page.mjs"} {
		file := filepath.Join(dir, name)
		path := "/" + name
		if name == "index.html" {
			path = "/{$}"
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(file, ".mjs") {
				// A module script must come with a JavaScript type.
				w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			}
			http.ServeFile(w, r, file)
		})
	}
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

// browserRoute is one way a browser reaches an XMPP server over WebSocket,
// with the classic client that talks to it on the same server.
type browserRoute struct {
	name string
	// open returns the WebSocket URL and a login for the classic client,
	// or skips the row.
	open func(t *testing.T) (wsURL string, classic func(t *testing.T, user string) *harness.Client)
}

// browserRoutes lists the direct row (Prosody's own mod_websocket, the
// reference) and a row through the proxy's WebSocket listener per server.
func browserRoutes() []browserRoute {
	routes := []browserRoute{{name: "prosody/direct to mod_websocket", open: directProsodyWebSocket}}
	for _, srv := range servers {
		routes = append(routes, browserRoute{
			name: srv.Name() + "/through the proxy's websocket",
			open: func(t *testing.T) (string, func(*testing.T, string) *harness.Client) {
				return proxyWebSocket(t, srv)
			},
		})
	}
	return routes
}

// directProsodyWebSocket starts a Prosody of this test's own with
// mod_websocket on, so the shared servers keep the configuration every
// other test expects.
func directProsodyWebSocket(t *testing.T) (string, func(*testing.T, string) *harness.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := harness.StartProsody(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	for _, a := range []string{"alice", "bob"} {
		if err := p.Register(a, password); err != nil {
			t.Fatal(err)
		}
	}
	wsURL, err := harness.EnableProsodyWebSocket(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	classic := func(t *testing.T, user string) *harness.Client {
		e := &env{srv: p, addr: p.Addr(), cert: p.Cert}
		return e.login(t, user)
	}
	return wsURL, classic
}

// proxyWebSocket starts a proxy in front of srv with its WebSocket
// listener on a loopback port.
func proxyWebSocket(t *testing.T, srv harness.Server) (string, func(*testing.T, string) *harness.Client) {
	_ = srv
	t.Skip("the proxy's WebSocket listener (issue 12 item 1, branch ws) is not on this branch yet")
	return "", nil
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
	for _, route := range browserRoutes() {
		t.Run(route.name, func(t *testing.T) {
			wsURL, classic := route.open(t)
			bob := classic(t, "bob")
			goOnline(t, bob)
			exchangeWithConverse(t, page, wsURL, "alice", bob)
		})
	}
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
