package mam

import (
	"bytes"
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// Result is what the proxy reads from an archive result message
// (XEP-0313 section 4.2).
type Result struct {
	// QueryID is the queryid of the query the result answers.
	QueryID string
	// ID is the message's archive id, the RSM cursor of later pages.
	ID string
	// Stamp is the archive's timestamp of the message (XEP-0203 delay).
	Stamp string
	// Inner is the inner XML of the forwarded message, without its own
	// start and end tag.
	Inner []byte
}

// ParseResult recognises a <message/> carrying a <result
// xmlns='urn:xmpp:mam:2'/>, and reports false for any other stanza.
func ParseResult(raw []byte) (Result, bool) {
	if !bytes.Contains(raw, []byte(ns.MAM)) || !bytes.Contains(raw, []byte("<result")) {
		return Result{}, false
	}
	var m struct {
		Result *struct {
			QueryID   string `xml:"queryid,attr"`
			ID        string `xml:"id,attr"`
			Forwarded struct {
				Delay struct {
					Stamp string `xml:"stamp,attr"`
				} `xml:"urn:xmpp:delay delay"`
				Message struct {
					Inner []byte `xml:",innerxml"`
				} `xml:"message"`
			} `xml:"urn:xmpp:forward:0 forwarded"`
		} `xml:"urn:xmpp:mam:2 result"`
	}
	if xml.Unmarshal(raw, &m) != nil || m.Result == nil {
		return Result{}, false
	}
	r := m.Result
	return Result{QueryID: r.QueryID, ID: r.ID, Stamp: r.Forwarded.Delay.Stamp, Inner: r.Forwarded.Message.Inner}, true
}

// ForwardedMessage returns the message a result forwards (XEP-0297), from
// its start tag to its end tag as it arrived, or nil when raw forwards
// none.
func ForwardedMessage(raw []byte) []byte {
	fwd := bytes.Index(raw, []byte("<forwarded"))
	end := bytes.LastIndex(raw, []byte("</forwarded>"))
	if fwd < 0 || end < fwd {
		return nil
	}
	body := raw[fwd:end]
	start := bytes.Index(body, []byte("<message"))
	stop := bytes.LastIndex(body, []byte("</message>"))
	if start < 0 || stop < start {
		return nil
	}
	return body[start : stop+len("</message>")]
}

// Fin is the outcome of one query page: the <fin/> of its iq result
// (XEP-0313 section 4.3).
type Fin struct {
	// OK is false when the query failed (an iq error) or the answer
	// carries no <fin/>.
	OK bool
	// Complete reports the page reached the end of what the query asked.
	Complete bool
	// Last is the archive id of the page's last message (RSM <last/>),
	// "" for an empty page.
	Last string
}

// ParseFin reads the iq that ends a query page.
func ParseFin(raw []byte) Fin {
	var iq struct {
		Type string `xml:"type,attr"`
		Fin  *struct {
			Complete string `xml:"complete,attr"`
			Last     string `xml:"http://jabber.org/protocol/rsm set>last"`
		} `xml:"urn:xmpp:mam:2 fin"`
	}
	if xml.Unmarshal(raw, &iq) != nil || iq.Type != "result" || iq.Fin == nil {
		return Fin{}
	}
	return Fin{OK: true, Complete: iq.Fin.Complete == "true" || iq.Fin.Complete == "1", Last: iq.Fin.Last}
}

// DedupKey identifies a message for exactly-once delivery to the account
// account (a bare JID): "sid:" and the XEP-0359 stanza-id the account's
// archive assigned (by='account'), else "oid:" and the origin-id, else
// "id:" and the id attribute; "" when the message has none of them.
func DedupKey(raw []byte, account string) string {
	var m struct {
		ID        string `xml:"id,attr"`
		StanzaIDs []struct {
			By string `xml:"by,attr"`
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:sid:0 stanza-id"`
		OriginID struct {
			ID string `xml:"id,attr"`
		} `xml:"urn:xmpp:sid:0 origin-id"`
	}
	if xml.Unmarshal(raw, &m) != nil {
		return ""
	}
	for _, s := range m.StanzaIDs {
		if s.By == account && s.ID != "" {
			return StanzaIDKey(s.ID)
		}
	}
	if m.OriginID.ID != "" {
		return "oid:" + m.OriginID.ID
	}
	if m.ID != "" {
		return "id:" + m.ID
	}
	return ""
}

// StanzaIDKey is DedupKey's key for a message the account's archive
// stored under id: the same message as a result with that archive id.
func StanzaIDKey(id string) string { return "sid:" + id }
