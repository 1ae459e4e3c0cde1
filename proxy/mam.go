package proxy

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// Query ids of the Bind2 replay's XEP-0313 (MAM) queries.
const (
	queryIDSync = "x2-sync" // the contract's queryid for the account catch-up
	idMetadata  = "x2-meta"
	idMetaFirst = "x2-meta-first"
	idMetaLast  = "x2-meta-last"
	// idArchiveMark is an empty archive query (max 0) every fresh 2.0
	// bind sends without a catch-up of its own: Prosody then leaves the
	// messages the session never acked to the archive instead of storing
	// them offline too (mod_smacks checks mam_requested), so a client's
	// next <sync/> gets each once, as on ejabberd.
	idArchiveMark = "x2-archive-mark"
	// syncPage is the RSM page size of catch-up queries.
	syncPage = 250
)

// mamQuery renders a MAM query. to is "" for the account archive; after is
// an archive id; start bounds a time window; before asks for the last page.
func mamQuery(id, to, queryID, after string, start time.Time, max int, before bool) []byte {
	b := []byte("<iq type='set' id='")
	b = stream.AppendEscaped(b, id)
	if to != "" {
		b = append(b, "' to='"...)
		b = stream.AppendEscaped(b, to)
	}
	b = append(b, "'><query xmlns='"+ns.MAM+"' queryid='"...)
	b = stream.AppendEscaped(b, queryID)
	b = append(b, "'>"...)
	if !start.IsZero() {
		b = append(b, "<x xmlns='"+ns.Data+"' type='submit'><field var='FORM_TYPE' type='hidden'><value>"+ns.MAM+"</value></field><field var='start'><value>"...)
		b = append(b, start.UTC().Format(time.RFC3339)...)
		b = append(b, "</value></field></x>"...)
	}
	b = append(b, "<set xmlns='"+ns.RSM+"'><max>"...)
	b = strconv.AppendInt(b, int64(max), 10)
	b = append(b, "</max>"...)
	switch {
	case after != "":
		b = append(b, "<after>"...)
		b = stream.AppendEscaped(b, after)
		b = append(b, "</after>"...)
	case before:
		b = append(b, "<before/>"...)
	}
	return append(b, "</set></query></iq>"...)
}

// mamResult is what the proxy reads from a MAM result message.
type mamResult struct {
	queryID, id, stamp string
	inner              []byte // the forwarded message
}

// parseMAMResult recognises <message><result xmlns='urn:xmpp:mam:2'>.
func parseMAMResult(raw []byte) (mamResult, bool) {
	if !bytes.Contains(raw, []byte(ns.MAM)) || !bytes.Contains(raw, []byte("<result")) {
		return mamResult{}, false
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
		return mamResult{}, false
	}
	r := m.Result
	return mamResult{queryID: r.QueryID, id: r.ID, stamp: r.Forwarded.Delay.Stamp, inner: r.Forwarded.Message.Inner}, true
}

// forAnotherSession reports an archived message that was for one other
// session of self's account only: addressed to another full JID of the
// account and single-session by the entering rules (a 1.0 chat with
// <private/> or <no-copy/>, a MUC private message). The 1.0 server
// archives those, but full-JID messages are never part of a catch-up
// (contract section 5).
func forAnotherSession(raw []byte, self string) bool {
	inner := forwardedMessage(raw)
	if inner == nil || self == "" {
		return false
	}
	to := stream.AttrString(inner, "to")
	bare, _, full := strings.Cut(to, "/")
	if !full || !strings.EqualFold(bare, bareJID(self)) || strings.EqualFold(to, self) {
		return false
	}
	_, route, err := rewrite.Entering(inner)
	return err == nil && route.Scope == rewrite.ScopeSession
}

// forwardedMessage returns the message a MAM result forwards, from its
// start tag to its end tag, or nil.
func forwardedMessage(raw []byte) []byte {
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

// mamFin is the outcome of one MAM query page.
type mamFin struct {
	ok       bool
	complete bool
	last     string
}

func parseMAMFin(raw []byte) mamFin {
	var iq struct {
		Type string `xml:"type,attr"`
		Fin  *struct {
			Complete string `xml:"complete,attr"`
			Last     string `xml:"http://jabber.org/protocol/rsm set>last"`
		} `xml:"urn:xmpp:mam:2 fin"`
	}
	if xml.Unmarshal(raw, &iq) != nil || iq.Type != "result" || iq.Fin == nil {
		return mamFin{}
	}
	return mamFin{ok: true, complete: iq.Fin.Complete == "true" || iq.Fin.Complete == "1", last: iq.Fin.Last}
}

// dedupKey identifies a message for exactly-once delivery: the stanza-id
// the account's archive assigned (XEP-0359), else the origin-id, else the
// id attribute.
func dedupKey(raw []byte, account string) string {
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
			return "sid:" + s.ID
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

// mucJoin renders a join with legacy history suppressed: the room archive
// after 'after' replaces it (contract section 3).
func mucJoin(j joinReq) []byte {
	b := []byte("<presence to='")
	b = stream.AppendEscaped(b, j.Room+"/"+j.Nick)
	b = append(b, "'><x xmlns='"+ns.MUC+"'><history maxchars='0'/>"...)
	if j.Password != "" {
		b = append(b, "<password>"...)
		b = stream.AppendEscaped(b, j.Password)
		b = append(b, "</password>"...)
	}
	return append(b, "</x></presence>"...)
}
