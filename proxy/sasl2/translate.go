package sasl2

import (
	"encoding/xml"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Wrap renders the character data of an upstream RFC 6120 element (a
// <challenge/>) as the SASL2 element named local (XEP-0388 section 2.4).
func Wrap(local string, upstream []byte) []byte {
	b := []byte("<" + local + " xmlns='" + ns.SASL2 + "'>")
	b = stream.AppendEscaped(b, InnerText(upstream))
	return append(b, "</"+local+">"...)
}

// SASL1Response turns a client's SASL2 <response/> into RFC 6120 framing.
// A 'mechanism' attribute (xmpp.js adds one) is tolerated and dropped.
func SASL1Response(raw []byte) []byte {
	b := []byte("<response xmlns='" + ns.SASL + "'>")
	b = stream.AppendEscaped(b, InnerText(raw))
	return append(b, "</response>"...)
}

// InnerText returns the character data of a simple element such as
// <challenge>BASE64</challenge>, trimmed of white space.
func InnerText(raw []byte) string {
	var v struct {
		Text string `xml:",chardata"`
	}
	_ = xml.Unmarshal(raw, &v)
	return strings.TrimSpace(v.Text)
}

// FailureFromSASL1 converts an upstream RFC 6120 <failure/> into SASL2
// framing, keeping the defined condition and the text (XEP-0388 section
// 2.6.2).
func FailureFromSASL1(upstream []byte) []byte {
	return Failure(failureParts(upstream))
}

// Condition returns the defined condition of an RFC 6120 <failure/>
// (section 6.5), not-authorized when it names none.
func Condition(failure []byte) string {
	cond, _ := failureParts(failure)
	return cond
}

// failureParts returns an RFC 6120 <failure/>'s defined condition
// (not-authorized when it has none) and its text.
func failureParts(failure []byte) (cond, text string) {
	var f struct {
		Conditions []struct {
			XMLName xml.Name
		} `xml:",any"`
		Text string `xml:"text"`
	}
	_ = xml.Unmarshal(failure, &f)
	cond = "not-authorized"
	for _, c := range f.Conditions {
		if c.XMLName.Local != "text" {
			cond = c.XMLName.Local
		}
	}
	return cond, f.Text
}
