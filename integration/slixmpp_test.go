//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// clientEvent is one JSON line printed by a real-client driver
// (clients/classic.py, clients/xmppjs/client.mjs).
type clientEvent struct {
	Event     string   `json:"event"`
	JID       string   `json:"jid"`
	From      string   `json:"from"`
	Body      string   `json:"body"`
	Items     []string `json:"items"`
	XML       string   `json:"xml"`
	Profile   string   `json:"profile"`
	Name      string   `json:"name"`
	Error     string   `json:"error"`
	Condition string   `json:"condition"`
	ID        string   `json:"id"`
}

// runSlixmpp starts the real slixmpp client and streams its events.
func runSlixmpp(t *testing.T, args ...string) (<-chan clientEvent, func() error) {
	t.Helper()
	script, _ := filepath.Abs("clients/classic.py")
	return runClient(t, "/usr/bin/python3", append([]string{script}, args...)...)
}

// runClient starts a driver process and streams the JSON events it prints.
func runClient(t *testing.T, name string, args ...string) (<-chan clientEvent, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	cmd := exec.CommandContext(ctx, name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &limitedBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan clientEvent, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var ev clientEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
	}()
	wait := func() error {
		defer cancel()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, stderr.String())
		}
		return nil
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return events, wait
}

func nextEvent(t *testing.T, events <-chan clientEvent, want string) clientEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the client exited before %q", want)
			}
			if ev.Event == want {
				return ev
			}
			if ev.Event == "failed_auth" || ev.Event == "timeout" || ev.Event == "error" {
				t.Fatalf("the client reported %s (%s) while waiting for %q", ev.Event, ev.Error, want)
			}
		case <-timeout:
			t.Fatalf("no %q event from the client", want)
		}
	}
}

// TestSlixmppThroughTheProxy drives Debian's slixmpp, a real classic
// client, through the proxy: STARTTLS, SASL, bind, roster, and a message
// each way with a Go client.
func TestSlixmppThroughTheProxy(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		goOnline(t, bob)
		body := "from slixmpp " + harness.NewID()
		// ivan is used by this test only: no offline message left by other
		// tests can end slixmpp's --expect 1 early.
		events, wait := runSlixmpp(t, "--addr", e.proxy.Addr().String(), "--jid", "ivan@"+domain,
			"--password", password, "--to", "bob@"+domain, "--message", body, "--roster", "--expect", "1")
		start := nextEvent(t, events, "session_start")
		nextEvent(t, events, "roster")
		waitFor(t, bob, "<message", body)
		reply := "to slixmpp " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", start.JID, reply))
		if got := nextEvent(t, events, "message"); got.Body != reply {
			t.Fatalf("slixmpp received %q, want %q", got.Body, reply)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSlixmppWrongPassword(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		events, _ := runSlixmpp(t, "--addr", e.proxy.Addr().String(), "--jid", "alice@"+domain, "--password", "nope")
		nextEvent(t, events, "failed_auth")
	})
}
