package proxy

import (
	"bytes"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// abandonedQueries names the setup queries a 2.0 session gave up on
// (timeouts.setup_step): the client was told the step failed, so their
// answers, when they come late, belong to nobody. Without this filter a
// late archive page would reach the client as if it were live, after
// <synced/>, and an IQ result would answer a request the client never
// made.
type abandonedQueries struct {
	queryIDs   []string // MAM queryids whose results are dropped
	idPrefixes []string // IQ ids (prefixes) whose results and errors are dropped
}

func (a *abandonedQueries) add(s *archiveSync) {
	a.queryIDs = append(a.queryIDs, s.queryID)
	a.idPrefixes = append(a.idPrefixes, s.idPrefix)
}

// late reports whether a stanza from upstream answers an abandoned query.
// It decodes only stanzas that can be such an answer.
func (a *abandonedQueries) late(name, raw []byte) bool {
	if a == nil {
		return false
	}
	switch string(name) {
	case "message":
		if !bytes.Contains(raw, []byte(ns.MAM)) {
			return false
		}
		res, ok := mam.ParseResult(raw)
		return ok && a.hasQueryID(res.QueryID)
	case "iq":
		start, err := stream.StartOf(raw)
		if err != nil {
			return false
		}
		if typ := stream.StartAttr(start, "type"); typ != "result" && typ != "error" {
			return false
		}
		id := stream.StartAttr(start, "id")
		for _, p := range a.idPrefixes {
			if strings.HasPrefix(id, p) {
				return true
			}
		}
	}
	return false
}

func (a *abandonedQueries) hasQueryID(id string) bool {
	for _, q := range a.queryIDs {
		if q == id {
			return true
		}
	}
	return false
}
