package proxy

import (
	"bytes"
	"strconv"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// A 1.0 server gives a bare-JID message only to the resources with the
// highest non-negative priority, and stores it offline when every resource
// is negative (ejabberd does; contract section 5 has no negative-priority
// exceptions: every online 2.0 session gets it). So a 2.0 session's
// broadcast presence goes upstream with a negative priority raised to 0.
// The exactly-once rules then share what the server delivers among the
// 2.0 sessions, whatever their priority.

// clampPriority returns presence with a negative <priority> raised to 0;
// any other presence comes back as it is.
func clampPriority(presence []byte) []byte {
	const open, end = "<priority>", "</priority>"
	i := bytes.Index(presence, []byte(open))
	if i < 0 {
		return presence
	}
	start := i + len(open)
	j := bytes.Index(presence[start:], []byte(end))
	if j < 0 {
		return presence
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(presence[start : start+j])))
	if err != nil || n >= 0 {
		return presence
	}
	out := make([]byte, 0, len(presence))
	out = append(out, presence[:start]...)
	out = append(out, '0')
	return append(out, presence[start+j:]...)
}

// isBroadcastPresence reports an available presence without a to: the
// session's own presence, which the server broadcasts and routes by.
func isBroadcastPresence(raw []byte) bool {
	return !stream.HasAttr(raw, "to") && !stream.HasAttr(raw, "type")
}
