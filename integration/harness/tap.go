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
	*loopRelay
	recMu sync.Mutex
	sent  []*bytes.Buffer // per connection, in accept order
}

// NewTap listens on a free loopback port and forwards to target.
func NewTap(target string) (*Tap, error) {
	t := &Tap{}
	r, err := newLoopRelay(target, t.connect)
	if err != nil {
		return nil, err
	}
	t.loopRelay = r
	r.start()
	return t, nil
}

// Sent returns a copy of everything the clients have sent to the target so
// far: one byte stream per connection, in the order they were accepted.
func (t *Tap) Sent() [][]byte {
	t.recMu.Lock()
	defer t.recMu.Unlock()
	out := make([][]byte, len(t.sent))
	for i, b := range t.sent {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

func (t *Tap) connect(in, out net.Conn) {
	rec := &bytes.Buffer{}
	t.recMu.Lock()
	t.sent = append(t.sent, rec)
	t.recMu.Unlock()
	t.spawn(func() { pipe(out, io.TeeReader(in, recorder{t, rec})) })
	t.spawn(func() { pipe(in, out) })
}

// pipe copies src to dst until src ends, then half-closes dst.
func pipe(dst net.Conn, src io.Reader) {
	_, _ = io.Copy(dst, src)
	closeWrite(dst)
}

// recorder appends what one client sends to its record in the tap.
type recorder struct {
	t   *Tap
	buf *bytes.Buffer
}

func (r recorder) Write(p []byte) (int, error) {
	r.t.recMu.Lock()
	defer r.t.recMu.Unlock()
	return r.buf.Write(p)
}
