package mam

import (
	"bytes"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Live renders an archived message that a session missed live as the
// stanza a server delivers live, for account (a bare JID) and the
// session's full JID self: a message the account received as itself, one
// it sent (from one of its resources) as a sent carbon (XEP-0280) to
// self. Either way the message carries the archive's stanza-id
// (XEP-0359), so duplicate checks recognise it as the archive's message,
// and the archive's timestamp as a delay (XEP-0203), so the client files
// it as a late message. It returns nil when raw is not a result that
// forwards a message.
func Live(raw []byte, account, self string) []byte {
	res, ok := ParseResult(raw)
	fwd := ForwardedMessage(raw)
	if !ok || res.ID == "" || fwd == nil {
		return nil
	}
	start, err := stream.StartOf(fwd)
	if err != nil {
		return nil
	}
	msg := withStanzaID(fwd, account, res.ID)
	if !sentBy(stream.StartAttr(start, "from"), account) {
		if res.Stamp == "" || bytes.Contains(msg, []byte(ns.Delay)) {
			return msg
		}
		end := len(msg) - len("</message>")
		return append(append(bytes.Clone(msg[:end]), appendDelay(nil, account, res.Stamp)...), "</message>"...)
	}
	b := []byte("<message xmlns='" + ns.Client + "'")
	b = stream.AppendAttrs(b, [2]string{"from", account}, [2]string{"to", self}, [2]string{"type", "chat"})
	b = append(b, "><sent xmlns='"+ns.Carbons+"'><forwarded xmlns='"+ns.Forward+"'>"...)
	if res.Stamp != "" {
		b = appendDelay(b, account, res.Stamp)
	}
	b = append(b, msg...)
	return append(b, "</forwarded></sent></message>"...)
}

// withStanzaID returns msg with the stanza-id by account under id, added
// before its end tag when it does not carry that one already.
func withStanzaID(msg []byte, account, id string) []byte {
	if DedupKey(msg, account) == StanzaIDKey(id) {
		return msg
	}
	end := len(msg) - len("</message>")
	b := append(bytes.Clone(msg[:end]), "<stanza-id xmlns='"+ns.StanzaID+"'"...)
	b = stream.AppendAttrs(b, [2]string{"by", account}, [2]string{"id", id})
	return append(b, "/></message>"...)
}

func appendDelay(b []byte, from, stamp string) []byte {
	b = append(b, "<delay xmlns='"+ns.Delay+"'"...)
	b = stream.AppendAttrs(b, [2]string{"from", from}, [2]string{"stamp", stamp})
	return append(b, "/>"...)
}

// sentBy reports whether a message's from is the account or one of its
// resources.
func sentBy(from, account string) bool {
	bare, _, _ := strings.Cut(from, "/")
	return strings.EqualFold(bare, account)
}
