package harness

import (
	"net"
	"sync"
	"time"
)

// DelayRelay is a loopback TCP relay that adds a fixed one-way delay in
// each direction, to measure protocols by their round trips. It keeps the
// order of bytes and does not limit bandwidth.
type DelayRelay struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// NewDelayRelay listens on a free loopback port and forwards to target.
func NewDelayRelay(target string, oneWay time.Duration) (*DelayRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &DelayRelay{ln: ln, target: target, delay: oneWay}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the address clients dial instead of the target.
func (r *DelayRelay) Addr() string { return r.ln.Addr().String() }

// Close stops the relay and every connection through it.
func (r *DelayRelay) Close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *DelayRelay) accept() {
	defer r.wg.Done()
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
		// A real connect costs a round trip (SYN, SYN-ACK) before the
		// client's first byte can leave; on loopback it is free, so the
		// client's first bytes are held back by one extra round trip.
		established := time.Now().Add(2 * r.delay)
		r.wg.Add(2)
		go r.pipe(in, out, established)
		go r.pipe(out, in, time.Time{})
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delivered one delay after it was read,
// and never before established plus one delay.
func (r *DelayRelay) pipe(src, dst net.Conn, established time.Time) {
	defer r.wg.Done()
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			sent := time.Now()
			if sent.Before(established) {
				sent = established
			}
			q <- chunk{data: append([]byte(nil), buf[:n]...), due: sent.Add(r.delay)}
		}
		if err != nil {
			close(q)
			<-done
			return
		}
	}
}
