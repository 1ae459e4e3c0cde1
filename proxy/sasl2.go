package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/bind2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// authenticate is a SASL2 <authenticate/> (XEP-0388 section 2.3) with the
// inline requests the proxy honours.
type authenticate struct {
	Mechanism string `xml:"mechanism,attr"`
	// InitialResponse is nil when absent and empty when present but empty:
	// SASL tells the two apart.
	InitialResponse *string         `xml:"urn:xmpp:sasl:2 initial-response"`
	UserAgent       *userAgent      `xml:"urn:xmpp:sasl:2 user-agent"`
	Bind            *bind2.Request  `xml:"urn:xmpp:bind:0 bind"`
	Resume          *bind2.SMResume `xml:"urn:xmpp:sm:3 resume"`
}

type userAgent struct {
	ID       string `xml:"id,attr"`
	Software string `xml:"urn:xmpp:sasl:2 software"`
	Device   string `xml:"urn:xmpp:sasl:2 device"`
}

// resumeRequest returns the inline resumption request, wherever it came.
func (a *authenticate) resumeRequest() *bind2.SMResume {
	if a.Resume != nil {
		return a.Resume
	}
	if a.Bind != nil {
		return a.Bind.Resume
	}
	return nil
}

// parseAuthenticate decodes a framed <authenticate/>; the framer has bounded
// its size and depth.
func parseAuthenticate(raw []byte) (*authenticate, error) {
	var a authenticate
	if err := xml.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// sasl1Auth renders the RFC 6120 <auth/> for the upstream. An absent initial
// response stays absent; an empty one is "=" (RFC 6120 6.4.2).
func (a *authenticate) sasl1Auth() []byte {
	b := []byte("<auth xmlns='" + ns.SASL + "' mechanism='")
	b = stream.AppendEscaped(b, a.Mechanism)
	if a.InitialResponse == nil {
		return append(b, "'/>"...)
	}
	b = append(b, "'>"...)
	ir := strings.TrimSpace(*a.InitialResponse)
	if ir == "" {
		ir = "="
	}
	b = stream.AppendEscaped(b, ir)
	return append(b, "</auth>"...)
}

// saslUsername extracts the authentication identity from a PLAIN or SCRAM
// initial response, for the resource hash; "" when it cannot.
func (a *authenticate) saslUsername() string {
	if a.InitialResponse == nil {
		return ""
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*a.InitialResponse))
	if err != nil {
		return ""
	}
	switch {
	case a.Mechanism == "PLAIN":
		parts := bytes.Split(data, []byte{0})
		if len(parts) == 3 {
			return strings.ToLower(string(parts[1]))
		}
	case strings.HasPrefix(a.Mechanism, "SCRAM-"):
		for _, attr := range strings.Split(string(data), ",") {
			if name, ok := strings.CutPrefix(attr, "n="); ok {
				name = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(name)
				return strings.ToLower(name)
			}
		}
	}
	return ""
}

// sasl2Challenge wraps an upstream <challenge/>'s data for the client.
func sasl2Wrap(local string, upstream []byte) []byte {
	b := []byte("<" + local + " xmlns='" + ns.SASL2 + "'>")
	b = stream.AppendEscaped(b, innerText(upstream))
	return append(b, "</"+local+">"...)
}

// sasl1Response turns a client's SASL2 <response/> into RFC 6120 framing. A
// 'mechanism' attribute (xmpp.js adds one) is tolerated and dropped.
func sasl1Response(raw []byte) []byte {
	b := []byte("<response xmlns='" + ns.SASL + "'>")
	b = stream.AppendEscaped(b, innerText(raw))
	return append(b, "</response>"...)
}

// innerText returns the character data of a simple element such as
// <challenge>BASE64</challenge>.
func innerText(raw []byte) string {
	var v struct {
		Text string `xml:",chardata"`
	}
	_ = xml.Unmarshal(raw, &v)
	return strings.TrimSpace(v.Text)
}

// sasl2Failure converts an upstream RFC 6120 <failure/> into SASL2 framing,
// keeping the defined condition and the text (XEP-0388 2.6.2).
func sasl2Failure(upstream []byte) []byte {
	return saslFailure2(saslFailureParts(upstream))
}

// saslCondition returns the defined condition of an RFC 6120 <failure/>.
func saslCondition(failure []byte) string {
	cond, _ := saslFailureParts(failure)
	return cond
}

// saslFailureParts returns an RFC 6120 <failure/>'s defined condition
// (not-authorized when it has none) and its text.
func saslFailureParts(failure []byte) (cond, text string) {
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

func saslFailure2(condition, text string) []byte {
	b := []byte("<failure xmlns='" + ns.SASL2 + "'><" + condition + " xmlns='" + ns.SASL + "'/>")
	if text != "" {
		b = append(b, "<text>"...)
		b = stream.AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</failure>"...)
}

// sasl2Advertisement is the SASL2 feature (contract section 1): mechanisms
// and every inline feature the proxy honours.
func sasl2Advertisement(mechanisms []string) []byte {
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
