package proxy

import (
	"bytes"
	"encoding/xml"
	"errors"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// streamEnd closes a stream.
const streamEnd = "</stream:stream>"

// startOf decodes the start tag of a framed unit. The framer has already
// bounded the unit, so decoding it is cheap and safe. An element without its
// own xmlns inherits jabber:client; the "stream" prefix maps to the streams
// namespace because both legs declare it on the stream header.
func startOf(raw []byte) (xml.StartElement, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return xml.StartElement{}, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		start = start.Copy()
		switch start.Name.Space {
		case "stream":
			start.Name.Space = ns.Stream
		case "":
			start.Name.Space = attr(start, "xmlns")
			if start.Name.Space == "" {
				start.Name.Space = ns.Client
			}
		default:
			return start, errors.New("unexpected namespace prefix " + start.Name.Space)
		}
		return start, nil
	}
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

// childElement returns the first direct child of the unit's top element
// with the namespace space and the local name local, as the bytes that
// arrived, or nil. A child without a namespace of its own is in
// jabber:client, the stream's default. It decodes rather than searching
// for "<local", so that what it returns is always one whole element, fit
// to be copied into one the proxy writes.
func childElement(raw []byte, space, local string) []byte {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth++; depth == 2 && t.Name.Local == local &&
				(t.Name.Space == space || t.Name.Space == "" && space == ns.Client) {
				if d.Skip() != nil {
					return nil
				}
				return raw[off:d.InputOffset()]
			}
		case xml.EndElement:
			if depth--; depth == 0 {
				return nil
			}
		}
	}
}

// prefixedAttr returns the value of prefix:local, or "".
func prefixedAttr(start xml.StartElement, prefix, local string) string {
	for _, a := range start.Attr {
		if a.Name.Space == prefix && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// streamHeader is what the proxy reads from a stream open tag.
type streamHeader struct {
	to, from, id, version, lang string
}

// parseStreamHeader validates a <stream:stream> open tag (RFC 6120 4.7, 4.8).
func parseStreamHeader(raw []byte) (streamHeader, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return streamHeader{}, streamErr(CondNotWellFormed, "bad stream header")
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != "stream" || start.Name.Local != "stream" {
			return streamHeader{}, streamErr(CondInvalidNamespace, "the stream element must be stream:stream")
		}
		if prefixedAttr(start, "xmlns", "stream") != ns.Stream {
			return streamHeader{}, streamErr(CondInvalidNamespace, "the stream prefix must be bound to "+ns.Stream)
		}
		if attr(start, "xmlns") != ns.Client {
			return streamHeader{}, streamErr(CondInvalidNamespace, "the default namespace must be jabber:client")
		}
		h := streamHeader{
			to: attr(start, "to"), from: attr(start, "from"), id: attr(start, "id"),
			version: attr(start, "version"), lang: prefixedAttr(start, "xml", "lang"),
		}
		if h.version != "1.0" {
			return h, streamErr(CondUnsupportedVersion, "only XMPP version 1.0 streams are supported")
		}
		return h, nil
	}
}

// appendStreamHeader writes an open tag with the declarations both legs use.
func appendStreamHeader(b []byte, to, from, id, lang string) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+ns.Client+"' xmlns:stream='"+ns.Stream+"' version='1.0'"...)
	for _, a := range [][2]string{{"to", to}, {"from", from}, {"id", id}, {"xml:lang", lang}} {
		if a[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a[0]...)
		b = append(b, "='"...)
		b = appendEscaped(b, a[1])
		b = append(b, '\'')
	}
	return append(b, '>')
}
