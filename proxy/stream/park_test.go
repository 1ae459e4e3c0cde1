package stream

import (
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func requireParking(t *testing.T) {
	t.Helper()
	if !canPark {
		t.Skip("no parking on this platform")
	}
}

// parkAsync parks in the background, as the relay does once a leg is idle,
// and reports when park returns.
func parkAsync(t *testing.T, p *Parking, fr *Framer) <-chan struct{} {
	t.Helper()
	if !p.Idle(fr) {
		t.Fatal("the leg is not idle")
	}
	done := make(chan struct{})
	go func() { p.Park(fr); close(done) }()
	return done
}

func returned(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-time.After(50 * time.Millisecond):
		return false
	}
}

func TestAnIdlePlainLegParksWithoutABufferUntilInputArrives(t *testing.T) {
	requireParking(t)
	peer, sock := tcpPair(t)
	fr := NewFramer(sock, testLimits)
	p := NewParking(sock, nil)
	writeString(t, peer, testHeader+"<presence/>")
	if u, err := fr.Next(); err != nil || u.Kind != UnitStreamOpen {
		t.Fatalf("header: %v %v", u.Kind, err)
	}
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	done := parkAsync(t, p, fr)
	if returned(done) {
		t.Fatal("park returned with no input on the socket")
	}
	writeString(t, peer, "<message><body>hi</body></message>")
	<-done
	if fr.Buffered() == 0 {
		t.Fatal("park returned without reading what arrived")
	}
	if u, err := fr.Next(); err != nil || string(u.Raw) != "<message><body>hi</body></message>" {
		t.Fatalf("after park: %q %v", u.Raw, err)
	}
}

func TestALegIsNotIdleWhileTheFramerHoldsInput(t *testing.T) {
	requireParking(t)
	peer, sock := tcpPair(t)
	fr := NewFramer(sock, testLimits)
	p := NewParking(sock, nil)
	writeString(t, peer, testHeader+"<presence/><presence/>")
	for range 2 { // the header and the first stanza; the second is read ahead
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if p.Idle(fr) {
		t.Fatal("a leg with a stanza already read is idle")
	}
}

func TestParkReturnsWhenTheSocketCloses(t *testing.T) {
	requireParking(t)
	peer, sock := tcpPair(t)
	fr := NewFramer(sock, testLimits)
	done := parkAsync(t, NewParking(sock, nil), fr)
	peer.Close()
	<-done
	if _, err := fr.Next(); err == nil {
		t.Fatal("Next after the peer closed returned no error")
	}
}

func TestParkReturnsAtTheReadDeadline(t *testing.T) {
	requireParking(t)
	_, sock := tcpPair(t)
	fr := NewFramer(sock, testLimits)
	_ = sock.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	<-parkAsync(t, NewParking(sock, nil), fr)
	if _, err := fr.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Next after the deadline = %v, want a timeout", err)
	}
}

// Under TLS, a record that arrived together with the one just returned sits
// in the RecordConn: parking then would wait for input that is already in.
func TestATLSLegIsIdleOnlyWhenTLSHoldsNothing(t *testing.T) {
	requireParking(t)
	client, hold, server, rec, sock := tlsPair(t)
	fr := NewFramer(server, testLimits)
	p := NewParking(sock, rec)
	fr.inStream = true
	// Each Write is a record; both go out in one TCP write, so the
	// server's first socket read takes both.
	hold.held = true
	writeString(t, client, "<presence id='1'/>")
	writeString(t, client, "<presence id='2'/>")
	hold.release(t)
	if u, err := fr.Next(); err != nil || string(u.Raw) != "<presence id='1'/>" {
		t.Fatalf("first: %q %v", u.Raw, err)
	}
	if rec.buffered() == 0 {
		t.Fatal("the second record should be waiting in the RecordConn")
	}
	if p.Idle(fr) {
		t.Fatal("a leg is idle while a record is buffered under TLS")
	}
	if u, err := fr.Next(); err != nil || string(u.Raw) != "<presence id='2'/>" {
		t.Fatalf("second: %q %v", u.Raw, err)
	}
	if idle := p.Idle(fr); !idle || rec.buf != nil || fr.buf != nil {
		t.Fatalf("a drained TLS leg: idle %v, record buffer held %v, framer buffer held %v (drained %v)", idle, rec.buf != nil, fr.buf != nil, fr.Drained())
	}
	done := parkAsync(t, p, fr)
	if returned(done) {
		t.Fatal("park returned with nothing sent")
	}
	writeString(t, client, "<presence id='3'/>")
	<-done
	if u, err := fr.Next(); err != nil || string(u.Raw) != "<presence id='3'/>" {
		t.Fatalf("third: %q %v", u.Raw, err)
	}
}

func writeString(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func TestALegWithInputInTheSocketIsNotIdle(t *testing.T) {
	requireParking(t)
	peer, sock := tcpPair(t)
	fr := NewFramer(sock, testLimits)
	p := NewParking(sock, nil)
	if !p.Idle(fr) {
		t.Fatal("a leg with nothing sent is not idle")
	}
	if fr.buf != nil {
		t.Fatal("looking at an empty socket left the leg holding a buffer")
	}
	writeString(t, peer, testHeader)
	if _, err := fr.Next(); err != nil { // the header is in: the data arrived
		t.Fatal(err)
	}
	writeString(t, peer, "<presence/>")
	for p.Idle(fr) { // the kernel has it once the peer's write lands
		runtime.Gosched()
	}
}
