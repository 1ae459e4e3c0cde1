package proxy

import (
	"syscall"
	"unsafe"
)

const canPeek = true

// peekWouldBlock looks at the socket without taking anything from it.
func peekWouldBlock(fd uintptr, b []byte) bool {
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}
