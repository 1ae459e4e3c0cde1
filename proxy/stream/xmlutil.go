package stream

import (
	"bytes"
	"encoding/xml"
	"errors"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// CloseTag closes a stream (RFC 6120 section 4.4).
const CloseTag = "</stream:stream>"

// StartOf decodes the start tag of a framed unit. The framer has already
// bounded the unit, so decoding it is cheap and safe. An element without its
// own xmlns inherits jabber:client; the "stream" prefix maps to the streams
// namespace because both legs declare it on the stream header.
func StartOf(raw []byte) (xml.StartElement, error) {
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
			start.Name.Space = StartAttr(start, "xmlns")
			if start.Name.Space == "" {
				start.Name.Space = ns.Client
			}
		default:
			return start, errors.New("unexpected namespace prefix " + start.Name.Space)
		}
		return start, nil
	}
}

// StartAttr returns the value of the unprefixed attribute local, or "".
func StartAttr(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// ChildElement returns the first direct child of the unit's top element
// with the namespace space and the local name local, as the bytes that
// arrived, or nil. A child without a namespace of its own is in
// jabber:client, the stream's default. It decodes rather than searching
// for "<local", so that what it returns is always one whole element, fit
// to be copied into one the proxy writes.
func ChildElement(raw []byte, space, local string) []byte {
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

// Header is what the proxy reads from a stream open tag (RFC 6120
// section 4.7): its attributes, references resolved, "" where absent.
type Header struct {
	// To and From are the addresses the initiating entity gave.
	To, From string
	// ID is the stream id the receiving entity gave.
	ID string
	// Version is the XMPP version; ParseHeader accepts "1.0" only.
	Version string
	// Lang is xml:lang, the default language of the stream's text.
	Lang string
}

// ParseHeader validates a <stream:stream> open tag (RFC 6120 4.7, 4.8).
func ParseHeader(raw []byte) (Header, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return Header{}, NewError(CondNotWellFormed, "bad stream header")
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Space != "stream" || start.Name.Local != "stream" {
			return Header{}, NewError(CondInvalidNamespace, "the stream element must be stream:stream")
		}
		if prefixedAttr(start, "xmlns", "stream") != ns.Stream {
			return Header{}, NewError(CondInvalidNamespace, "the stream prefix must be bound to "+ns.Stream)
		}
		if StartAttr(start, "xmlns") != ns.Client {
			return Header{}, NewError(CondInvalidNamespace, "the default namespace must be jabber:client")
		}
		h := Header{
			To: StartAttr(start, "to"), From: StartAttr(start, "from"), ID: StartAttr(start, "id"),
			Version: StartAttr(start, "version"), Lang: prefixedAttr(start, "xml", "lang"),
		}
		if h.Version != "1.0" {
			return h, NewError(CondUnsupportedVersion, "only XMPP version 1.0 streams are supported")
		}
		return h, nil
	}
}

// AppendHeader writes an open tag with the declarations both legs use.
func AppendHeader(b []byte, to, from, id, lang string) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+ns.Client+"' xmlns:stream='"+ns.Stream+"' version='1.0'"...)
	b = AppendAttrs(b, [2]string{"to", to}, [2]string{"from", from}, [2]string{"id", id}, [2]string{"xml:lang", lang})
	return append(b, '>')
}

// AppendAttrs appends name='value', escaped, for each name and value pair
// whose value is not empty: the optional attributes of a stream header
// (RFC 6120 4.7) and of its WebSocket form, <open/> (RFC 7395 3.4).
func AppendAttrs(b []byte, pairs ...[2]string) []byte {
	for _, a := range pairs {
		if a[1] == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, a[0]...)
		b = append(b, "='"...)
		b = AppendEscaped(b, a[1])
		b = append(b, '\'')
	}
	return b
}
