package proxy

import (
	"bytes"
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// isSelfPresence reports a MUC presence that carries <status code='110'/>
// in its muc#user <x/> (XEP-0045 7.2.2): the occupant's own, which ends
// the join. It decodes the stanza rather than searching its bytes, so a
// status elsewhere, or "code='110'" as data in another attribute or in a
// text, does not count. Only joins in progress during setup ask.
func isSelfPresence(raw []byte) bool {
	var p struct {
		X []struct {
			Status []struct {
				Code string `xml:"code,attr"`
			} `xml:"http://jabber.org/protocol/muc#user status"`
		} `xml:"http://jabber.org/protocol/muc#user x"`
	}
	if xml.Unmarshal(raw, &p) != nil {
		return false
	}
	for _, x := range p.X {
		for _, st := range x.Status {
			if st.Code == "110" {
				return true
			}
		}
	}
	return false
}

// errorChild returns the <error/> element of a stanza, or a generic one.
func errorChild(raw []byte) []byte {
	if e := stream.ChildElement(raw, ns.Client, "error"); e != nil {
		return bytes.Clone(e)
	}
	return []byte("<error type='cancel'><undefined-condition xmlns='" + ns.Stanzas + "'/></error>")
}

// appendBound adds the <bound/> children that depend on the setup answers:
// archive metadata and the MUC join outcomes.
func (st *setupState) appendBound(b []byte) []byte {
	if !st.meta.edges.Empty() || st.meta.done {
		b = mam.AppendMetadata(b, st.meta.edges)
	}
	for _, j := range st.joins {
		if j.errXML != nil {
			b = append(b, "<join-failed xmlns='"+ns.XMPP2+"' room='"...)
			b = stream.AppendEscaped(b, j.req.Room)
			b = append(b, "'>"...)
			b = append(b, clientError(j.errXML)...)
			b = append(b, "</join-failed>"...)
			continue
		}
		b = append(b, "<joined xmlns='"+ns.XMPP2+"' room='"...)
		b = stream.AppendEscaped(b, j.req.Room)
		b = append(b, "' nick='"...)
		b = stream.AppendEscaped(b, j.nick)
		b = append(b, "'/>"...)
	}
	return b
}

// appendPending adds what the upstream sent during setup, for a session
// without a catch-up (with one, it comes after <synced/>: catchup.go). It
// returns the stanzas written, in order, for the client leg's stream
// management.
func appendPending(b []byte, pending [][]byte) ([]byte, [][]byte) {
	var sent [][]byte
	for _, p := range pending {
		name, _ := stream.ElementName(p)
		if string(name) == "message" {
			p = entering(p) // live traffic: the entering rules, as in the relay
		}
		b = append(b, p...)
		if stream.IsStanza(name) {
			sent = append(sent, p)
		}
	}
	return b, sent
}
