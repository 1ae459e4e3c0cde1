package muc

import (
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Join renders the presence that enters room (a bare room JID) as nick
// (XEP-0045 section 7.2), with the room's password when it is not "".
// It asks for no legacy history (maxchars 0, section 7.2.13): the room
// archive after the client's last id replaces it (contract section 3).
func Join(room, nick, password string) []byte {
	b := []byte("<presence to='")
	b = stream.AppendEscaped(b, room+"/"+nick)
	b = append(b, "'><x xmlns='"+ns.MUC+"'><history maxchars='0'/>"...)
	if password != "" {
		b = append(b, "<password>"...)
		b = stream.AppendEscaped(b, password)
		b = append(b, "</password>"...)
	}
	return append(b, "</x></presence>"...)
}

// IsSelfPresence reports a MUC presence that carries <status code='110'/>
// in its muc#user <x/> (XEP-0045 section 7.2.2): the occupant's own,
// which ends the join. It decodes the stanza rather than searching its
// bytes, so a status elsewhere, or "code='110'" as data in another
// attribute or in a text, does not count.
func IsSelfPresence(raw []byte) bool {
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
