// Package wsconn presents a WebSocket connection (RFC 6455, through
// github.com/coder/websocket) as a net.Conn carrying an XMPP byte stream,
// with a Translator that maps between that stream and the messages of
// RFC 7395. The proxy's WebSocket listener uses it with the server side
// of the framing, the integration tests' raw client with the client side,
// so that code written for a TCP stream runs on either unchanged.
//
// The library answers pings and the close handshake only while a read is
// under way, and cancelling a read closes the connection; but XMPP code
// uses read deadlines it then goes on from (an idle timeout that asks
// <r/>, a shutdown that still writes <system-shutdown/>, a client that
// collects for a while). So one pump goroutine reads messages for the
// life of the connection and hands each, already translated, to Read
// through an unbuffered channel (at most one message waits), and Read's
// deadline is the Conn's own.
package wsconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Translator maps between RFC 7395 messages and the stream's bytes.
type Translator interface {
	// Inbound turns one received text message into stream bytes. An
	// error ends reading: Read reports it once the bytes before it are
	// read.
	Inbound(msg []byte) ([]byte, error)
	// Outbound calls emit with each complete message in b, the next bytes
	// written. A unit cut between two writes waits for the rest.
	Outbound(b []byte, emit func(msg []byte) error) error
}

// Options are a Conn's limits and the errors it reports for them.
type Options struct {
	// MaxMessage caps one received message; a longer one is not read
	// to its end and Read reports TooLarge.
	MaxMessage int64
	TooLarge   error
	// Binary is what Read reports for a binary message: RFC 7395 uses
	// text messages only.
	Binary error
}

// Conn is a WebSocket as a net.Conn of stream bytes.
type Conn struct {
	ws            *websocket.Conn
	local, remote net.Addr
	tr            Translator
	opts          Options

	msgs     chan message
	closed   chan struct{}
	pumpDone chan struct{} // closed as the pump returns
	once     sync.Once
	ctx      context.Context // the pump's reads
	cancel   context.CancelFunc

	rmu      sync.Mutex
	rest     []byte // of the message Read is handing over
	readErr  error  // the pump's last word, reported from then on
	readDL   atomic.Pointer[time.Time]
	readWake chan struct{} // SetReadDeadline pokes a waiting Read

	wmu     sync.Mutex
	writeDL atomic.Pointer[time.Time]
}

// message is one translated message, or the error that ended reading.
type message struct {
	data []byte
	err  error
}

// New starts reading ws and returns it as a Conn. It lifts the library's
// own message limit: opts.MaxMessage replaces it, with an error the
// caller chose instead of a close code.
func New(ws *websocket.Conn, local, remote net.Addr, tr Translator, opts Options) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		ws: ws, local: local, remote: remote, tr: tr, opts: opts,
		msgs: make(chan message), closed: make(chan struct{}), pumpDone: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		readWake: make(chan struct{}, 1),
	}
	ws.SetReadLimit(-1)
	go c.pump()
	return c
}

// WebSocket returns the connection under c.
func (c *Conn) WebSocket() *websocket.Conn { return c.ws }

// pump reads and translates messages until the connection ends. It
// returns only once Close has been called or Read has taken the error
// that ended reading: a connection nobody closes keeps it.
func (c *Conn) pump() {
	defer close(c.pumpDone)
	for {
		m := c.readMessage()
		select {
		case c.msgs <- m:
		case <-c.closed:
			return
		}
		if m.err != nil {
			return
		}
	}
}

func (c *Conn) readMessage() message {
	typ, r, err := c.ws.Reader(c.ctx)
	if err != nil {
		if websocket.CloseStatus(err) != -1 {
			return message{err: io.EOF} // the peer closed the WebSocket
		}
		return message{err: err}
	}
	if typ != websocket.MessageText {
		return message{err: c.opts.Binary}
	}
	msg, err := io.ReadAll(io.LimitReader(r, c.opts.MaxMessage+1))
	if err != nil {
		return message{err: err}
	}
	if int64(len(msg)) > c.opts.MaxMessage {
		return message{err: c.opts.TooLarge}
	}
	data, err := c.tr.Inbound(msg)
	return message{data: data, err: err}
}

// Read hands over the translated messages as one byte stream.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rest) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		m, err := c.next()
		if err != nil {
			return 0, err
		}
		c.rest, c.readErr = m.data, m.err
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// next waits for the pump's next message, the read deadline or Close.
func (c *Conn) next() (message, error) {
	for {
		m, again, err := c.wait()
		if !again {
			return m, err
		}
	}
}

// wait is one wait of next; again: the deadline moved, look again.
func (c *Conn) wait() (m message, again bool, err error) {
	var timer <-chan time.Time
	if dl := c.readDL.Load(); dl != nil && !dl.IsZero() {
		d := time.Until(*dl)
		if d <= 0 {
			return message{}, false, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case m := <-c.msgs:
		return m, false, nil
	case <-c.closed:
		return message{}, false, net.ErrClosed
	case <-timer:
		return message{}, false, os.ErrDeadlineExceeded
	case <-c.readWake:
		return message{}, true, nil
	}
}

// Write sends each complete unit in b as one message, with the write
// deadline. A deadline that passes closes the connection (the library
// cannot abandon half a frame), as a dead TCP peer would end a session.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	ctx := context.Background()
	if dl := c.writeDL.Load(); dl != nil && !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, *dl)
		defer cancel()
	}
	err := c.tr.Outbound(b, func(msg []byte) error {
		return c.ws.Write(ctx, websocket.MessageText, msg)
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, errors.Join(os.ErrDeadlineExceeded, err)
		}
		return 0, err
	}
	return len(b), nil
}

// Close ends the use of the connection: Read and Write fail from now on.
// The WebSocket itself closes with CloseHandshake or Refuse (or CloseNow
// on the *websocket.Conn). Without Close the pump outlives the socket.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// Closed is closed once Close has been called.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// CloseHandshake waits for Close, then closes the WebSocket normally.
// The pump is still reading, so the peer's close frame is seen; the
// library bounds the handshake (5 s per step) and then drops the socket.
// It returns once the pump has ended, so that a server waiting for its
// handlers waits for their pumps too.
func (c *Conn) CloseHandshake() {
	<-c.closed
	c.closeWebSocket(websocket.StatusNormalClosure, "")
}

// Refuse ends a connection no stream will use (the server is shutting
// down): Close, then the close handshake with code and reason. Like
// CloseHandshake it returns once the pump has ended.
func (c *Conn) Refuse(code websocket.StatusCode, reason string) {
	_ = c.Close()
	c.closeWebSocket(code, reason)
}

// closeWebSocket closes the WebSocket, then stops the pump's read and
// waits for the pump: c.closed is closed, so it cannot stay blocked
// handing over a message.
func (c *Conn) closeWebSocket(code websocket.StatusCode, reason string) {
	_ = c.ws.Close(code, reason)
	c.cancel()
	<-c.pumpDone
}

// LocalAddr is the local end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's address (a web server's, behind one).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read, now and later, without closing anything.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(&t)
	select {
	case c.readWake <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline bounds the next writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(&t)
	return nil
}
