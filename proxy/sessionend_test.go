package proxy

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// ---------------------------------------------------------------------------
// How an authenticated session ends

func TestShutdownSendsSystemShutdownAndClosesUpstreamStream(t *testing.T) {
	t.Parallel()
	srv, c, up := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expectStreamError(stream.CondSystemShutdown)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestShutdownDuringNegotiationSendsSystemShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// negotiate brings the client to the stage where Shutdown hits.
		negotiate func(t *testing.T, c *testClient, srv *Server)
		// header: the proxy has yet to send its stream header.
		header bool
		// upstream: the proxy has an upstream stream to close.
		upstream bool
	}{
		{
			name:      "before the client's stream header",
			negotiate: func(t *testing.T, _ *testClient, srv *Server) { waitSessions(t, srv, 1) },
			header:    true,
		},
		{
			name:      "while the client is to authenticate",
			negotiate: func(_ *testing.T, c *testClient, _ *Server) { c.openStream() },
			upstream:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := startFakeUpstream(t, false)
			srv := startProxy(t, fake.addr(), nil, nil)
			c := dialProxy(t, srv)
			tt.negotiate(t, c, srv)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if tt.header {
				c.nextOf(stream.UnitStreamOpen)
			}
			c.expectStreamError(stream.CondSystemShutdown)
			c.expectStreamClose()
			c.expectConnClosed()
			if tt.upstream {
				up := fake.accept(t)
				up.expect(t, stream.UnitStreamClose, stream.CloseTag)
				up.expectClosed(t)
			}
		})
	}
}

func TestShutdownCompletesWhenClientWriteFailsDuringFinalFlush(t *testing.T) {
	t.Parallel()
	srv, c, up := setup(t, func(c *Config) { c.Timeouts.Write = time.Second })
	// The client reads nothing more, through a small window, while the
	// upstream sends more than the sockets between them hold.
	if err := c.conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	up.send(t, "<message><body>"+strings.Repeat("x", 8<<20)+"</body></message>")
	// Once the client writer is stuck on it, further stanzas queue up.
	r := relayOf(t, srv)
	for i := 0; r.client.out.len() == 0; i++ {
		if i == 1000 {
			t.Fatal("the client writer never got stuck")
		}
		up.send(t, fmt.Sprintf("<presence id='p%d'/>", i))
		time.Sleep(10 * time.Millisecond)
	}
	// The end is decided (client writer to flush <system-shutdown/>,
	// upstream writer </stream:stream>) before the client write times out.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; want the session ended once the client write failed", err)
	}
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestIdleClientGetsConnectionTimeoutAndUpstreamStreamIsClosed(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(c *Config) { c.Timeouts.Idle = 300 * time.Millisecond })
	c.expectStreamError(stream.CondConnectionTimeout)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.expectClosed(t)
}

func TestActiveClientIsNotTimedOutAsIdle(t *testing.T) {
	t.Parallel()
	fake := startFakeUpstream(t, true)
	srv := startProxy(t, fake.addr(), nil, func(c *Config) { c.Timeouts.Idle = 800 * time.Millisecond })
	c := dialProxy(t, srv)
	c.login()
	// Twice the idle timeout, never silent for more than a fraction of it.
	for i := range 16 {
		time.Sleep(100 * time.Millisecond)
		p := fmt.Sprintf("<presence id='p%d'/>", i)
		c.send(p)
		c.expect(stream.UnitElement, p) // echoed, not a stream error
	}
}

func TestVanishedClientDropsUpstreamWithoutClosingItsStream(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	msg := "<message to='bob@localhost' id='last'><body>last words</body></message>"
	c.send(msg)
	c.conn.Close()
	up.expect(t, stream.UnitElement, msg) // flushed before the drop
	up.expectClosed(t)                    // no </stream:stream>: the session stays resumable
}

func TestClientStreamCloseIsRelayedAndUpstreamCloseAnswersIt(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	c.send(stream.CloseTag)
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	up.send(t, stream.CloseTag)
	c.expectStreamClose()
	c.expectConnClosed()
	up.expectClosed(t)
}

func TestUnansweredClientCloseIsClosedByTheProxyAfterTheCloseTimeout(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(cfg *Config) { cfg.Timeouts.Close = 200 * time.Millisecond })
	c.send(stream.CloseTag)
	up.expect(t, stream.UnitStreamClose, stream.CloseTag)
	// The upstream never answers: the client still gets its close.
	c.expectStreamClose()
	c.expectConnClosed()
	up.waitClosed(t)
}

func TestUpstreamDropGivesClientRemoteConnectionFailed(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, nil)
	up.drop()
	c.expectStreamError(stream.CondRemoteConnectionFailed)
	c.expectStreamClose()
	c.expectConnClosed()
}

func TestUpstreamStreamErrorReachesClientUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, streamError string
	}{
		{
			name:        "conflict",
			streamError: "<stream:error><conflict xmlns='" + ns.Streams + "'/></stream:error>",
		},
		{
			name: "see-other-host with text",
			streamError: "<stream:error><see-other-host xmlns='" + ns.Streams + "'>[2001:db8::1]:5222</see-other-host>" +
				"<text xmlns='" + ns.Streams + "' xml:lang='en'>moved &amp; gone</text></stream:error>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, c, up := setup(t, nil)
			up.send(t, tt.streamError+stream.CloseTag)
			c.expect(stream.UnitElement, tt.streamError)
			c.expectStreamClose()
			c.expectConnClosed()
			up.waitClosed(t)
		})
	}
}

// ---------------------------------------------------------------------------
// Relaying

func TestStanzasArriveInOrderAndUnchangedUnderBackpressure(t *testing.T) {
	t.Parallel()
	_, c, up := setup(t, func(c *Config) { c.QueueSize = 2 })
	const n = 1000
	fromClient := make([]string, n)
	fromUpstream := make([]string, n)
	for i := range n {
		// Sizes from a few bytes to several read buffers, so stanzas
		// straddle reads and writes get batched.
		fromClient[i] = fmt.Sprintf("<message to='bob@localhost/r' id='c%d' type='chat'><body>%s &amp; &lt;%d&gt;</body></message>",
			i, strings.Repeat("c", i*37%9000), i)
		fromUpstream[i] = fmt.Sprintf(`<message from="bob@localhost/r" id="u%d"><body xml:lang='en'>%s</body><x xmlns='urn:x'><![CDATA[<%d>]]></x></message>`,
			i, strings.Repeat("u", i*53%9000), i)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, s := range fromClient {
			if err := c.write(s); err != nil {
				t.Errorf("client write: %v", err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for _, s := range fromUpstream {
			if err := up.write(s); err != nil {
				t.Errorf("upstream write: %v", err)
				return
			}
		}
	}()

	for i, want := range fromUpstream {
		if u := c.next(); u.Kind != stream.UnitElement || string(u.Raw) != want {
			t.Fatalf("client read #%d: %s %.100q..., want %.100q...", i, kindName(u.Kind), u.Raw, want)
		}
	}
	for i, want := range fromClient {
		ev := up.next(t)
		if ev.err != nil || ev.unit.Kind != stream.UnitElement || string(ev.unit.Raw) != want {
			t.Fatalf("upstream read #%d: %s %.100q... (err %v), want %.100q...", i, kindName(ev.unit.Kind), ev.unit.Raw, ev.err, want)
		}
	}
}

func TestSlowClientIsDisconnectedInsteadOfBuffered(t *testing.T) {
	t.Parallel()
	srv, _, up := setup(t, func(c *Config) {
		c.Timeouts.Write = 200 * time.Millisecond
		c.QueueSize = 2
	})
	// The client reads nothing more while the upstream floods it.
	big := "<message from='bob@localhost/r'><body>" + strings.Repeat("x", 64<<10) + "</body></message>"
	const limit = 256 << 20
	var err error
	for sent := 0; err == nil; sent += len(big) {
		if sent > limit {
			t.Fatalf("the proxy took %d bytes for a client that reads nothing", sent)
		}
		err = up.write(big)
	}
	if isTimeout(err) {
		t.Fatalf("the proxy stopped reading from the upstream but kept the session: %v", err)
	}
	up.waitClosed(t)
	waitSessions(t, srv, 0)
}

func TestAClassicSessionHoldsOneUpstreamConnection(t *testing.T) {
	t.Parallel()
	srv, _, _ := setup(t, nil) // logged in and bound
	r := relayOf(t, srv)
	if r.s.upCh != nil {
		t.Fatal("the stream restart after SASL dialed the upstream a second time")
	}
}
