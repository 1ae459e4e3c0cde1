package muc

import (
	"bytes"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// JoinError returns a copy of the <error/> child of a presence error that
// refused a join (XEP-0045 section 7.2.6 onwards), or a generic
// undefined-condition error when it has none.
func JoinError(raw []byte) []byte {
	if e := stream.ChildElement(raw, ns.Client, "error"); e != nil {
		return bytes.Clone(e)
	}
	return []byte("<error type='cancel'><undefined-condition xmlns='" + ns.Stanzas + "'/></error>")
}

// AppendJoined renders the contract's <joined/> (section 4): the client
// is in room, under the nick the room gave it.
func AppendJoined(b []byte, room, nick string) []byte {
	b = append(b, "<joined xmlns='"+ns.XMPP2+"' room='"...)
	b = stream.AppendEscaped(b, room)
	b = append(b, "' nick='"...)
	b = stream.AppendEscaped(b, nick)
	return append(b, "'/>"...)
}

// AppendJoinFailed renders the contract's <join-failed/> (section 4) for
// room, carrying the stanza <error/> errXML the join failed with.
func AppendJoinFailed(b []byte, room string, errXML []byte) []byte {
	b = append(b, "<join-failed xmlns='"+ns.XMPP2+"' room='"...)
	b = stream.AppendEscaped(b, room)
	b = append(b, "'>"...)
	b = append(b, clientError(errXML)...)
	return append(b, "</join-failed>"...)
}

// clientError declares jabber:client on a stanza <error/> taken out of
// its stanza for a <join-failed/>. The upstream's <error> declares no
// namespace of its own: it inherits jabber:client from the stream. Copied
// into <join-failed xmlns='urn:xmpp:xmpp2:0'>, it would be read in the x2
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
