package sasl2

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/bind2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Authenticate is a SASL2 <authenticate/> (XEP-0388 section 2.3) with the
// inline requests the proxy honours.
type Authenticate struct {
	// Mechanism is the SASL mechanism the client chose.
	Mechanism string `xml:"mechanism,attr"`
	// InitialResponse is nil when absent and empty when present but empty:
	// SASL tells the two apart.
	InitialResponse *string `xml:"urn:xmpp:sasl:2 initial-response"`
	// UserAgent identifies the client's installation, if it said.
	UserAgent *UserAgent `xml:"urn:xmpp:sasl:2 user-agent"`
	// Bind is the inline Bind2 request (XEP-0386), if any.
	Bind *bind2.Request `xml:"urn:xmpp:bind:0 bind"`
	// Resume is an inline XEP-0198 resumption, where XEP-0198 puts it.
	Resume *bind2.SMResume `xml:"urn:xmpp:sm:3 resume"`
}

// UserAgent is SASL2's <user-agent/> (XEP-0388 section 2.3.1).
type UserAgent struct {
	// ID is stable per installation; the proxy derives the resource from
	// it and never shows it.
	ID       string `xml:"id,attr"`
	Software string `xml:"urn:xmpp:sasl:2 software"`
	Device   string `xml:"urn:xmpp:sasl:2 device"`
}

// ResumeRequest returns the inline resumption request, wherever it came:
// in <authenticate/> (XEP-0198) or in its <bind/> (the draft); nil when
// there is none.
func (a *Authenticate) ResumeRequest() *bind2.SMResume {
	if a.Resume != nil {
		return a.Resume
	}
	if a.Bind != nil {
		return a.Bind.Resume
	}
	return nil
}

// ParseAuthenticate decodes a framed <authenticate/>; the caller's framer
// has bounded its size and depth.
func ParseAuthenticate(raw []byte) (*Authenticate, error) {
	var a Authenticate
	if err := xml.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SASL1Auth renders the RFC 6120 <auth/> for the upstream. An absent
// initial response stays absent; an empty one is "=" (RFC 6120 section
// 6.4.2).
func (a *Authenticate) SASL1Auth() []byte {
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

// Username returns the authentication identity of a PLAIN (RFC 4616) or
// SCRAM (RFC 5802) initial response, in lower case; "" when there is no
// initial response, it is not base64, or the mechanism is another.
func (a *Authenticate) Username() string {
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
