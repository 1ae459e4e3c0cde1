package sasl2

import (
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Failure renders a SASL2 <failure/> (XEP-0388 section 2.6.2) with the
// RFC 6120 defined condition condition, and text when it is not "".
func Failure(condition, text string) []byte {
	b := []byte("<failure xmlns='" + ns.SASL2 + "'><" + condition + " xmlns='" + ns.SASL + "'/>")
	if text != "" {
		b = append(b, "<text>"...)
		b = stream.AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</failure>"...)
}

// Advertisement is the SASL2 stream feature (XEP-0388 section 2.1,
// contract section 1): the mechanisms, and every inline feature the proxy
// honours (Bind2 with carbons, stream management, client state
// indication and the contract's own; stream management resumption).
func Advertisement(mechanisms []string) []byte {
	b := []byte("<authentication xmlns='" + ns.SASL2 + "'>")
	for _, m := range mechanisms {
		b = append(b, "<mechanism>"...)
		b = stream.AppendEscaped(b, m)
		b = append(b, "</mechanism>"...)
	}
	b = append(b, "<inline><bind xmlns='"+ns.Bind2+"'><inline>"+
		"<feature var='"+ns.Carbons+"'/><feature var='"+ns.SM+"'/>"+
		"<feature var='"+ns.CSI+"'/><feature var='"+ns.XMPP2+"'/>"+
		"</inline></bind><sm xmlns='"+ns.SM+"'/></inline></authentication>"...)
	return b
}

// AppendSuccessStart renders the start of a SASL2 <success/> (XEP-0388
// section 2.6.1): the start tag, the SASL additional data (the SCRAM
// server-final message) unless it is "" or "=", and the authorization
// identifier authzID. The caller appends the inline features' outcomes
// and then SuccessEnd.
func AppendSuccessStart(b []byte, additionalData, authzID string) []byte {
	b = append(b, "<success xmlns='"+ns.SASL2+"'>"...)
	if additionalData != "" && additionalData != "=" {
		b = append(b, "<additional-data>"...)
		b = stream.AppendEscaped(b, additionalData)
		b = append(b, "</additional-data>"...)
	}
	b = append(b, "<authorization-identifier>"...)
	b = stream.AppendEscaped(b, authzID)
	return append(b, "</authorization-identifier>"...)
}

// SuccessEnd closes what AppendSuccessStart opened.
const SuccessEnd = "</success>"
