package stream

import (
	"io"
	"net"
	"testing"
)

// The upstream socket keeps everything the relay needs from a TCP
// connection (its raw descriptor for parking) and reads as before; the
// quick ACK itself is measured by BenchmarkSessionSetup against Prosody's
// default Nagle (docs/performance.md).
func TestTheUpstreamSocketAcksAtOnceAndStillParks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("<stream:features/>"))
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := WithQuickAck(raw)
	defer conn.Close()
	if _, ok := conn.(*quickAckConn); !ok && canQuickAck {
		t.Fatalf("the upstream TCP connection is a %T, not acked at once", conn)
	}
	if p := NewParking(conn, nil); canPark && (p.raw == nil || p.quickAck != canQuickAck) {
		t.Fatalf("parking raw=%v quickAck=%v: the upstream leg cannot park or does not ack at once", p.raw != nil, p.quickAck)
	}
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "<stream:features/>" {
		t.Fatalf("read %q, %v", b, err)
	}
	if c := NewParking(raw, nil); c.quickAck {
		t.Fatal("a client socket was set to ack at once")
	}
}
