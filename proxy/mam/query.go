package mam

import (
	"strconv"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Query renders an archive query (XEP-0313 section 4) as an iq set with
// the given id, tagged with queryID so its result messages can be told
// apart. to is the archive: "" for the account's own, else a room's bare
// JID. The page holds at most max messages. after, an archive id, asks
// for the page after it (RSM <after/>); else before asks for the last
// page (an empty RSM <before/>); else the page starts at the archive's
// beginning, or at start when start is not zero (a data form 'start'
// field, in UTC, to the second).
func Query(id, to, queryID, after string, start time.Time, max int, before bool) []byte {
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

// MetadataQuery renders the iq get with the given id that asks the
// account's archive for its first and last entry (XEP-0313 section 6).
// Servers without it (ejabberd 23.01) answer with an error, and the
// caller falls back to two one-message queries.
func MetadataQuery(id string) []byte {
	b := []byte("<iq type='get' id='")
	b = stream.AppendEscaped(b, id)
	return append(b, "'><metadata xmlns='"+ns.MAM+"'/></iq>"...)
}
