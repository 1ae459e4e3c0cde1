package stream

import "syscall"

const canQuickAck = true

// quickAck sends any delayed ACK now and keeps the socket in quick-ACK
// mode for a while (the kernel leaves it on its own).
func quickAck(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
}
