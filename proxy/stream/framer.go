package stream

import (
	"bytes"
	"io"
	"sync/atomic"
	"unicode/utf8"
)

// UnitKind says what a Unit read from a stream is.
type UnitKind uint8

// The kinds of unit a Framer returns.
const (
	// UnitElement is one complete top-level element: a stanza or a nonza.
	UnitElement UnitKind = iota
	// UnitStreamOpen is the <stream:stream> open tag, with any XML
	// declaration and whitespace before it.
	UnitStreamOpen
	// UnitStreamClose is the </stream:stream> close tag.
	UnitStreamClose
	// UnitWhitespace is whitespace between top-level elements: a keepalive.
	UnitWhitespace
)

// Unit is one piece of an XMPP stream as it arrived on the wire.
type Unit struct {
	Kind UnitKind
	// Raw holds the unit's bytes. It is valid until the next call to Next.
	Raw []byte
}

// Limits bound what a Framer accepts before any XML decoder sees the bytes.
type Limits struct {
	// MaxBytes is the largest top-level element (or stream header) in bytes.
	MaxBytes int
	// MaxDepth is the deepest nesting allowed inside a top-level element;
	// the element itself is depth 1.
	MaxDepth int
}

// Framer splits an XMPP stream into top-level units with a byte-level scanner
// that enforces the size and depth limits and RFC 6120 section 11.1
// (restricted XML: no comments, processing instructions or DTDs), so that no
// XML decoder ever sees an unbounded or hostile input. It checks that tags
// balance and names match, but leaves namespaces and entities to whoever
// decodes the unit.
type Framer struct {
	r      io.Reader
	limits Limits

	// buf holds the unit last returned (or being assembled) from offset
	// 0 to unitEnd, then whatever was read after it. It comes from a pool
	// and goes back there while nothing is pending (Release).
	buf      []byte
	scanned  int   // bytes of buf the scanner has seen
	unitEnd  int   // end of the unit last returned; 0 while assembling one
	readErr  error // came with the last bytes read; reported once they are used
	drained  bool  // the last read did not fill the space it was offered
	state    int
	quote    byte
	depth    int
	bangSeen int  // bytes of cdataOpen matched after "<!"
	closeRun int  // ']' seen in a row inside CDATA, or '?' at the end of the declaration
	selfEnd  bool // the current start tag ended in "/>"
	nameAt   int  // start of the current tag name in buf
	names    []byte
	nameEnds []int
	inStream bool
	stream   []byte // the stream element's qualified name
	partial  bool   // TryNext stopped inside a unit; resume, do not reset
	// count, when set, adds up the bytes read (a session's byte count).
	count *atomic.Int64
}

// NewFramer returns a Framer reading from r. The Framer does its own
// buffering: r is best the connection itself.
func NewFramer(r io.Reader, limits Limits) *Framer {
	return &Framer{r: r, limits: limits}
}

// CountInto makes the Framer add every byte it reads to c, from now on.
func (f *Framer) CountInto(c *atomic.Int64) { f.count = c }

// SetLimits changes the limits, for example once a client has authenticated.
func (f *Framer) SetLimits(l Limits) { f.limits = l }

// Reset starts a new stream: on a new reader after STARTTLS (the caller
// has checked that nothing was read past <starttls/>), or on the same one
// (r nil) after SASL success, keeping what the peer already pipelined.
func (f *Framer) Reset(r io.Reader) {
	if r != nil {
		f.r, f.readErr = r, nil
	}
	f.inStream = false
	f.partial = false
	f.startUnit()
}

// Buffered reports how many bytes were read from the connection but not yet
// returned as units.
func (f *Framer) Buffered() int { return len(f.buf) - f.unitEnd }

// Drained reports whether the last read returned less than it was offered:
// the reader had nothing more at that moment.
func (f *Framer) Drained() bool { return f.drained }

// Release gives the read buffer back to the pool when nothing is pending
// in it, so that an idle leg holds none; the next read takes one again.
// The unit last returned must no longer be in use.
func (f *Framer) Release() {
	if f.partial || f.Buffered() > 0 || f.buf == nil {
		return
	}
	putReadBuf(f.buf)
	f.buf, f.unitEnd, f.scanned = nil, 0, 0
}

// Restart drops whatever the framer holds, so that the next unit starts
// at the reader's next byte: each WebSocket message is framed on its own.
func (f *Framer) Restart() {
	f.buf = f.buf[:0]
	f.unitEnd, f.readErr, f.partial, f.inStream = 0, nil, false, false
	f.startUnit()
}

// OpenStream makes the framer read top-level elements without a stream
// header first: inside one WebSocket message, or in what the session
// writes between two headers. A </stream:stream> then does not match and
// is refused as not well-formed.
func (f *Framer) OpenStream() {
	f.inStream = true
	f.stream = append(f.stream[:0], CloseTag[2:len(CloseTag)-1]...)
}

// Partial reports whether TryNext stopped inside a unit: the bytes read
// so far begin one that is not complete yet.
func (f *Framer) Partial() bool { return f.partial }

// InStream reports whether a stream is open: its header was read (or
// OpenStream was called) and its close was not.
func (f *Framer) InStream() bool { return f.inStream }

// keepBuf is the largest buffer a Framer keeps once the unit that needed
// it is done: one huge stanza must not pin its buffer for the session.
const keepBuf = 8 << 10

// startUnit drops the unit last returned, keeps what was read after it,
// and resets the scanner.
func (f *Framer) startUnit() {
	ahead := f.buf[f.unitEnd:]
	if cap(f.buf) > keepBuf && len(ahead) <= keepBuf {
		f.buf = append(getReadBuf(), ahead...)
	} else {
		f.buf = f.buf[:copy(f.buf, ahead)]
	}
	f.unitEnd, f.scanned = 0, 0
	f.state = sText
	f.depth = 0
	f.names = f.names[:0]
	f.nameEnds = f.nameEnds[:0]
}

// fill reads once into the free end of buf.
func (f *Framer) fill() error {
	if err := f.readErr; err != nil {
		f.readErr = nil // a timeout is not the end: the next read may work
		return err
	}
	space := f.space()
	n, err := f.r.Read(space)
	f.drained = n < len(space)
	if n == 0 && err != nil {
		f.commit(0, nil)
		return err
	}
	f.commit(n, err)
	return nil
}

// space returns the free end of buf, taking a buffer from the pool or
// growing a full one.
func (f *Framer) space() []byte {
	if f.buf == nil {
		f.buf = getReadBuf()
	}
	if len(f.buf) == cap(f.buf) {
		f.buf = append(f.buf, make([]byte, cap(f.buf))...)[:len(f.buf)]
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

// commit takes n bytes read into space, and holds err until they are
// used. With nothing read and nothing pending, the buffer goes back.
func (f *Framer) commit(n int, err error) {
	f.buf = f.buf[:len(f.buf)+n]
	f.readErr = err
	if f.count != nil && n > 0 {
		f.count.Add(int64(n))
	}
	if n == 0 {
		f.Release()
	}
}

// Next returns the next unit. Errors are either I/O errors from the reader or
// a *Error naming the violated rule.
func (f *Framer) Next() (Unit, error) {
	u, _, err := f.next(true)
	return u, err
}

// TryNext returns the next unit only if it is complete in what was already
// read; ok is false when finishing it would need another read. It lets a
// reader coalesce everything that arrived together without ever holding a
// complete stanza back waiting for more input.
func (f *Framer) TryNext() (u Unit, ok bool, err error) {
	return f.next(false)
}

func (f *Framer) next(block bool) (Unit, bool, error) {
	if !f.partial {
		f.startUnit()
	}
	f.partial = false
	for {
		if f.scanned == len(f.buf) {
			if !block {
				f.partial = len(f.buf) > 0
				return Unit{}, false, nil
			}
			if err := f.fill(); err != nil {
				return Unit{}, false, err
			}
			continue
		}
		end, kind, err := f.scan(f.scanned)
		if err != nil {
			return Unit{}, false, err
		}
		if end < 0 {
			f.scanned = len(f.buf)
			if f.scanned > f.limits.MaxBytes {
				return Unit{}, false, ErrTooLarge
			}
			continue
		}
		f.scanned, f.unitEnd = end, end
		if end > f.limits.MaxBytes {
			return Unit{}, false, ErrTooLarge
		}
		raw := f.buf[:end]
		if kind == UnitElement && !utf8.Valid(raw) {
			return Unit{}, false, NewError(CondUnsupportedEncoding, "stanza is not valid UTF-8")
		}
		if kind == UnitElement && (bytes.Contains(raw, nonCharFFFE) || bytes.Contains(raw, nonCharFFFF)) {
			return Unit{}, false, errControlChar
		}
		return Unit{Kind: kind, Raw: raw}, true, nil
	}
}

// The stream errors the Framer returns. Each names the rule the input
// broke.
var (
	// ErrTooLarge: a unit over Limits.MaxBytes, a <policy-violation/>
	// (RFC 6120 section 4.9.3.14); the WebSocket listener gives it for an
	// oversized message too.
	ErrTooLarge    = NewError(CondPolicyViolation, "stanza too large")
	errTooDeep     = NewError(CondPolicyViolation, "elements nested too deeply")
	errComment     = NewError(CondRestrictedXML, "comments are not allowed")
	errPI          = NewError(CondRestrictedXML, "processing instructions are not allowed")
	errDTD         = NewError(CondRestrictedXML, "document type declarations are not allowed")
	errNotWF       = NewError(CondNotWellFormed, "")
	errTextAtRoot  = NewError(CondNotWellFormed, "character data between stanzas")
	errMismatch    = NewError(CondNotWellFormed, "end tag does not match start tag")
	errControlChar = NewError(CondNotWellFormed, "control characters are not allowed in XML")
)
