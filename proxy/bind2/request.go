package bind2

import (
	"bytes"
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Request is a Bind2 <bind/> request (XEP-0386 section 4, contract
// section 3) with the inline requests the proxy honours. A nil pointer
// field means the client did not ask for it.
type Request struct {
	// Tag names the client's kind of device; it starts the resource.
	Tag string `xml:"urn:xmpp:bind:0 tag"`
	// SM asks for stream management on the new session (XEP-0198).
	SM *SMEnable `xml:"urn:xmpp:sm:3 enable"`
	// Carbons asks for message carbons (XEP-0280).
	Carbons *struct{} `xml:"urn:xmpp:carbons:2 enable"`
	// Inactive starts the session inactive (XEP-0352).
	Inactive *struct{} `xml:"urn:xmpp:csi:0 inactive"`
	// Sync asks for the account catch-up (contract section 5).
	Sync *Sync `xml:"urn:xmpp:xmpp2:0 sync"`
	// Presence is the initial presence, jabber:client per the contract;
	// any namespace is accepted.
	Presence *Presence `xml:"presence"`
	// Joins are the rooms to enter during the bind (contract section 3).
	Joins []Join `xml:"urn:xmpp:xmpp2:0 join"`
	// Resume asks to resume a session instead, inside <bind/> as the
	// draft has it; XEP-0198 puts it in SASL2's <authenticate/>.
	Resume *SMResume `xml:"urn:xmpp:sm:3 resume"`
}

// SMEnable is XEP-0198's <enable/> (section 3), inline in a bind request.
type SMEnable struct {
	// Resume is the resume attribute as sent: "true" or "1" asks for a
	// resumable session.
	Resume string `xml:"resume,attr"`
}

// SMResume is XEP-0198's <resume/> (section 5), inline in a bind request
// or in SASL2's <authenticate/>.
type SMResume struct {
	// PrevID is the stream management id of the session to resume.
	PrevID string `xml:"previd,attr"`
	// H is the count of stanzas the client handled, as sent: the caller
	// parses it as a uint32.
	H string `xml:"h,attr"`
}

// Sync is the contract's <sync/> (section 5): catch up on the account
// archive after the archive id After, or over the last Within seconds.
type Sync struct {
	After  string `xml:"after,attr"`
	Within string `xml:"within,attr"`
}

// Join is the contract's <join/> (section 3): enter the bare room JID
// Room as Nick, with Password when not "", and catch up on the room
// archive after the archive id After when it is not "".
type Join struct {
	Room     string `xml:"room,attr"`
	Nick     string `xml:"nick,attr"`
	After    string `xml:"after,attr"`
	Password string `xml:"password,attr"`
}

// Presence keeps an inline presence's attributes and inner XML, so it can
// be replayed upstream.
type Presence struct {
	Attrs []xml.Attr `xml:",any,attr"`
	Inner []byte     `xml:",innerxml"`
}

// nsXML is what encoding/xml reports for the xml: prefix.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// AppendPresence renders p as the session's initial presence for the
// upstream: without addressing, since it is the session's broadcast
// presence (RFC 6121 section 4.2), keeping only its id and xml:lang
// attributes and its children.
func AppendPresence(b []byte, p *Presence) []byte {
	b = append(b, "<presence"...)
	for _, a := range p.Attrs {
		isLang := a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == nsXML)
		if a.Name.Space == "" && a.Name.Local == "id" || isLang {
			b = append(b, ' ')
			if isLang {
				b = append(b, "xml:"...)
			}
			b = append(b, a.Name.Local...)
			b = append(b, "='"...)
			b = stream.AppendEscaped(b, a.Value)
			b = append(b, '\'')
		}
	}
	b = append(b, '>')
	b = append(b, bytes.TrimSpace(p.Inner)...)
	return append(b, "</presence>"...)
}
