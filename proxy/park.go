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
	check    func(fd uintptr) bool // p.checkIdle, bound once
	empty    bool                  // what check saw
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
	p.readable, p.check = p.hasInput, p.checkIdle
	return p
}

// idle reports whether fr's next read would block and the leg can wait
// without a buffer: nothing is pending in fr, under TLS nothing is held
// that TLS has not returned, and the socket has no input.
func (p *parking) idle(fr *Framer) bool {
	if p.raw == nil || fr.Buffered() > 0 {
		return false
	}
	if p.rec != nil && (p.rec.buffered() > 0 || !fr.Drained()) {
		return false
	}
	p.empty = false
	_ = p.raw.Read(p.check)
	return p.empty
}

// checkIdle looks at the socket once, without waiting.
func (p *parking) checkIdle(fd uintptr) bool {
	p.empty = peekWouldBlock(fd, p.peek[:])
	return true
}

// park gives fr's buffer back and waits until the socket has input. Only
// an idle leg parks. Errors (a deadline, a closed socket) are left for the
// next read to report.
func (p *parking) park(fr *Framer) {
	fr.Release()
	_ = p.raw.Read(p.readable)
}

// hasInput reports whether fd has input, end of stream or an error; false
// makes RawConn.Read wait for the socket to become readable.
func (p *parking) hasInput(fd uintptr) bool {
	return !peekWouldBlock(fd, p.peek[:])
}
