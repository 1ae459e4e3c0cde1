package proxy

import (
	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/muc"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// appendBound adds the <bound/> children that depend on the setup answers:
// archive metadata and the MUC join outcomes.
func (st *setupState) appendBound(b []byte) []byte {
	if !st.meta.edges.Empty() || st.meta.done {
		b = mam.AppendMetadata(b, st.meta.edges)
	}
	for _, j := range st.joins {
		if j.errXML != nil {
			b = muc.AppendJoinFailed(b, j.req.Room, j.errXML)
			continue
		}
		b = muc.AppendJoined(b, j.req.Room, j.nick)
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
