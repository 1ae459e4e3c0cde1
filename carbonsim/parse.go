package carbonsim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// ErrNotMessage is returned by [Account.Observe] for a stanza whose top-level
// element is not a jabber:client <message/>.
var ErrNotMessage = errors.New("carbonsim: not a <message/> stanza")

// form is how a message is wrapped on the wire.
type form int

const (
	plain    form = iota // the message itself: live, offline or retransmitted
	received             // <received xmlns='urn:xmpp:carbons:2'> carbon
	sent                 // <sent xmlns='urn:xmpp:carbons:2'> carbon
	result               // <result xmlns='urn:xmpp:mam:2'> archive result
)

// msg is what the rules read from one <message/> element.
type msg struct {
	typ, from, to, id string
	sidBy             string // the archive whose stanza-id counts
	sid, oid          string // XEP-0359 stanza-id by sidBy, origin-id
	private, noCopy   bool   // XEP-0280 <private/>, XEP-0334 <no-copy/>
	mucUser           bool   // <x xmlns='http://jabber.org/protocol/muc#user'/>
	xmpp2             bool   // <xmpp-2 xmlns='urn:xmpp:xmpp2:0'/>
	archivable        bool   // content worth every session (see child)
}

// parsed is one stanza as the rules see it.
type parsed struct {
	form     form
	outer    msg    // the top-level message
	inner    msg    // the forwarded message of a carbon or archive result
	innerRaw []byte // its bytes, a sub-slice of the stanza
	resultID string // the archive id of a MAM result
}

// parse reads the top-level message, and for a carbon or MAM result the
// forwarded message inside it. account is the account's bare JID: the
// archive whose stanza-ids count for everything but groupchat.
func parse(raw []byte, account string) (parsed, error) {
	var p parsed
	d := xml.NewDecoder(bytes.NewReader(raw))
	start, err := firstStart(d)
	if err != nil {
		return p, err
	}
	if start.Name.Local != "message" || !isClient(start.Name.Space) {
		return p, ErrNotMessage
	}
	p.outer.attrs(start, account)
	for {
		tok, err := d.Token()
		if err != nil {
			return p, wrapSyntax(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return p, nil
		case xml.StartElement:
			if f := wrapperForm(t.Name); f != plain && p.form == plain {
				p.form = f
				if f == result {
					p.resultID = attr(t, "id")
				}
				if err := p.readWrapper(d, raw, account); err != nil {
					return p, err
				}
				continue
			}
			if err := p.outer.child(d, t); err != nil {
				return p, err
			}
		}
	}
}

func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, wrapSyntax(err)
		}
		if t, ok := tok.(xml.StartElement); ok {
			return t, nil
		}
	}
}

func wrapSyntax(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("carbonsim: malformed stanza: %w", err)
}

func isClient(space string) bool { return space == "" || space == ns.Client }

// wrapperForm recognises the first-level children that wrap a forwarded
// message.
func wrapperForm(n xml.Name) form {
	switch {
	case n.Space == ns.Carbons && n.Local == "received":
		return received
	case n.Space == ns.Carbons && n.Local == "sent":
		return sent
	case n.Space == ns.MAM && n.Local == "result":
		return result
	}
	return plain
}

// readWrapper reads <received|sent|result><forwarded><message/> up to the
// wrapper's end tag, keeping the first forwarded message.
func (p *parsed) readWrapper(d *xml.Decoder, raw []byte, account string) error {
	depth := 0 // 0: inside the wrapper; 1: inside <forwarded>
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return wrapSyntax(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		case xml.StartElement:
			switch {
			case depth == 0 && t.Name.Space == ns.Forward && t.Name.Local == "forwarded":
				depth++
			case depth == 1 && p.innerRaw == nil && t.Name.Local == "message" && isClient(t.Name.Space):
				p.inner.attrs(t, account)
				if err := p.inner.children(d); err != nil {
					return err
				}
				p.innerRaw = raw[off:d.InputOffset()]
			default:
				if err := d.Skip(); err != nil {
					return wrapSyntax(err)
				}
			}
		}
	}
}

func (m *msg) attrs(start xml.StartElement, account string) {
	m.typ, m.from, m.to, m.id = attr(start, "type"), attr(start, "from"), attr(start, "to"), attr(start, "id")
	m.sidBy = account
	if m.typ == "groupchat" {
		m.sidBy = bare(m.from) // a room's archive stamps its own messages
	}
}

// children reads the children of a message up to its end tag.
func (m *msg) children(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return wrapSyntax(err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if err := m.child(d, t); err != nil {
				return err
			}
		}
	}
}

// child notes one child element of a message and skips its content.
func (m *msg) child(d *xml.Decoder, t xml.StartElement) error {
	switch t.Name.Space {
	case ns.StanzaID:
		switch t.Name.Local {
		case "stanza-id":
			if m.sid == "" && attr(t, "by") == m.sidBy {
				m.sid = attr(t, "id")
			}
		case "origin-id":
			if m.oid == "" {
				m.oid = attr(t, "id")
			}
		}
	case ns.Carbons:
		m.private = m.private || t.Name.Local == "private"
	case ns.Hints:
		m.noCopy = m.noCopy || t.Name.Local == "no-copy"
		m.archivable = m.archivable || t.Name.Local == "store"
	case ns.MUCUser:
		m.mucUser = m.mucUser || t.Name.Local == "x"
	case ns.XMPP2:
		m.xmpp2 = m.xmpp2 || t.Name.Local == "xmpp-2"
	case "", ns.Client:
		m.archivable = m.archivable || t.Name.Local == "body" || t.Name.Local == "subject"
	case ns.Reactions:
		m.archivable = m.archivable || t.Name.Local == "reactions"
	case ns.OOB, ns.Conference:
		m.archivable = m.archivable || t.Name.Local == "x"
	case ns.Correct:
		m.archivable = m.archivable || t.Name.Local == "replace"
	case ns.Retract:
		m.archivable = m.archivable || t.Name.Local == "retract"
	}
	if err := d.Skip(); err != nil {
		return wrapSyntax(err)
	}
	return nil
}

// attr returns the value of the unprefixed attribute local, or "".
func attr(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// bare strips the resource from a JID.
func bare(jid string) string {
	b, _, _ := strings.Cut(jid, "/")
	return b
}
