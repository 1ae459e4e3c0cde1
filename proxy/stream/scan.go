package stream

import "bytes"

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
			if !IsSpace(c) {
				return 0, 0, errTextAtRoot
			}
			if i == 0 && f.inStream {
				n := i + 1
				for n < len(b) && IsSpace(b[n]) {
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
			if IsNameByte(c) {
				continue
			}
			f.pushName(b[f.nameAt:i])
			f.selfEnd = false
			f.state = sInTag
			i-- // reread c in sInTag
		case sInTag:
			switch {
			case IsSpace(c):
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
			case IsNameByte(c):
			case c == '=':
				f.state = sAttrQuote
			case IsSpace(c):
				f.state = sAttrEq
			default:
				return 0, 0, errNotWF
			}
		case sAttrEq:
			switch {
			case IsSpace(c):
			case c == '=':
				f.state = sAttrQuote
			default:
				return 0, 0, errNotWF
			}
		case sAttrQuote:
			switch {
			case IsSpace(c):
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
			if IsNameByte(c) {
				continue
			}
			if end, kind, done, err := f.endName(i); done || err != nil {
				return end, kind, err
			}
			if c == '>' {
				if end, kind, done := f.endTagDone(i); done {
					return end, kind, nil
				}
			} else if IsSpace(c) {
				f.state = sEndSpace
			} else {
				return 0, 0, errNotWF
			}
		case sEndSpace:
			switch {
			case IsSpace(c):
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
			return 0, 0, false, NewError(CondNotWellFormed, "stream header must not be empty")
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

// IsSpace reports whether c is XML white space (the S production of XML
// 1.0: space, tab, CR, LF), the only text allowed between stanzas.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
}

// IsNameByte reports whether c may stand in an XML name after its first
// byte (ASCII letters, digits, _ : - . and every byte of a multi-byte
// UTF-8 character).
func IsNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}
