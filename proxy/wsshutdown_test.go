package proxy

import (
	"context"
	"log/slog"
	"testing"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// Not parallel: it checks that no goroutine outlives it, which only holds
// while no other test runs.
func TestWebSocketUpgradedAsShutdownBeginsIsRefusedAndLeavesNothingRunning(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// Registered first, so it runs after the server's and the fake
	// upstream's cleanups.
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	fake := startFakeUpstream(t, false)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := newServerForTest(t, testConfig(fake.addr(), func(c *Config) { c.WebSocketListen = "127.0.0.1:0" }), nil, log)
	// The handler has upgraded the request when Shutdown begins: it
	// registers its session only once Shutdown has closed the door.
	upgraded := make(chan struct{})
	srv.wsAccepted = func() {
		close(upgraded)
		<-srv.quit
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := dialWS(t, srv)
	<-upgraded
	read := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_, _, err := c.ws.Read(ctx) // and answers the close handshake
		read <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-read; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("client read %v, want the WebSocket closed with going away", err)
	}
}

func TestWebSocketShutdownPastItsDeadlineDropsAClientThatNeverAnswersTheClose(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, false)
	srv := startWSProxy(t, fake.addr(), nil, nil)
	c := dialWS(t, srv)
	c.send(wsOpen)
	c.expectPrefix("<open ")
	c.expectPrefix("<stream:features")
	// From here the client reads nothing: the proxy's close handshake
	// waits for a close frame that never comes, up to the library's own
	// bound, longer than Shutdown's grace after its deadline.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Exactly ctx.Err(): not the error of a Shutdown that gave up on
	// what was left running.
	if err := srv.Shutdown(ctx); err != ctx.Err() {
		t.Fatalf("Shutdown returned %v, want %v: the WebSocket handler dropped once the deadline passed", err, ctx.Err())
	}
}
