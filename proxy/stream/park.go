package stream

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Parking lets a relay leg wait for input without holding a read buffer,
// so that an idle session costs no buffers and its reader goroutine sits
// on a shallow stack. It reads the socket itself, without blocking, into
// the lowest buffer of the leg: the framer's, or under TLS the
// RecordConn's. A buffer is taken only when bytes are there to fill it.
type Parking struct {
	raw syscall.RawConn // nil: this leg cannot wait without a buffer
	rec *RecordConn     // under TLS: the bytes TLS has not been given yet
	fr  *Framer         // the leg's framer, for the current call
	// tryOnce and tryUntil are p.readOnce and p.readUntil, bound once so
	// that each call allocates nothing.
	tryOnce, tryUntil func(fd uintptr) bool
	wouldBlock        bool // what the last readOnce saw
	// quickAck: ack what is read at once (the upstream leg; see
	// quickAckConn).
	quickAck bool
}

// socketTarget is where a leg's socket bytes go first.
type socketTarget interface {
	// space returns room to read into, taking a buffer if needed.
	space() []byte
	// commit records n bytes read into the space, and the error that
	// came with them; with n zero, an empty buffer goes back.
	commit(n int, err error)
}

// NewParking returns the parking for a leg whose own socket is sock (the
// connection under TLS, if any), with rec set when TLS runs over it
// through a RecordConn. A sock that gives no syscall.RawConn (a WebSocket,
// a pipe), or a platform where the proxy does not read sockets itself,
// gives a Parking that is not Enabled: its leg keeps its read buffer.
func NewParking(sock net.Conn, rec *RecordConn) *Parking {
	sc, ok := sock.(syscall.Conn)
	if !ok || !canPark {
		return &Parking{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return &Parking{}
	}
	_, upstream := sock.(*quickAckConn)
	p := &Parking{raw: raw, rec: rec, quickAck: upstream}
	p.tryOnce, p.tryUntil = p.readOnce, p.readUntil
	return p
}

// Enabled reports whether this leg can wait for input without a buffer:
// it has a socket of its own that can be read without blocking.
func (p *Parking) Enabled() bool { return p.raw != nil }

// drained reports whether nothing is pending above the socket: fr holds
// no bytes and, under TLS, TLS holds nothing it has not returned (the
// RecordConn hands it one record at a time, and fr's last read from it
// came back short).
func (p *Parking) drained(fr *Framer) bool {
	if p.raw == nil || fr.Buffered() > 0 {
		return false
	}
	return p.rec == nil || p.rec.buffered() == 0 && fr.Drained()
}

// Idle reports whether the leg has nothing to read, in which case its
// reader should park, and its buffers are given back. If the socket had
// bytes, they are read into the leg's buffers for fr's next read.
func (p *Parking) Idle(fr *Framer) bool {
	if !p.drained(fr) {
		return false
	}
	p.fr, p.wouldBlock = fr, false
	_ = p.raw.Read(p.tryOnce)
	if p.wouldBlock {
		fr.Release()
	}
	return p.wouldBlock
}

// Park waits until the socket has bytes, then reads them into the leg's
// buffers. Only an idle leg parks. Errors (a deadline, a closed socket)
// are left for fr's next read to report.
func (p *Parking) Park(fr *Framer) {
	p.fr = fr
	_ = p.raw.Read(p.tryUntil)
}

// readOnce reads what the socket has without waiting.
func (p *Parking) readOnce(fd uintptr) bool {
	p.wouldBlock = !p.read(fd)
	return true
}

// readUntil is readOnce for RawConn.Read to call until the socket had
// something: false makes it wait for the socket to become readable.
func (p *Parking) readUntil(fd uintptr) bool { return p.read(fd) }

// read does one non-blocking read into the leg's lowest buffer. It
// reports false when the socket had nothing, or the read was interrupted.
func (p *Parking) read(fd uintptr) bool {
	var t socketTarget = p.fr
	if p.rec != nil {
		t = p.rec
	}
	n, wouldBlock, err := readSocket(fd, t.space())
	switch {
	case wouldBlock:
		t.commit(0, nil)
		return false
	case err != nil:
		t.commit(0, os.NewSyscallError("read", err))
	case n == 0:
		t.commit(0, io.EOF)
	default:
		t.commit(n, nil)
		if p.quickAck {
			quickAck(fd)
		}
	}
	return true
}
