package harness

import (
	"net"
	"sync"
)

// loopRelay is the core of the harness's loopback TCP relays: it listens
// on a free loopback port, dials target for each client, and hands the two
// ends to connect, which starts the copying with spawn. Nothing is
// accepted before start, so the relay embedding it can finish setting up.
type loopRelay struct {
	ln      net.Listener
	target  string
	connect func(in, out net.Conn)
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newLoopRelay(target string, connect func(in, out net.Conn)) (*loopRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &loopRelay{ln: ln, target: target, connect: connect}, nil
}

// start accepts clients.
func (r *loopRelay) start() { r.spawn(r.accept) }

// Addr is the address clients dial instead of the target.
func (r *loopRelay) Addr() string { return r.ln.Addr().String() }

// Close stops the relay and every connection through it.
func (r *loopRelay) Close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// spawn runs f as one of the relay's goroutines, which Close waits for.
func (r *loopRelay) spawn(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

func (r *loopRelay) accept() {
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			in.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, in, out)
		r.mu.Unlock()
		r.connect(in, out)
	}
}

// closeWrite half-closes c once everything for it has been written.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
