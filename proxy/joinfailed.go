package proxy

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// clientError declares jabber:client on a stanza <error/> taken out of
// its stanza for a Bind2 <join-failed/> (contract section 4). The
// upstream's <error> declares no namespace of its own: it inherits
// jabber:client from the stream. Copied into
// <join-failed xmlns='urn:xmpp:xmpp2:0'>, it would be read in the x2
// namespace, where no client looks for a stanza error. An element that
// declares its namespace, or uses a prefix, is left as it is.
func clientError(el []byte) []byte {
	const open = "<error"
	if !bytes.HasPrefix(el, []byte(open)) || len(el) == len(open) {
		return el
	}
	if c := el[len(open)]; c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/' && c != '>' {
		return el
	}
	start, err := stream.StartOf(el)
	if err != nil || stream.StartAttr(start, "xmlns") != "" {
		return el
	}
	out := make([]byte, 0, len(el)+len(" xmlns=''")+len(ns.Client))
	out = append(out, open+" xmlns='"+ns.Client+"'"...)
	return append(out, el[len(open):]...)
}
