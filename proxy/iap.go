package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// configVersion is the opaque token the proxy advertises for a stream's
// features: base64 of the first 128 bits of SHA-256 over the rendered
// <stream:features> content without the <config-version/> itself
// (XEP-0509 section 2.3.1 gives this as a conformant scheme). Any change
// in what a client could pick (mechanisms, inline features, STARTTLS)
// changes the token; the same features give the same token on every
// connection and every proxy instance.
func configVersion(features []byte) string {
	sum := sha256.Sum256(features)
	return base64.RawStdEncoding.EncodeToString(sum[:16])
}

// appendConfigVersion appends the XEP-0509 stream feature carrying value.
func appendConfigVersion(b []byte, value string) []byte {
	b = append(b, "<config-version xmlns='"+ns.IAP+"' scheme='opaque' value='"...)
	b = stream.AppendEscaped(b, value)
	return append(b, "'/>"...)
}

// configVersionMismatch reports whether a SASL2 <authenticate/> carries a
// <config-version/> whose value is not current, the value advertised on
// this stream. Values match only when identical octet for octet; the
// scheme attribute is not looked at, since every scheme is compatible
// with "opaque" and the proxy does no "smart" matching. An <authenticate/>
// without the element, or one that does not parse (authenticate2 answers
// that), is no mismatch.
func configVersionMismatch(raw []byte, current string) bool {
	var a struct {
		ConfigVersions []struct {
			Value string `xml:"value,attr"`
		} `xml:"urn:xmpp:iap:0 config-version"`
	}
	if err := xml.Unmarshal(raw, &a); err != nil {
		return false
	}
	for _, cv := range a.ConfigVersions {
		if cv.Value != current {
			return true
		}
	}
	return false
}

// configVersionFailure is the SASL2 <failure/> for a mismatched config
// version (XEP-0509 section 2.2): <aborted/>, the application condition
// <config-version-mismatch/>, and a text. It is "without prejudice":
// nothing has gone upstream, so the server counts no failed login, and the
// stream stays open for the client's next <authenticate/>.
func configVersionFailure() []byte {
	return []byte("<failure xmlns='" + ns.SASL2 + "'><aborted xmlns='" + ns.SASL + "'/>" +
		"<config-version-mismatch xmlns='" + ns.IAP + "'/>" +
		"<text>Configuration version mismatch</text></failure>")
}
