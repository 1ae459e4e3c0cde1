package stream

import "syscall"

// canPark: on Linux the proxy reads sockets itself, without blocking,
// through syscall.RawConn.
const canPark = true

// readSocket reads once from a non-blocking socket. wouldBlock: it had
// nothing, or the read was interrupted; try again once it is readable.
func readSocket(fd uintptr, b []byte) (n int, wouldBlock bool, err error) {
	n, err = syscall.Read(int(fd), b)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return 0, true, nil
	}
	return n, false, err
}
