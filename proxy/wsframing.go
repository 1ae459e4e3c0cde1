package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
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
	errWSNotOneElement = streamErr(CondNotWellFormed, "a WebSocket message must hold exactly one complete element (RFC 7395 3.3.3)")
	errWSBinary        = streamErr(CondNotWellFormed, "XMPP over WebSocket uses text messages only (RFC 7395 3.2)")
	errWSFraming       = streamErr(CondNotWellFormed, "only <open/> and <close/> are defined in the framing namespace")
)

// wsFraming is the server side of RFC 7395 for a wsconn.Conn: Inbound
// runs on the connection's pump, Outbound under its write lock.
type wsFraming struct {
	in  *wsInbound
	out *wsOutbound
}

func newWSFraming(l Limits) wsFraming { return wsFraming{in: newWSInbound(l), out: newWSOutbound()} }

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
	fr  *Framer
	src bytes.Reader
}

func newWSInbound(l Limits) *wsInbound {
	in := &wsInbound{}
	in.fr = NewFramer(&in.src, l)
	return in
}

// translate returns the stream bytes for msg: a stream header for <open/>,
// </stream:stream> for <close/>, the element itself otherwise, and
// whitespace for a message of whitespace only (a keepalive). The result
// does not alias msg.
func (in *wsInbound) translate(msg []byte) ([]byte, error) {
	in.src.Reset(msg)
	in.fr.restart()
	in.fr.openStream()
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
		if u.Kind == UnitWhitespace {
			continue
		}
		if u.Kind != UnitElement || !isAllSpace(msg[off:]) {
			return nil, errWSNotOneElement
		}
		return translateInbound(u.Raw)
	}
}

// translateInbound maps one element of the client's stream.
func translateInbound(raw []byte) ([]byte, error) {
	start, err := startOf(raw)
	if err != nil {
		return nil, streamErr(CondNotWellFormed, err.Error())
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
				b = appendEscaped(b, v)
				b = append(b, '\'')
			}
		}
		return append(b, '>'), nil
	case "close":
		return []byte(streamEnd), nil
	}
	return nil, errWSFraming
}

// wsAttr returns the attribute qname of the unit's start tag, references
// resolved, and whether it is there.
func wsAttr(raw []byte, qname string) (string, bool) {
	if !hasAttr(raw, qname) {
		return "", false
	}
	return attrString(raw, qname), true
}

func isAllSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// restart drops whatever the framer holds, so that the next unit starts
// at the reader's next byte: each WebSocket message is framed on its own.
func (f *Framer) restart() {
	f.buf = f.buf[:0]
	f.unitEnd, f.readErr, f.partial, f.inStream = 0, nil, false, false
	f.startUnit()
}

// openStream makes the framer read top-level elements without a stream
// header first: inside one WebSocket message, or in what the session
// writes between two headers. A </stream:stream> then does not match and
// is refused as not well-formed.
func (f *Framer) openStream() {
	f.inStream = true
	f.stream = append(f.stream[:0], streamEnd[2:len(streamEnd)-1]...)
}

// wsOutbound splits what the session writes to its client into RFC 7395
// messages. The session writes whole units (a header, elements, the
// stream close), several per write, so the splitter finds their
// boundaries with a framer over the written bytes; a unit cut between two
// writes would wait for the rest.
type wsOutbound struct {
	fr  *Framer
	src pendingReader
}

func newWSOutbound() *wsOutbound {
	o := &wsOutbound{}
	// What the session writes is its own or the upstream's output, which
	// an upstream framer has bounded already.
	o.fr = NewFramer(&o.src, Limits{MaxBytes: math.MaxInt32, MaxDepth: math.MaxInt32})
	return o
}

// errNeedMore ends a framer read at the end of what was written so far.
var errNeedMore = errors.New("need more bytes")

// pendingReader hands the framer the bytes of the current write.
type pendingReader struct{ b []byte }

func (p *pendingReader) Read(dst []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, errNeedMore
	}
	n := copy(dst, p.b)
	p.b = p.b[n:]
	return n, nil
}

// split calls emit with each complete message in b, in order. emit's
// argument is valid only during the call.
func (o *wsOutbound) split(b []byte, emit func(msg []byte) error) error {
	if o.fr.Buffered() == 0 && !o.fr.partial {
		// A stream header only ever starts a write: the proxy writes it
		// first, or after the SASL success that restarts the stream.
		if startsWithHeader(b) {
			o.fr.Reset(nil)
		} else if !o.fr.inStream {
			o.fr.openStream()
		}
	}
	o.src.b = b
	defer o.fr.Release()
	for {
		u, err := o.fr.Next()
		if errors.Is(err, errNeedMore) {
			return nil
		}
		if err != nil {
			return err
		}
		var msg []byte
		switch u.Kind {
		case UnitStreamOpen:
			msg, err = openMessage(u.Raw)
		case UnitStreamClose:
			msg = []byte(wsCloseMsg)
		case UnitElement:
			msg = standalone(u.Raw)
		default:
			continue // whitespace keepalives have no place in RFC 7395
		}
		if err != nil {
			return err
		}
		if err := emit(msg); err != nil {
			return err
		}
	}
}

// startsWithHeader reports whether b begins, after whitespace, with an XML
// declaration or a stream open tag.
func startsWithHeader(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return bytes.HasPrefix(b, []byte("<?xml")) || bytes.HasPrefix(b, []byte("<stream:stream"))
}

// openMessage renders the proxy's stream header as <open/> (RFC 7395 3.4).
func openMessage(header []byte) ([]byte, error) {
	h, err := parseStreamHeader(header)
	if err != nil {
		return nil, err
	}
	b := []byte("<open xmlns='" + ns.Framing + "'")
	for _, a := range [][2]string{{"to", h.to}, {"from", h.from}, {"id", h.id}, {"version", h.version}, {"xml:lang", h.lang}} {
		if a[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a[0]...)
		b = append(b, "='"...)
		b = appendEscaped(b, a[1])
		b = append(b, '\'')
	}
	return append(b, "/>"...), nil
}

// standalone makes a top-level element parse on its own (RFC 7395 3.3.3):
// an unprefixed element without its own xmlns gets the stream's default,
// jabber:client, and one using the stream prefix gets its declaration.
// The declarations go right after the element's name; everything else is
// kept byte for byte.
func standalone(raw []byte) []byte {
	nameEnd := 1
	for nameEnd < len(raw) && isNameByte(raw[nameEnd]) {
		nameEnd++
	}
	name := raw[1:nameEnd]
	var add []byte
	if !bytes.Contains(name, []byte(":")) && !hasAttr(raw, "xmlns") {
		add = append(add, " xmlns='"+ns.Client+"'"...)
	}
	if (bytes.Contains(raw, []byte("<stream:")) || bytes.HasPrefix(name, []byte("stream:"))) && !hasAttr(raw, "xmlns:stream") {
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
