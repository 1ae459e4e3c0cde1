package rewrite

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// decode is parse done with encoding/xml: the reference that the scanner
// must agree with, and the path for whatever the scanner leaves to it. It
// uses RawToken, which neither matches end tags nor resolves prefixes;
// decode does both itself, the latter only for the element and its direct
// children, which is all the rules look at.
func decode(raw []byte) (stanza, error) {
	var s stanza
	d := xml.NewDecoder(bytes.NewReader(raw))
	var stackBuf [8]xml.Name
	stack := stackBuf[:0]
	var (
		rootSeen   bool
		defaultNS  string     // the root's default namespace, inherited by its children
		prefixes   []xml.Attr // xmlns:p declarations on the root
		childStart int
		childKind  kind
	)
	for {
		off := int(d.InputOffset())
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s, fmt.Errorf("%w: %w", ErrNotWellFormed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if dup := duplicateAttr(t.Attr); dup != "" {
				return s, fmt.Errorf("%w: attribute %s repeated in <%s>", ErrNotWellFormed, dup, t.Name.Local)
			}
			switch len(stack) {
			case 0:
				if rootSeen {
					return s, fmt.Errorf("%w: more than one top-level element", ErrNotWellFormed)
				}
				rootSeen = true
				s.tagStart, s.tagEnd = off, int(d.InputOffset())
				s.selfClosing = raw[s.tagEnd-2] == '/'
				s.qname = []byte(qualified(t.Name))
				defaultNS = ns.Client // the stream's default namespace
				for _, a := range t.Attr {
					switch {
					case a.Name.Space == "" && a.Name.Local == "xmlns":
						defaultNS = a.Value
					case a.Name.Space == "xmlns":
						prefixes = append(prefixes, a)
					case a.Name.Space == "" && a.Name.Local == "to":
						s.to = []byte(a.Value)
					case a.Name.Space == "" && a.Name.Local == "type":
						s.typ = []byte(a.Value)
					}
				}
				space := defaultNS
				if t.Name.Space != "" {
					space = lookupPrefix(t.Name.Space, nil, prefixes)
				}
				s.message = t.Name.Local == "message" && space == ns.Client
			case 1:
				childStart = off
				space := defaultNS
				if t.Name.Space != "" {
					space = lookupPrefix(t.Name.Space, t.Attr, prefixes)
				} else if v, ok := attrValue(t.Attr, "", "xmlns"); ok {
					space = v
				}
				childKind = classify([]byte(space), []byte(t.Name.Local))
			}
			stack = append(stack, t.Name)
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return s, fmt.Errorf("%w: unexpected </%s>", ErrNotWellFormed, qualified(t.Name))
			}
			stack = stack[:len(stack)-1]
			switch len(stack) {
			case 0:
				s.closeStart = off
			case 1:
				s.child(childStart, int(d.InputOffset()), childKind)
			}
		case xml.CharData:
			// Outside the element only whitespace may appear; look at the
			// bytes, not the decoded text, so that a CDATA section or a
			// character reference there is refused too.
			if len(stack) == 0 && !isSpaceOnly(raw[off:d.InputOffset()]) {
				return s, fmt.Errorf("%w: text outside the element", ErrNotWellFormed)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return s, ErrRestrictedXML
		}
	}
	if !rootSeen {
		return s, fmt.Errorf("%w: no element", ErrNotWellFormed)
	}
	if len(stack) != 0 {
		return s, fmt.Errorf("%w: <%s> not closed", ErrNotWellFormed, qualified(stack[len(stack)-1]))
	}
	return s, nil
}

// lookupPrefix resolves a prefix declared on the element itself or on the
// root. A prefix bound nowhere in the stanza resolves to "", which matches
// no namespace the rules know.
func lookupPrefix(prefix string, own, root []xml.Attr) string {
	if v, ok := attrValue(own, "xmlns", prefix); ok {
		return v
	}
	v, _ := attrValue(root, "xmlns", prefix)
	return v
}

func attrValue(attrs []xml.Attr, space, local string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// duplicateAttr returns the name of an attribute given twice, or "".
// encoding/xml accepts duplicates; a conforming parser does not, and two
// 'to' attributes would let the proxy and the client disagree on routing.
func duplicateAttr(attrs []xml.Attr) string {
	for i := 1; i < len(attrs); i++ {
		for j := 0; j < i; j++ {
			if attrs[i].Name == attrs[j].Name {
				return qualified(attrs[i].Name)
			}
		}
	}
	return ""
}

func qualified(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
