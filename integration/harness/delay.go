package harness

import (
	"net"
	"time"
)

// DelayRelay is a loopback TCP relay that adds a fixed one-way delay in
// each direction, to measure protocols by their round trips. It keeps the
// order of bytes and does not limit bandwidth.
type DelayRelay struct {
	*loopRelay
	delay time.Duration
}

// NewDelayRelay listens on a free loopback port and forwards to target.
func NewDelayRelay(target string, oneWay time.Duration) (*DelayRelay, error) {
	d := &DelayRelay{delay: oneWay}
	r, err := newLoopRelay(target, d.connect)
	if err != nil {
		return nil, err
	}
	d.loopRelay = r
	r.start()
	return d, nil
}

func (r *DelayRelay) connect(in, out net.Conn) {
	// A real connect costs a round trip (SYN, SYN-ACK) before the
	// client's first byte can leave; on loopback it is free, so the
	// client's first bytes are held back by one extra round trip.
	established := time.Now().Add(2 * r.delay)
	r.spawn(func() { r.pipe(in, out, established) })
	r.spawn(func() { r.pipe(out, in, time.Time{}) })
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, each chunk delivered one delay after it was read,
// and never before established plus one delay.
func (r *DelayRelay) pipe(src, dst net.Conn, established time.Time) {
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
		closeWrite(dst)
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
