package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/xmpp2proxy/xmpp2proxy/internal/wsconn"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The client side of RFC 7395, so that Client, written for a TCP stream,
// runs over WebSocket unchanged: it writes a stream header, elements and
// </stream:stream>, and the connection sends <open/>, one element per
// message (made standalone) and <close/>; what arrives is turned back
// into the bytes of a stream.

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// DialWebSocket opens an XMPP WebSocket (subprotocol xmpp) to url and
// returns it as a net.Conn carrying an RFC 6120 stream. Close drops the
// connection at once, as a vanishing device does; send </stream:stream>
// first for a polite end (Client.Close does).
func DialWebSocket(ctx context.Context, url string, header http.Header) (net.Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	if ws.Subprotocol() != "xmpp" {
		_ = ws.CloseNow()
		return nil, errors.New("the server did not accept the xmpp subprotocol (RFC 7395 3.1)")
	}
	c := wsconn.New(ws, wsAddr("client"), wsAddr(url), newClientFraming(), wsconn.Options{
		MaxMessage: 64 << 20, TooLarge: errors.New("message too large"), Binary: errors.New("binary message"),
	})
	return &wsClientConn{c}, nil
}

type wsClientConn struct{ *wsconn.Conn }

// Close drops the connection without a WebSocket close handshake.
func (c *wsClientConn) Close() error {
	_ = c.Conn.Close()
	return c.WebSocket().CloseNow()
}

type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

// clientFraming translates both ways for a client.
type clientFraming struct {
	fr      *stream.Framer
	pending stream.Pending
}

func newClientFraming() *clientFraming {
	f := &clientFraming{}
	f.fr = stream.NewFramer(&f.pending, stream.Limits{MaxBytes: 64 << 20, MaxDepth: 256})
	return f
}

// Inbound turns the server's <open/> and <close/> into a stream header
// and close; elements pass as they are.
func (f *clientFraming) Inbound(msg []byte) ([]byte, error) {
	start, err := firstStart(msg)
	if err != nil {
		return nil, err
	}
	if start.Name.Space != nsFraming {
		return msg, nil
	}
	switch start.Name.Local {
	case "open":
		return []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" + attrs(start) + ">"), nil
	case "close":
		return []byte("</stream:stream>"), nil
	}
	return nil, errors.New("unknown framing element " + start.Name.Local)
}

// Outbound sends each unit the client writes as one message.
func (f *clientFraming) Outbound(b []byte, emit func([]byte) error) error {
	if f.fr.Buffered() == 0 {
		t := bytes.TrimLeft(b, " \t\r\n")
		if bytes.HasPrefix(t, []byte("<?xml")) || bytes.HasPrefix(t, []byte("<stream:stream")) {
			f.fr.Reset(nil) // a new stream, after SASL
		}
	}
	return stream.Split(f.fr, &f.pending, b, func(u stream.Unit) error {
		var msg []byte
		switch u.Kind {
		case stream.UnitStreamOpen:
			start, err := firstStart(u.Raw)
			if err != nil {
				return err
			}
			msg = []byte("<open xmlns='" + nsFraming + "'" + attrs(start) + "/>")
		case stream.UnitStreamClose:
			msg = []byte("<close xmlns='" + nsFraming + "'/>")
		case stream.UnitElement:
			msg = standalone(u.Raw)
		default:
			return nil
		}
		return emit(msg)
	})
}

// firstStart decodes the first start tag of raw without resolving
// namespaces beyond the default one.
func firstStart(raw []byte) (xml.StartElement, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "" && a.Name.Local == "xmlns" {
					se.Name.Space = a.Value
				}
			}
			return se, nil
		}
	}
}

// attrs renders the stream attributes of RFC 6120 4.7 found on start.
func attrs(start xml.StartElement) string {
	var b strings.Builder
	for _, a := range start.Attr {
		name := a.Name.Local
		if a.Name.Space == "xml" && name == "lang" {
			name = "xml:lang"
		} else if a.Name.Space != "" {
			continue
		}
		switch name {
		case "to", "from", "id", "version", "xml:lang":
			b.WriteString(" " + name + "='")
			_ = xml.EscapeText(&b, []byte(a.Value))
			b.WriteString("'")
		}
	}
	return b.String()
}

// standalone gives an unprefixed element without xmlns the stream's
// default namespace (RFC 7395 3.3.3).
func standalone(raw []byte) []byte {
	start, err := firstStart(raw)
	if err != nil || start.Name.Space != "" {
		return raw
	}
	end := 1 + len(start.Name.Local)
	return append(append(append([]byte{}, raw[:end]...), " xmlns='jabber:client'"...), raw[end:]...)
}
