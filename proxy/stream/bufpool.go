package stream

import "sync"

// readBufSize is the size of the read buffers the framers and the TLS
// record readers share through a pool. A leg holds one only while bytes
// are pending, so the size is a trade between read syscalls under load
// and nothing at all: idle legs hold no buffer.
const readBufSize = 2048

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// getReadBuf returns an empty buffer with readBufSize bytes of capacity.
func getReadBuf() []byte { return readBufs.Get().(*[readBufSize]byte)[:0] }

// putReadBuf returns b to the pool if it came from there; buffers grown
// for a large stanza are left to the garbage collector.
func putReadBuf(b []byte) {
	if cap(b) == readBufSize {
		readBufs.Put((*[readBufSize]byte)(b[:readBufSize]))
	}
}
