package proxy

import (
	"net"
	"syscall"
)

// parking lets a relay leg wait for input without holding a read buffer,
// so that an idle session costs no buffers and its reader goroutine sits
// on a shallow stack.
type parking struct {
	raw      syscall.RawConn // nil: this leg cannot wait without a buffer
	rec      *recordConn     // under TLS: the bytes TLS has not been given yet
	peek     [1]byte
	readable func(fd uintptr) bool // p.hasInput, bound once
}

// newParking returns the parking for a leg whose socket is sock, with
// rec set when TLS runs over it.
func newParking(sock net.Conn, rec *recordConn) *parking {
	sc, ok := sock.(syscall.Conn)
	if !ok || !canPeek {
		return &parking{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return &parking{}
	}
	p := &parking{raw: raw, rec: rec}
	p.readable = p.hasInput
	return p
}

// park waits until fr's next read has input, with fr's buffer given back
// in the meantime, when that is safe: nothing is pending in fr and, under
// TLS, TLS holds nothing it has not returned. Errors (a deadline, a closed
// socket) are left for that read to report.
func (p *parking) park(fr *Framer) {
	if p.raw == nil || fr.Buffered() > 0 {
		return
	}
	if p.rec != nil && (p.rec.buffered() > 0 || !fr.Drained()) {
		return
	}
	fr.Release()
	_ = p.raw.Read(p.readable)
}

// hasInput reports whether fd has input, end of stream or an error; false
// makes RawConn.Read wait for the socket to become readable.
func (p *parking) hasInput(fd uintptr) bool {
	return !peekWouldBlock(fd, p.peek[:])
}
