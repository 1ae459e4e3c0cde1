package proxy

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

// wsConn presents a WebSocket connection as the net.Conn a session reads
// and writes: RFC 6120 bytes, translated to and from RFC 7395 messages.
// So the classic relay, the SASL2 + Bind2 front end, stream management
// and resumption run on it unchanged, and a session can resume on a TCP
// connection after starting on a WebSocket, and the reverse.
//
// The library answers pings and the close handshake only while a read is
// under way, and cancelling a read closes the connection; but a session
// uses read deadlines that it then goes on from (the idle <r/>, a
// shutdown that still writes <system-shutdown/>). So one pump goroutine
// reads messages for the life of the connection and hands each, already
// translated, to Read through an unbuffered channel (at most one message
// waits), and Read's deadline is the adapter's own. It is not a
// syscall.Conn, so an idle session's reader never parks on its socket
// (parking reads the kernel socket under TLS records; here the library
// owns the socket and its buffers).
type wsConn struct {
	ws            *websocket.Conn
	local, remote net.Addr
	// maxMessage caps one message before it is translated: the session's
	// largest element limit. Beyond it the message is refused with the
	// framer's own <policy-violation/>.
	maxMessage int64

	msgs   chan wsMessage
	closed chan struct{}
	once   sync.Once
	ctx    context.Context // the pump's reads; cancelled only by Close's end
	cancel context.CancelFunc

	rmu      sync.Mutex
	rest     []byte // of the message Read is handing over
	readErr  error  // the pump's last word, reported from then on
	readDL   atomic.Pointer[time.Time]
	readWake chan struct{} // SetReadDeadline pokes a waiting Read

	wmu     sync.Mutex
	out     *wsOutbound
	writeDL atomic.Pointer[time.Time]
}

// wsMessage is one translated message, or the error that ended reading.
type wsMessage struct {
	data []byte
	err  error
}

func newWSConn(ws *websocket.Conn, local, remote net.Addr, l Limits) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &wsConn{
		ws: ws, local: local, remote: remote, maxMessage: int64(l.MaxBytes),
		msgs: make(chan wsMessage), closed: make(chan struct{}), ctx: ctx, cancel: cancel,
		readWake: make(chan struct{}, 1), out: newWSOutbound(),
	}
	// The adapter enforces its own cap, so that an oversized message
	// gets the same stream error as an oversized stanza on TCP instead
	// of the library's close code.
	ws.SetReadLimit(-1)
	go c.pump(newWSInbound(l))
	return c
}

// pump reads and translates messages until the connection ends.
func (c *wsConn) pump(in *wsInbound) {
	for {
		m := c.readMessage(in)
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

func (c *wsConn) readMessage(in *wsInbound) wsMessage {
	typ, r, err := c.ws.Reader(c.ctx)
	if err != nil {
		if websocket.CloseStatus(err) != -1 {
			return wsMessage{err: io.EOF} // the client closed the WebSocket
		}
		return wsMessage{err: err}
	}
	if typ != websocket.MessageText {
		return wsMessage{err: errWSBinary}
	}
	msg, err := io.ReadAll(io.LimitReader(r, c.maxMessage+1))
	if err != nil {
		return wsMessage{err: err}
	}
	if int64(len(msg)) > c.maxMessage {
		return wsMessage{err: errTooLarge}
	}
	data, err := in.translate(msg)
	return wsMessage{data: data, err: err}
}

// Read hands over the translated messages as one byte stream.
func (c *wsConn) Read(p []byte) (int, error) {
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
func (c *wsConn) next() (wsMessage, error) {
	for {
		m, again, err := c.wait()
		if !again {
			return m, err
		}
	}
}

// wait is one wait of next; again: the deadline moved, look again.
func (c *wsConn) wait() (m wsMessage, again bool, err error) {
	var timer <-chan time.Time
	if dl := c.readDL.Load(); dl != nil && !dl.IsZero() {
		d := time.Until(*dl)
		if d <= 0 {
			return wsMessage{}, false, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case m := <-c.msgs:
		return m, false, nil
	case <-c.closed:
		return wsMessage{}, false, net.ErrClosed
	case <-timer:
		return wsMessage{}, false, os.ErrDeadlineExceeded
	case <-c.readWake:
		return wsMessage{}, true, nil
	}
}

// Write sends each complete unit in b as one message, with the write
// deadline. A deadline that passes closes the connection (the library
// cannot abandon half a frame), as a dead TCP peer would end the session.
func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if isClosed(c.closed) {
		return 0, net.ErrClosed
	}
	ctx := context.Background()
	if dl := c.writeDL.Load(); dl != nil && !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, *dl)
		defer cancel()
	}
	err := c.out.split(b, func(msg []byte) error {
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

// Close ends the session's use of the connection; the listener then runs
// the WebSocket close handshake (closeHandshake).
func (c *wsConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// closeHandshake closes the WebSocket once the session is done with it.
// The pump is still reading, so the client's close frame is seen; the
// library bounds the handshake (5 s per step) and then drops the socket.
func (c *wsConn) closeHandshake() {
	<-c.closed
	_ = c.ws.Close(websocket.StatusNormalClosure, "")
	c.cancel()
}

// LocalAddr is the listener's address.
func (c *wsConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the client's (or the front web server's) address.
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds Read, now and later, without closing anything.
func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.readDL.Store(&t)
	select {
	case c.readWake <- struct{}{}:
	default:
	}
	return nil
}

// SetWriteDeadline bounds the next writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeDL.Store(&t)
	return nil
}
