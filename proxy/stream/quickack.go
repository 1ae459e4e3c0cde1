package stream

import (
	"net"
	"syscall"
)

// quickAckConn is the upstream TCP connection. A server with Nagle's
// algorithm on (Prosody's default, nagle = true) holds its second small
// write until the first is acked; with the proxy's delayed ACK that costs
// up to 40 ms, a whole round trip, in every pipelined setup and every
// burst of small stanzas. So after each read the proxy acks at once
// (TCP_QUICKACK, which also sends an ACK already scheduled), and no
// operator has to turn Nagle off.
type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
	ack func(fd uintptr)
}

// WithQuickAck wraps an upstream TCP connection so that every read is
// acked at once, and so that NewParking, given it, acks what it reads
// too. Anything but TCP, and any TCP connection where the platform has no
// TCP_QUICKACK, is returned as it is.
func WithQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !canQuickAck {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, raw: raw, ack: quickAck}
}

// Read reads, then acks what was read at once.
func (c *quickAckConn) Read(b []byte) (int, error) {
	n, err := c.TCPConn.Read(b)
	if n > 0 {
		_ = c.raw.Control(c.ack)
	}
	return n, err
}
