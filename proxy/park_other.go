//go:build !linux

package proxy

// canPeek is false where the proxy does not peek at sockets: legs keep
// their read buffers while idle.
const canPeek = false

func peekWouldBlock(uintptr, []byte) bool { return false }
