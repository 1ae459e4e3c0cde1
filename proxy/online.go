package proxy

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// A 2.0 client's message to a full JID of a served domain is bounced when
// that resource is offline (contract section 5), because the 1.0 server
// would otherwise reroute it to the account's other resources or store it.
// "Offline" is what the server knows: a resource may be connected straight
// to the server, through another proxy instance, or back by XEP-0198
// resumption, and this process sees none of those. So unless the JID is
// bound through this process (then it is online, at no cost), the proxy
// asks the server, from the sender's own upstream leg, with an IQ to that
// full JID, and holds the message (and the client's later stanzas, which
// must not overtake it) until the answer:
//
//   - a <service-unavailable/> (or <item-not-found/>,
//     <recipient-unavailable/>, <remote-server-not-found/>) error: the
//     server has no such resource (RFC 6121 section 8.5.3.2.3 makes the
//     server answer an IQ to an unavailable full JID so): bounce;
//   - anything else, a result or another error from the client itself:
//     the resource is online, the message goes upstream;
//   - no answer within probeTimeout: online (a server may be holding the
//     IQ for a hibernating session): the message goes upstream.
//
// The IQ is a disco#info query, which every compliant client answers
// (XEP-0030 is in the core compliance suites); a client that does not
// answer it at all still counts as online after the timeout. The cost is
// one round trip through the server to the recipient's client, paid only
// for full-JID messages to resources not bound through this process.

// probeTimeout bounds how long a message waits for the server's answer.
const probeTimeout = 5 * time.Second

// probeIDPrefix marks the proxy's own IQs, so their answers are consumed.
const probeIDPrefix = "x2-online-"

// onlineProbes are one session's outstanding questions to the server.
type onlineProbes struct {
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan bool
	// asked is set by the first probe: until then no IQ is an answer,
	// and the hot path reads no attribute.
	asked atomic.Bool
}

func (p *onlineProbes) start() (string, chan bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waiting == nil {
		p.waiting = map[string]chan bool{}
	}
	p.next++
	id := probeIDPrefix + strconv.FormatUint(p.next, 10)
	ch := make(chan bool, 1)
	p.waiting[id] = ch
	p.asked.Store(true)
	return id, ch
}

func (p *onlineProbes) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.waiting, id)
}

// answer takes an IQ from upstream that answers one of the probes and
// reports whether it did. A late answer, to a probe given up on, is still
// the proxy's own and is consumed.
func (p *onlineProbes) answer(raw []byte) bool {
	if !p.asked.Load() {
		return false
	}
	id := stream.AttrString(raw, "id")
	if !strings.HasPrefix(id, probeIDPrefix) {
		return false
	}
	typ := stream.AttrString(raw, "type")
	if typ != "result" && typ != "error" {
		return false // a request that happens to use our prefix
	}
	p.mu.Lock()
	ch := p.waiting[id]
	p.mu.Unlock()
	if ch != nil {
		ch <- typ == "result" || !offlineCondition(raw)
	}
	return true
}

// offlineCondition reports whether an IQ error says the recipient is not
// there, the server's answer for a full JID with no such resource.
func offlineCondition(raw []byte) bool {
	var iq struct {
		Error struct {
			Conditions []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil {
		return false
	}
	for _, c := range iq.Error.Conditions {
		if c.XMLName.Space != ns.Stanzas {
			continue
		}
		switch c.XMLName.Local {
		case "service-unavailable", "item-not-found", "recipient-unavailable", "remote-server-not-found":
			return true
		}
	}
	return false
}

// fullJIDToCheck returns the normalised recipient of a message the bounce
// rule may apply to: one to a full JID of a served domain, not an error,
// and not bound through this process (which needs no question).
func (v *session2) fullJIDToCheck(raw []byte) (string, bool) {
	if stream.AttrString(raw, "type") == "error" || v.served == nil {
		return "", false // never answer an error with an error (RFC 6120 8.3.1)
	}
	to, err := jid.Parse(stream.AttrString(raw, "to"))
	if err != nil || to.Resourcepart() == "" || to.Localpart() == "" || !v.served(to.Domainpart()) {
		return "", false
	}
	s := to.String()
	return s, !v.isLocal(s)
}

func (v *session2) isOnline(r *relay, to string) bool {
	if v.online != nil {
		return v.online(r, to)
	}
	return v.onlineByServer(r, to)
}

// onlineByServer asks the server whether the full JID to is online, on
// r's upstream leg, and waits for the answer. Only the client reader calls
// it: what the client sent before goes upstream first, and what it sends
// after waits.
func (v *session2) onlineByServer(r *relay, to string) bool {
	id, answer := v.probes.start()
	defer v.probes.forget(id)
	v.upMu.Lock()
	flushed := r.flushBatch(&r.client)
	v.upMu.Unlock()
	if !flushed || !v.sendOwnUpstream(r, appendDiscoInfo(nil, id, to)) {
		return true
	}
	t := time.NewTimer(probeTimeout)
	defer t.Stop()
	select {
	case online := <-answer:
		return online
	case <-t.C:
		r.s.log.Debug("no answer from the server about a full JID; sending", "to", to)
	case <-r.s.ctx.Done():
	}
	return true
}

// answerProbe answers another proxy's question (another instance, or
// this one for a JID it did not know) about this session's full JID
// itself: the session is online, and its client, which might answer a
// disco#info it does not implement with <service-unavailable/> (RFC 6120
// section 8.4), never sees the question. It reports whether raw was one.
func (v *session2) answerProbe(r *relay, raw []byte) bool {
	if string(stream.AttrBytes(raw, "type")) != "get" || !bytes.HasPrefix(stream.AttrBytes(raw, "id"), []byte(probeIDPrefix)) {
		return false
	}
	b := []byte("<iq type='result' id='")
	b = stream.AppendEscaped(b, stream.AttrString(raw, "id"))
	if from := stream.AttrString(raw, "from"); from != "" {
		b = append(b, "' to='"...)
		b = stream.AppendEscaped(b, from)
	}
	b = append(b, "'/>"...)
	v.sendOwnUpstream(r, b)
	return true
}

func appendDiscoInfo(b []byte, id, to string) []byte {
	b = append(b, "<iq type='get' id='"...)
	b = stream.AppendEscaped(b, id)
	b = append(b, "' to='"...)
	b = stream.AppendEscaped(b, to)
	return append(b, "'><query xmlns='"+ns.DiscoInfo+"'/></iq>"...)
}

// bounce is the answer to a message for an offline full JID:
// <service-unavailable/>, from that JID, with the message's id.
func (v *session2) bounce(raw []byte, to string) []byte {
	b := []byte("<message type='error' from='")
	b = stream.AppendEscaped(b, to)
	b = append(b, "' to='"...)
	b = stream.AppendEscaped(b, v.jid)
	if stream.HasAttr(raw, "id") {
		b = append(b, "' id='"...)
		b = stream.AppendEscaped(b, stream.AttrString(raw, "id")) // resolved, then escaped for the quote used here
	}
	return append(b, "'><error type='cancel'><service-unavailable xmlns='"+ns.Stanzas+"'/></error></message>"...)
}
