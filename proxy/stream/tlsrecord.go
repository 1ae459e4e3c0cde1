package stream

import "net"

// recordHeaderLen is the length of a TLS record header: type, version,
// and a two-byte length.
const recordHeaderLen = 5

// RecordConn is the socket under a TLS connection. It hands TLS at most
// the rest of one record per read, so TLS never holds bytes of a record
// it has not decrypted yet. Once TLS has returned all it decrypted, any
// further input is in this conn's buffer or in the kernel, where an idle
// leg can wait for it without holding a read buffer (see Parking).
type RecordConn struct {
	net.Conn
	buf  []byte // read from the socket, not yet handed to TLS: buf[off:]
	off  int
	err  error // came with the bytes in buf; reported once they are handed over
	hdr  [recordHeaderLen]byte
	hdrN int // bytes of the current record's header handed over
	left int // bytes of the current record's body still to hand over
}

// NewRecordConn returns c wrapped for crypto/tls to run over: a server or
// client made with tls.Server(NewRecordConn(c), ...) reads one record at
// a time.
func NewRecordConn(c net.Conn) *RecordConn { return &RecordConn{Conn: c} }

// buffered is how many bytes were read from the socket but not yet handed
// to TLS.
func (c *RecordConn) buffered() int { return len(c.buf) - c.off }

// Read hands over bytes up to the end of the current record at most.
func (c *RecordConn) Read(p []byte) (int, error) {
	if c.buffered() == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(p) && c.buffered() > 0 {
		k := copy(p[n:min(len(p), n+c.recordLeft())], c.buf[c.off:])
		c.advance(c.buf[c.off : c.off+k])
		n += k
		c.off += k
		if c.hdrN == 0 { // the record ended here
			break
		}
	}
	if c.buffered() == 0 {
		putReadBuf(c.buf)
		c.buf, c.off = nil, 0
	}
	return n, nil
}

// recordLeft is how many bytes the current record can still take: the
// rest of its header, or of its body once the header is known.
func (c *RecordConn) recordLeft() int {
	if c.hdrN < recordHeaderLen {
		return recordHeaderLen - c.hdrN
	}
	return c.left
}

// advance accounts for b, handed over from the current record.
func (c *RecordConn) advance(b []byte) {
	if c.hdrN < recordHeaderLen {
		c.hdrN += copy(c.hdr[c.hdrN:], b)
		if c.hdrN == recordHeaderLen {
			c.left = int(c.hdr[3])<<8 | int(c.hdr[4])
			if c.left == 0 {
				c.hdrN = 0
			}
		}
		return
	}
	c.left -= len(b)
	if c.left == 0 {
		c.hdrN = 0
	}
}

func (c *RecordConn) fill() error {
	if err := c.err; err != nil {
		c.err = nil
		return err
	}
	n, err := c.Conn.Read(c.space())
	if n == 0 && err != nil {
		c.commit(0, nil)
		return err
	}
	c.commit(n, err)
	return nil
}

// space returns a buffer to read from the socket into; only called while
// nothing is buffered.
func (c *RecordConn) space() []byte {
	if c.buf == nil {
		c.buf = getReadBuf()
	}
	return c.buf[:cap(c.buf)]
}

// commit takes n bytes read into space, and holds err until they are
// handed over. With nothing read, the buffer goes back.
func (c *RecordConn) commit(n int, err error) {
	c.buf, c.off, c.err = c.buf[:n], 0, err
	if n == 0 {
		putReadBuf(c.buf)
		c.buf = nil
	}
}
