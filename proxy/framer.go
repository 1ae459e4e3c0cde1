package proxy

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

// scanner states.
const (
	sText      = iota // character data
	sLt               // after '<'
	sStartName        // in a start tag's name
	sInTag            // in a start tag, between attributes
	sAttrName         // in an attribute name
	sAttrEq           // after an attribute name, expecting '='
	sAttrQuote        // after '=', expecting a quote
	sAttrValue        // inside a quoted attribute value
	sSlash            // after '/' in a start tag, expecting '>'
	sEndName          // in an end tag's name
	sEndSpace         // after an end tag's name, expecting '>'
	sBang             // after "<!"
	sCDATA            // inside <![CDATA[ ... ]]>
	sDecl             // inside the <?xml ...?> declaration
)

const cdataOpen = "[CDATA["

// U+FFFE and U+FFFF are valid UTF-8 but not XML characters.
var nonCharFFFE, nonCharFFFF = []byte("\xef\xbf\xbe"), []byte("\xef\xbf\xbf")

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

// countInto makes the Framer add every byte it reads to c, from now on.
func (f *Framer) countInto(c *atomic.Int64) { f.count = c }

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
// a *StreamError naming the violated rule.
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
				return Unit{}, false, errTooLarge
			}
			continue
		}
		f.scanned, f.unitEnd = end, end
		if end > f.limits.MaxBytes {
			return Unit{}, false, errTooLarge
		}
		raw := f.buf[:end]
		if kind == UnitElement && !utf8.Valid(raw) {
			return Unit{}, false, streamErr(CondUnsupportedEncoding, "stanza is not valid UTF-8")
		}
		if kind == UnitElement && (bytes.Contains(raw, nonCharFFFE) || bytes.Contains(raw, nonCharFFFF)) {
			return Unit{}, false, errControlChar
		}
		return Unit{Kind: kind, Raw: raw}, true, nil
	}
}

var (
	errTooLarge    = streamErr(CondPolicyViolation, "stanza too large")
	errTooDeep     = streamErr(CondPolicyViolation, "elements nested too deeply")
	errComment     = streamErr(CondRestrictedXML, "comments are not allowed")
	errPI          = streamErr(CondRestrictedXML, "processing instructions are not allowed")
	errDTD         = streamErr(CondRestrictedXML, "document type declarations are not allowed")
	errNotWF       = streamErr(CondNotWellFormed, "")
	errTextAtRoot  = streamErr(CondNotWellFormed, "character data between stanzas")
	errMismatch    = streamErr(CondNotWellFormed, "end tag does not match start tag")
	errControlChar = streamErr(CondNotWellFormed, "control characters are not allowed in XML")
)

// scan advances the state machine over f.buf[from:]. It returns the end
// offset (exclusive) of a completed unit, or -1 when more input is needed.
func (f *Framer) scan(from int) (int, UnitKind, error) {
	b := f.buf
	for i := from; i < len(b); i++ {
		c := b[i]
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return 0, 0, errControlChar // XML 1.0 Char excludes C0 controls
		}
		switch f.state {
		case sText:
			if c == '<' {
				f.state = sLt
				continue
			}
			if f.depth > 0 {
				continue
			}
			if !isSpace(c) {
				return 0, 0, errTextAtRoot
			}
			if i == 0 && f.inStream {
				n := i + 1
				for n < len(b) && isSpace(b[n]) {
					n++
				}
				return n, UnitWhitespace, nil
			}
		case sLt:
			switch {
			case c == '/':
				f.state = sEndName
				f.nameAt = i + 1
			case c == '?':
				if f.inStream || f.depth > 0 {
					return 0, 0, errPI
				}
				f.state = sDecl
				f.closeRun = 0
			case c == '!':
				f.state = sBang
				f.bangSeen = 0
			case isNameStart(c):
				f.state = sStartName
				f.nameAt = i
			default:
				return 0, 0, errNotWF
			}
		case sStartName:
			if isNameByte(c) {
				continue
			}
			f.pushName(b[f.nameAt:i])
			f.selfEnd = false
			f.state = sInTag
			i-- // reread c in sInTag
		case sInTag:
			switch {
			case isSpace(c):
			case c == '/':
				f.state = sSlash
			case c == '>':
				if end, kind, done, err := f.startTagDone(i); done || err != nil {
					return end, kind, err
				}
			case isNameStart(c):
				f.state = sAttrName
			default:
				return 0, 0, errNotWF
			}
		case sAttrName:
			switch {
			case isNameByte(c):
			case c == '=':
				f.state = sAttrQuote
			case isSpace(c):
				f.state = sAttrEq
			default:
				return 0, 0, errNotWF
			}
		case sAttrEq:
			switch {
			case isSpace(c):
			case c == '=':
				f.state = sAttrQuote
			default:
				return 0, 0, errNotWF
			}
		case sAttrQuote:
			switch {
			case isSpace(c):
			case c == '"' || c == '\'':
				f.quote = c
				f.state = sAttrValue
			default:
				return 0, 0, errNotWF
			}
		case sAttrValue:
			if c == f.quote {
				f.state = sInTag
			} else if c == '<' {
				return 0, 0, errNotWF
			}
		case sSlash:
			if c != '>' {
				return 0, 0, errNotWF
			}
			f.selfEnd = true
			if end, kind, done, err := f.startTagDone(i); done || err != nil {
				return end, kind, err
			}
		case sEndName:
			if isNameByte(c) {
				continue
			}
			if end, kind, done, err := f.endName(i); done || err != nil {
				return end, kind, err
			}
			if c == '>' {
				if end, kind, done := f.endTagDone(i); done {
					return end, kind, nil
				}
			} else if isSpace(c) {
				f.state = sEndSpace
			} else {
				return 0, 0, errNotWF
			}
		case sEndSpace:
			switch {
			case isSpace(c):
			case c == '>':
				if end, kind, done := f.endTagDone(i); done {
					return end, kind, nil
				}
			default:
				return 0, 0, errNotWF
			}
		case sBang:
			if f.bangSeen == 0 && c == '-' {
				return 0, 0, errComment
			}
			if c != cdataOpen[f.bangSeen] {
				return 0, 0, errDTD
			}
			f.bangSeen++
			if f.bangSeen == len(cdataOpen) {
				if f.depth == 0 {
					return 0, 0, errNotWF
				}
				f.state = sCDATA
				f.closeRun = 0
			}
		case sCDATA:
			switch {
			case c == ']':
				f.closeRun++
			case c == '>' && f.closeRun >= 2:
				f.state = sText
			default:
				f.closeRun = 0
			}
		case sDecl:
			switch {
			case c == '?':
				f.closeRun = 1
			case c == '>' && f.closeRun == 1:
				f.state = sText
			default:
				f.closeRun = 0
			}
		}
		if f.depth > f.limits.MaxDepth {
			return 0, 0, errTooDeep
		}
	}
	return -1, 0, nil
}

// startTagDone handles the '>' of a start tag at offset i.
func (f *Framer) startTagDone(i int) (end int, kind UnitKind, done bool, err error) {
	f.state = sText
	if !f.inStream {
		if f.selfEnd {
			return 0, 0, false, streamErr(CondNotWellFormed, "stream header must not be empty")
		}
		f.stream = append(f.stream[:0], f.topName()...)
		f.popName()
		f.inStream = true
		return i + 1, UnitStreamOpen, true, nil
	}
	if f.selfEnd {
		f.popName()
	} else {
		f.depth++
	}
	if f.depth == 0 {
		return i + 1, UnitElement, true, nil
	}
	return 0, 0, false, nil
}

// endName checks the end tag whose name ends before offset i.
func (f *Framer) endName(i int) (end int, kind UnitKind, done bool, err error) {
	name := f.buf[f.nameAt:i]
	if f.depth == 0 {
		if !f.inStream || !bytes.Equal(name, f.stream) {
			return 0, 0, false, errMismatch
		}
		return 0, 0, false, nil
	}
	if !bytes.Equal(name, f.topName()) {
		return 0, 0, false, errMismatch
	}
	return 0, 0, false, nil
}

// endTagDone handles the '>' of an end tag at offset i.
func (f *Framer) endTagDone(i int) (int, UnitKind, bool) {
	f.state = sText
	if f.depth == 0 {
		f.inStream = false
		return i + 1, UnitStreamClose, true
	}
	f.popName()
	f.depth--
	if f.depth == 0 {
		return i + 1, UnitElement, true
	}
	return 0, 0, false
}

func (f *Framer) pushName(name []byte) {
	f.names = append(f.names, name...)
	f.nameEnds = append(f.nameEnds, len(f.names))
}

func (f *Framer) topName() []byte {
	n := len(f.nameEnds)
	start := 0
	if n > 1 {
		start = f.nameEnds[n-2]
	}
	return f.names[start:f.nameEnds[n-1]]
}

func (f *Framer) popName() {
	n := len(f.nameEnds)
	f.nameEnds = f.nameEnds[:n-1]
	if n > 1 {
		f.names = f.names[:f.nameEnds[n-2]]
	} else {
		f.names = f.names[:0]
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}
