package mam

import (
	"encoding/xml"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Metadata is the first and the last entry of an archive, as XEP-0313's
// <metadata/> gives them (section 6): each an archive id and its
// timestamp, all "" for an empty archive.
type Metadata struct {
	StartID, StartTS, EndID, EndTS string
}

// Empty reports an archive with neither a first nor a last entry.
func (m Metadata) Empty() bool { return m.StartID == "" && m.EndID == "" }

// ParseMetadata reads a <metadata xmlns='urn:xmpp:mam:2'/> element; what
// it cannot read stays "".
func ParseMetadata(raw []byte) Metadata {
	type item struct {
		ID string `xml:"id,attr"`
		TS string `xml:"timestamp,attr"`
	}
	var m struct {
		Start item `xml:"start"`
		End   item `xml:"end"`
	}
	_ = xml.Unmarshal(raw, &m)
	return Metadata{StartID: m.Start.ID, StartTS: m.Start.TS, EndID: m.End.ID, EndTS: m.End.TS}
}

// AppendMetadata renders m as a <metadata xmlns='urn:xmpp:mam:2'/>: with
// a <start/> and an <end/> when the archive has entries, empty when it
// has none.
func AppendMetadata(b []byte, m Metadata) []byte {
	if m.Empty() {
		return append(b, "<metadata xmlns='"+ns.MAM+"'/>"...)
	}
	b = append(b, "<metadata xmlns='"+ns.MAM+"'>"...)
	b = appendItem(b, "start", m.StartID, m.StartTS)
	b = appendItem(b, "end", m.EndID, m.EndTS)
	return append(b, "</metadata>"...)
}

func appendItem(b []byte, name, id, ts string) []byte {
	b = append(b, "<"+name+" id='"...)
	b = stream.AppendEscaped(b, id)
	b = append(b, "' timestamp='"...)
	b = stream.AppendEscaped(b, ts)
	return append(b, "'/>"...)
}
