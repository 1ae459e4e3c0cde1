package proxy

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/bind2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/muc"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// postAuthFeatures is what the proxy needs from the upstream's features
// after authentication.
type postAuthFeatures struct {
	Bind *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	SM   *struct{} `xml:"urn:xmpp:sm:3 sm"`
	CSI  *struct{} `xml:"urn:xmpp:csi:0 csi"`
}

// Ids of the proxy's own setup requests upstream.
const (
	idBind    = "x2-bind"
	idCarbons = "x2-carbons"
)

// bindOutcome is the outcome of replaying a Bind2 request upstream.
type bindOutcome struct {
	jid      string
	carbons  bool
	smID     string // upstream SM id; "" when SM is not enabled upstream
	smResume bool
	// pending holds stanzas the upstream sent during setup (presence
	// reflections, offline messages): the client gets them after <success>.
	pending [][]byte
	// abandoned are the setup queries given up on, whose late answers
	// must never reach the client.
	abandoned *abandonedQueries
	upIn      uint32 // upstream stanzas counted by SM since <enabled/>
	upOut     uint32 // stanzas the proxy sent upstream after <enable/>
}

// replayBind restarts the upstream stream and replays the Bind2 request as
// classic requests, all in one write: bind, carbons, SM enable, CSI, and
// the initial presence. It then reads until every answer is in.
func (s *session) replayBind(a *sasl2.Authenticate) (*bindOutcome, *setupState, error) {
	up := s.up
	if err := writeDirect(up.conn, stream.AppendHeader(nil, s.domain, "", "", s.lang)); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	up.fr.Reset(nil)
	rawFeatures, _, err := up.readHeaderAndFeatures()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: after auth: %w", ErrUpstream, err)
	}
	var feats postAuthFeatures
	_ = xml.Unmarshal(rawFeatures, &feats)
	if feats.Bind == nil {
		return nil, nil, fmt.Errorf("%w: upstream offers no resource binding", ErrUpstream)
	}
	bind := a.Bind
	if bind == nil {
		bind = &bind2.Request{}
	}
	var uaID string
	if a.UserAgent != nil {
		uaID = a.UserAgent.ID
	}
	resource := bind2.DeriveResource(s.srv.secret, a.Username(), bind.Tag, uaID)
	req := []byte("<iq type='set' id='" + idBind + "'><bind xmlns='" + ns.Bind + "'><resource>")
	req = stream.AppendEscaped(req, resource)
	req = append(req, "</resource></bind></iq><iq type='set' id='"+idCarbons+"'><enable xmlns='"+ns.Carbons+"'/></iq>"...)
	if feats.SM != nil {
		// Enabled before any presence, so every later stanza upstream is
		// covered by the proxy's own stream management on this leg.
		req = append(req, "<enable xmlns='"+ns.SM+"' resume='true'/>"...)
	}
	enableEnd := len(req)
	if bind.Inactive != nil && feats.CSI != nil {
		req = append(req, "<inactive xmlns='"+ns.CSI+"'/>"...)
	}
	if bind.Presence != nil {
		req = append(req, clampPriority(bind2.AppendPresence(nil, bind.Presence))...)
	}
	st := &setupState{s: s, out: &bindOutcome{}, wantSM: feats.SM != nil, gotSM: feats.SM == nil}
	st.meta.account = a.Username() + "@" + s.domain
	req = st.appendOptionalRequests(req, bind)
	if feats.SM != nil {
		st.out.upOut = stream.CountStanzas(req[enableEnd:])
	}
	if err := writeDirect(up.conn, req); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	if err := st.run(s.handshakeDeadline); err != nil {
		return nil, nil, err
	}
	if st.out.jid == "" {
		return nil, nil, fmt.Errorf("%w: bind failed", ErrUpstream)
	}
	return st.out, st, nil
}

// appendOptionalRequests adds the archive metadata query, the MUC joins and
// the catch-up queries to the pipelined replay. Joins go before the room
// archive queries: the server handles them in order.
func (st *setupState) appendOptionalRequests(req []byte, bind *bind2.Request) []byte {
	sync := bind.Sync
	wantSync := sync != nil && (sync.After != "" || sync.Within != "")
	if edges, ok := st.s.srv.edges.get(st.meta.account); ok && wantSync {
		st.meta.edges, st.meta.fromCache = edges, true
	} else {
		req = append(req, metadataQuery...)
	}
	for i, j := range bind.Joins {
		if j.Room == "" || j.Nick == "" {
			continue
		}
		rj := &roomJoin{req: j, room: strings.ToLower(j.Room)}
		req = append(req, muc.Join(j.Room, j.Nick, j.Password)...)
		if j.After != "" {
			rj.catchup = &archiveSync{to: j.Room, queryID: j.Room, idPrefix: "x2-room" + strconv.Itoa(i) + "-", after: j.After, max: st.s.srv.cfg.Limits.MaxCatchup}
		}
		st.joins = append(st.joins, rj)
	}
	for _, j := range st.joins {
		if j.catchup != nil {
			req = append(req, j.catchup.request()...)
		}
	}
	if wantSync {
		st.sync = &archiveSync{queryID: queryIDSync, idPrefix: queryIDSync + "-", after: sync.After, max: st.s.srv.cfg.Limits.MaxCatchup}
		if secs, err := strconv.Atoi(sync.Within); err == nil && secs > 0 && sync.After == "" {
			st.sync.start = time.Now().Add(-time.Duration(secs) * time.Second)
		}
		return append(req, st.sync.request()...)
	}
	// Nobody waits for its answer: it is dropped whenever it comes.
	st.out.abandoned = &abandonedQueries{queryIDs: []string{idArchiveMark}, idPrefixes: []string{idArchiveMark}}
	return append(req, mam.Query(idArchiveMark, "", idArchiveMark, "", time.Time{}, 0, false)...)
}

// jidFromBindResult reads the JID from a bind result.
func jidFromBindResult(raw []byte) (string, error) {
	var iq struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil || iq.Type != "result" || iq.JID == "" {
		return "", fmt.Errorf("%w: bind failed: %.300s", ErrUpstream, raw)
	}
	return iq.JID, nil
}

// appendSuccess renders the SASL2 <success/> with the Bind2 <bound/>
// (contract section 4).
func appendSuccess(b []byte, additionalData string, bs *bindOutcome, st *setupState, smEnabled []byte, resumeFailed bool) []byte {
	b = sasl2.AppendSuccessStart(b, additionalData, bs.jid)
	if resumeFailed {
		// Before <bound/>: xmpp.js handles <success/>'s children in
		// order and would otherwise drop the new session's SM state.
		b = append(b, "<failed xmlns='"+ns.SM+"'><item-not-found xmlns='"+ns.Stanzas+"'/></failed>"...)
	}
	b = append(b, "<bound xmlns='"+ns.Bind2+"'>"...)
	b = append(b, smEnabled...) // the client's <enabled/>, if it asked
	if bs.carbons {
		b = append(b, "<enabled xmlns='"+ns.Carbons+"'/>"...)
	}
	b = st.appendBound(b)
	return append(b, "</bound>"+sasl2.SuccessEnd...)
}
