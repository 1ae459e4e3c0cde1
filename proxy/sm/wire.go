package sm

import (
	"strconv"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// AppendAck appends <a h='h'/>.
func AppendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+ns.SM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// AppendRequest appends <r/>.
func AppendRequest(b []byte) []byte {
	return append(b, "<r xmlns='"+ns.SM+"'/>"...)
}

// AppendEnabled appends <enabled/> with the stream id, and resume='true'
// only when resumption was promised (see [Machine.Enable]).
func AppendEnabled(b []byte, id string, resume bool) []byte {
	b = append(b, "<enabled xmlns='"+ns.SM+"' id='"...)
	b = appendAttr(b, id)
	if resume {
		b = append(b, "' resume='true"...)
	}
	return append(b, "'/>"...)
}

// AppendResumed appends <resumed previd='previd' h='h'/>; h is
// Resumption.H.
func AppendResumed(b []byte, previd string, h uint32) []byte {
	b = append(b, "<resumed xmlns='"+ns.SM+"' previd='"...)
	b = appendAttr(b, previd)
	b = append(b, "' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// AppendFailed appends <failed/> with a stanza error condition, for
// example "unexpected-request" or "item-not-found".
func AppendFailed(b []byte, condition string) []byte {
	b = append(b, "<failed xmlns='"+ns.SM+"'><"...)
	b = append(b, condition...)
	return append(b, " xmlns='"+ns.Stanzas+"'/></failed>"...)
}

// AppendHandledCountTooHigh appends the application condition of the
// stream error for an h above the send count (XEP-0198 section 4).
func AppendHandledCountTooHigh(b []byte, h, sendCount uint32) []byte {
	b = append(b, "<handled-count-too-high xmlns='"+ns.SM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	b = append(b, "' send-count='"...)
	b = strconv.AppendUint(b, uint64(sendCount), 10)
	return append(b, "'/>"...)
}

// ParseH parses an h attribute value: a decimal unsigned 32-bit integer
// (xs:unsignedInt), without sign or spaces.
func ParseH(v []byte) (uint32, error) {
	if len(v) == 0 || v[0] < '0' || v[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	h, err := strconv.ParseUint(string(v), 10, 32)
	return uint32(h), err
}

// appendAttr appends s escaped for a single-quoted attribute value.
func appendAttr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}
