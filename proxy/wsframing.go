package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// RFC 7395 framing: over WebSocket an XMPP stream has no enclosing
// <stream:stream> element. The client opens and closes it with <open/> and
// <close/> in the framing namespace, and every WebSocket message holds one
// complete top-level element that parses on its own. The proxy translates
// at the edge, so the session code sees the byte stream of RFC 6120 and
// runs unchanged: wsInbound turns messages into that byte stream,
// wsOutbound turns what the session writes back into messages.

// wsCloseMsg is the message that closes the stream (RFC 7395 3.6).
const wsCloseMsg = "<close xmlns='" + ns.Framing + "'/>"

var (
	errWSNotOneElement = stream.NewError(stream.CondNotWellFormed, "a WebSocket message must hold exactly one complete element (RFC 7395 3.3.3)")
	errWSBinary        = stream.NewError(stream.CondNotWellFormed, "XMPP over WebSocket uses text messages only (RFC 7395 3.2)")
	errWSFraming       = stream.NewError(stream.CondNotWellFormed, "only <open/> and <close/> are defined in the framing namespace")
)

// wsFraming is the server side of RFC 7395 for a wsconn.Conn: Inbound
// runs on the connection's pump, Outbound under its write lock.
type wsFraming struct {
	in  *wsInbound
	out *wsOutbound
}

func newWSFraming(l stream.Limits) wsFraming {
	return wsFraming{in: newWSInbound(l), out: newWSOutbound()}
}

// Inbound translates a client message (wsInbound.translate).
func (f wsFraming) Inbound(msg []byte) ([]byte, error) { return f.in.translate(msg) }

// Outbound splits what the session writes (wsOutbound.split).
func (f wsFraming) Outbound(b []byte, emit func([]byte) error) error { return f.out.split(b, emit) }

// wsInbound turns one client WebSocket message into the bytes of an RFC
// 6120 stream. It runs the session's own framer over each message, with
// the session's largest limits, so that no XML decoder sees an unbounded
// or hostile message, and the element framer in the session then applies
// the limit of the moment (pre-auth or stanza) exactly as on TCP.
type wsInbound struct {
	fr  *stream.Framer
	src bytes.Reader
}

func newWSInbound(l stream.Limits) *wsInbound {
	in := &wsInbound{}
	in.fr = stream.NewFramer(&in.src, l)
	return in
}

// translate returns the stream bytes for msg: a stream header for <open/>,
// </stream:stream> for <close/>, the element itself otherwise, and
// whitespace for a message of whitespace only (a keepalive). The result
// does not alias msg.
func (in *wsInbound) translate(msg []byte) ([]byte, error) {
	in.src.Reset(msg)
	in.fr.Restart()
	in.fr.OpenStream()
	defer in.fr.Release()
	off := 0
	for {
		u, err := in.fr.Next()
		if errors.Is(err, io.EOF) {
			if off == len(msg) && off > 0 {
				return []byte(" "), nil // whitespace only
			}
			return nil, errWSNotOneElement
		}
		if err != nil {
			return nil, err
		}
		off += len(u.Raw)
		if u.Kind == stream.UnitWhitespace {
			continue
		}
		if u.Kind != stream.UnitElement || !isAllSpace(msg[off:]) {
			return nil, errWSNotOneElement
		}
		return translateInbound(u.Raw)
	}
}

// translateInbound maps one element of the client's stream.
func translateInbound(raw []byte) ([]byte, error) {
	start, err := stream.StartOf(raw)
	if err != nil {
		return nil, stream.NewError(stream.CondNotWellFormed, err.Error())
	}
	if start.Name.Space != ns.Framing {
		return bytes.Clone(raw), nil
	}
	switch start.Name.Local {
	case "open":
		// The attributes RFC 6120 4.7 defines; the session checks them.
		b := []byte("<stream:stream xmlns='" + ns.Client + "' xmlns:stream='" + ns.Stream + "'")
		for _, name := range []string{"to", "from", "id", "version", "xml:lang"} {
			if v, ok := wsAttr(raw, name); ok {
				b = append(b, ' ')
				b = append(b, name...)
				b = append(b, "='"...)
				b = stream.AppendEscaped(b, v)
				b = append(b, '\'')
			}
		}
		return append(b, '>'), nil
	case "close":
		return []byte(stream.CloseTag), nil
	}
	return nil, errWSFraming
}

// wsAttr returns the attribute qname of the unit's start tag, references
// resolved, and whether it is there.
func wsAttr(raw []byte, qname string) (string, bool) {
	if !stream.HasAttr(raw, qname) {
		return "", false
	}
	return stream.AttrString(raw, qname), true
}

func isAllSpace(b []byte) bool {
	for _, c := range b {
		if !stream.IsSpace(c) {
			return false
		}
	}
	return true
}

// wsOutbound splits what the session writes to its client into RFC 7395
// messages. The session writes whole units (a header, elements, the
// stream close), several per write, so the splitter finds their
// boundaries with a framer over the written bytes; a unit cut between two
// writes would wait for the rest.
type wsOutbound struct {
	fr  *stream.Framer
	src stream.Pending
}

func newWSOutbound() *wsOutbound {
	o := &wsOutbound{}
	// What the session writes is its own or the upstream's output, which
	// an upstream framer has bounded already.
	o.fr = stream.NewFramer(&o.src, stream.Limits{MaxBytes: math.MaxInt32, MaxDepth: math.MaxInt32})
	return o
}

// split calls emit with each complete message in b, in order. emit's
// argument is valid only during the call.
func (o *wsOutbound) split(b []byte, emit func(msg []byte) error) error {
	if o.fr.Buffered() == 0 && !o.fr.Partial() {
		// A stream header only ever starts a write: the proxy writes it
		// first, or after the SASL success that restarts the stream.
		if startsWithHeader(b) {
			o.fr.Reset(nil)
		} else if !o.fr.InStream() {
			o.fr.OpenStream()
		}
	}
	defer o.fr.Release()
	return stream.Split(o.fr, &o.src, b, func(u stream.Unit) error {
		var msg []byte
		var err error
		switch u.Kind {
		case stream.UnitStreamOpen:
			msg, err = openMessage(u.Raw)
		case stream.UnitStreamClose:
			msg = []byte(wsCloseMsg)
		case stream.UnitElement:
			msg = standalone(u.Raw)
		default:
			return nil // whitespace keepalives have no place in RFC 7395
		}
		if err != nil {
			return err
		}
		return emit(msg)
	})
}

// startsWithHeader reports whether b begins, after whitespace, with an XML
// declaration or a stream open tag.
func startsWithHeader(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return bytes.HasPrefix(b, []byte("<?xml")) || bytes.HasPrefix(b, []byte("<stream:stream"))
}

// openMessage renders the proxy's stream header as <open/> (RFC 7395 3.4).
func openMessage(header []byte) ([]byte, error) {
	h, err := stream.ParseHeader(header)
	if err != nil {
		return nil, err
	}
	b := []byte("<open xmlns='" + ns.Framing + "'")
	b = stream.AppendAttrs(b, [2]string{"to", h.To}, [2]string{"from", h.From}, [2]string{"id", h.ID},
		[2]string{"version", h.Version}, [2]string{"xml:lang", h.Lang})
	return append(b, "/>"...), nil
}

// standalone makes a top-level element parse on its own (RFC 7395 3.3.3):
// an unprefixed element without its own xmlns gets the stream's default,
// jabber:client, and one using the stream prefix gets its declaration.
// The declarations go right after the element's name; everything else is
// kept byte for byte.
func standalone(raw []byte) []byte {
	nameEnd := 1
	for nameEnd < len(raw) && stream.IsNameByte(raw[nameEnd]) {
		nameEnd++
	}
	name := raw[1:nameEnd]
	var add []byte
	if !bytes.Contains(name, []byte(":")) && !stream.HasAttr(raw, "xmlns") {
		add = append(add, " xmlns='"+ns.Client+"'"...)
	}
	if (bytes.Contains(raw, []byte("<stream:")) || bytes.HasPrefix(name, []byte("stream:"))) && !stream.HasAttr(raw, "xmlns:stream") {
		add = append(add, " xmlns:stream='"+ns.Stream+"'"...)
	}
	if add == nil {
		return raw
	}
	b := make([]byte, 0, len(raw)+len(add))
	b = append(b, raw[:nameEnd]...)
	b = append(b, add...)
	return append(b, raw[nameEnd:]...)
}
