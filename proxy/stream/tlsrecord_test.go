package stream

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"testing/iotest"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
)

// records builds n TLS-shaped records with random bodies of up to max
// bytes, zero-length ones included.
func records(r *rand.Rand, n, max int) (stream []byte, ends []int) {
	for range n {
		body := make([]byte, r.IntN(max+1))
		for i := range body {
			body[i] = byte(r.Uint32())
		}
		stream = append(stream, 23, 3, 3, byte(len(body)>>8), byte(len(body)))
		stream = append(stream, body...)
		ends = append(ends, len(stream))
	}
	return stream, ends
}

func TestRecordConnNeverHandsOverBytesPastARecordEnd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		stream, ends := records(r, 1+r.IntN(20), 1+r.IntN(3000))
		// The socket returns whatever length it likes per read.
		sock := &chunkConn{Reader: iotest.HalfReader(bytes.NewReader(stream))}
		if round%2 == 0 {
			sock.Reader = bytes.NewReader(stream)
		}
		c := NewRecordConn(sock)
		var got []byte
		for {
			p := make([]byte, 1+r.IntN(4000))
			n, err := c.Read(p)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, end := range ends {
				if len(got) < end && len(got)+n > end {
					t.Fatalf("round %d: a read of %d bytes at offset %d crosses the record end at %d", round, n, len(got), end)
				}
			}
			got = append(got, p[:n]...)
		}
		if !bytes.Equal(got, stream) {
			t.Fatalf("round %d: the bytes handed over differ from the stream", round)
		}
		if c.buf != nil {
			t.Fatalf("round %d: the read buffer is still held after the last record", round)
		}
	}
}

// chunkConn is a net.Conn that reads from Reader.
type chunkConn struct {
	net.Conn
	io.Reader
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }

// holdConn holds back what is written while held, to send it in one write.
type holdConn struct {
	net.Conn
	held    bool
	pending []byte
}

func (c *holdConn) Write(p []byte) (int, error) {
	if c.held {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holdConn) release(t *testing.T) {
	t.Helper()
	c.held = false
	if _, err := c.Conn.Write(c.pending); err != nil {
		t.Fatal(err)
	}
	c.pending = nil
}

// tlsPair returns a TLS client over a holdConn and, over a RecordConn, a
// TLS server, connected through loopback TCP.
func tlsPair(t *testing.T) (client *tls.Conn, hold *holdConn, server *tls.Conn, rec *RecordConn, sock net.Conn) {
	t.Helper()
	cc, sock := tcpPair(t)
	rec = NewRecordConn(sock)
	cert, err := demo.SelfSigned(t.TempDir(), "localhost", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	server = tls.Server(rec, cert.ServerConfig())
	hold = &holdConn{Conn: cc}
	client = tls.Client(hold, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); sock.Close() })
	return client, hold, server, rec, sock
}
