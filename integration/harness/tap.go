package harness

import (
	"bytes"
	"io"
	"net"
	"sync"
)

// Tap is a loopback TCP relay that records every byte its clients send to
// the target, so a test can see exactly what the proxy wrote upstream on a
// plaintext leg. It forwards both directions unchanged and at once.
type Tap struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	sent   []*bytes.Buffer // per connection, in accept order
}

// NewTap listens on a free loopback port and forwards to target.
func NewTap(target string) (*Tap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &Tap{ln: ln, target: target}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// Addr is the address clients dial instead of the target.
func (t *Tap) Addr() string { return t.ln.Addr().String() }

// Close stops the relay and every connection through it.
func (t *Tap) Close() {
	t.ln.Close()
	t.mu.Lock()
	for _, c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// Sent returns a copy of everything the clients have sent to the target so
// far: one byte stream per connection, in the order they were accepted.
func (t *Tap) Sent() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]byte, len(t.sent))
	for i, b := range t.sent {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

func (t *Tap) accept() {
	defer t.wg.Done()
	for {
		in, err := t.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", t.target)
		if err != nil {
			in.Close()
			continue
		}
		rec := &bytes.Buffer{}
		t.mu.Lock()
		t.conns = append(t.conns, in, out)
		t.sent = append(t.sent, rec)
		t.mu.Unlock()
		t.wg.Add(2)
		go t.pipe(out, io.TeeReader(in, recorder{t, rec}))
		go t.pipe(in, out)
	}
}

// pipe copies src to dst until src ends, then half-closes dst.
func (t *Tap) pipe(dst net.Conn, src io.Reader) {
	defer t.wg.Done()
	_, _ = io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// recorder appends what one client sends to its record in the tap.
type recorder struct {
	t   *Tap
	buf *bytes.Buffer
}

func (r recorder) Write(p []byte) (int, error) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return r.buf.Write(p)
}
