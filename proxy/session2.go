package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// smState is one leg's XEP-0198 counters as seen by the proxy.
type smState struct {
	id  string
	in  uint32 // stanzas received on this leg
	out uint32 // stanzas sent on this leg
}

// session2 is the state of a 2.0 (SASL2 + Bind2) session once relaying.
// The proxy terminates stream management on both legs (contract section
// 7): each leg has its own counters, so stanzas the proxy adds or consumes
// never put the client's and the server's counts out of step.
type session2 struct {
	mu     sync.Mutex
	jid    string
	client *smState // nil until the client enables SM
	up     *smState // nil when SM is not enabled upstream
	// resumable: the client asked for resumption when enabling SM.
	resumable bool
	// detached: the client leg is gone and the session waits in the
	// resumption cache; stanzas for the client only go to unacked.
	detached bool
	// unacked holds the stanzas sent to the client that it has not acked
	// yet, oldest first: they are replayed on resumption.
	unacked []outStanza
	// upDone is the h the proxy reports upstream: upstream stanzas the
	// client has acked, or that never go to it (contract section 7).
	upDone     uint32
	maxUnacked int
	// upBase is how many stanzas the proxy itself sent upstream after
	// enabling SM there: the client's stanza k is the upstream's upBase+k.
	// A client stanza answered by the proxy itself (a bounce) lowers it.
	upBase int64
	// clientAsked counts the client's <r/> waiting for the upstream's <a/>:
	// the proxy acks a client stanza only once the upstream acked it.
	clientAsked int
	// acc is the account's delivery state, shared with its other 2.0
	// sessions; set when the relay starts.
	acc *account
	// served tells whether the proxy serves a domain, for the bounce rule.
	served func(domain string) bool
	// bound tells whether a full JID is online through the proxy.
	bound func(jid string) bool
}

// outStanza is one stanza sent to the client: its client-leg sequence
// number and, when it came from upstream, its upstream one.
type outStanza struct {
	seq, upSeq uint32
	raw        []byte
}

// requestEvery is how many unacked stanzas make the proxy ask the client
// for an ack.
const requestEvery = 16

// authenticate2 relays a SASL2 exchange to the upstream in RFC 6120
// framing. On success it replays the Bind2 request upstream and answers with
// <success/> carrying <bound/>, so the client is online in one round trip.
func (s *session) authenticate2(raw []byte, deadline time.Time) (bool, error) {
	a, err := parseAuthenticate(raw)
	if err != nil {
		return false, streamErr(CondBadFormat, "malformed <authenticate/>")
	}
	if !s.secure && !s.srv.cfg.AllowPlaintext {
		return false, s.writeClient(saslFailure2("encryption-required", "use STARTTLS before authenticating"))
	}
	up, err := s.upstream()
	if err != nil {
		return false, err
	}
	if !slices.Contains(up.mechanisms, a.Mechanism) {
		return false, s.writeClient(saslFailure2("invalid-mechanism", ""))
	}
	_ = up.conn.SetDeadline(deadline)
	if s.ctx.Err() != nil {
		return false, s.ctx.Err()
	}
	if err := writeAll(up.conn, a.sasl1Auth()); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	additional, ok, err := s.relaySASL2()
	if err != nil || !ok {
		return false, err
	}
	resumeFailed := false
	if prev := a.resumeRequest(); prev != nil {
		if s.resume(a, prev, additional) {
			return true, errHandedOff
		}
		resumeFailed = true
	}
	return true, s.bringOnline(a, additional, resumeFailed)
}

// errHandedOff ends a session whose client connection now belongs to a
// resumed session's relay.
var errHandedOff = errors.New("connection handed to a resumed session")

// resume hands this connection to the detached session the client asks
// for, if this account owns it and it is still held. The upstream leg this
// connection authenticated on is then not needed and is closed.
func (s *session) resume(a *authenticate, prev *smResume, additional string) bool {
	user := a.saslUsername()
	h, err := strconv.ParseUint(prev.H, 10, 32)
	if user == "" || err != nil {
		return false
	}
	r, ok := s.srv.detached.Take(prev.PrevID, user+"@"+s.domain)
	if !ok {
		return false
	}
	success := func(v *session2, resumed []byte) []byte {
		b := []byte("<success xmlns='" + nsSASL2 + "'>")
		b = appendAdditional(b, additional)
		b = append(b, "<authorization-identifier>"...)
		b = appendEscaped(b, v.jid)
		b = append(b, "</authorization-identifier>"...)
		b = append(b, resumed...)
		return append(b, "</success><stream:features/>"...)
	}
	_ = s.conn.SetDeadline(time.Time{})
	if !r.attach(s, uint32(h), success) {
		r.dropDetached()
		return false
	}
	s.mu.Lock()
	up := s.up
	s.up, s.handedOff = nil, true
	s.mu.Unlock()
	_ = writeAll(up.conn, []byte(streamEnd))
	up.conn.Close()
	s.log.Info("2.0 session resumed", "previd", prev.PrevID)
	return true
}

// relaySASL2 runs the challenge/response loop. It returns the upstream's
// additional success data and whether authentication succeeded.
func (s *session) relaySASL2() (string, bool, error) {
	for {
		u, err := s.up.fr.Next()
		if err != nil || u.Kind != UnitElement {
			return "", false, fmt.Errorf("%w: during SASL: %v", ErrUpstream, err)
		}
		start, _ := startOf(u.Raw)
		if start.Name.Space == nsStream && start.Name.Local == "error" {
			_ = s.writeClient(append(bytes.Clone(u.Raw), streamEnd...))
			return "", false, errUpstreamError
		}
		if start.Name.Space != nsSASL {
			return "", false, fmt.Errorf("%w: unexpected %s during SASL", ErrUpstream, start.Name.Local)
		}
		switch start.Name.Local {
		case "success":
			return innerText(u.Raw), true, nil
		case "failure":
			return "", false, s.writeClient(sasl2Failure(u.Raw))
		case "challenge":
			if err := s.writeClient(sasl2Wrap("challenge", u.Raw)); err != nil {
				return "", false, err
			}
			if err := s.relaySASL2Response(); err != nil {
				return "", false, err
			}
		default:
			return "", false, fmt.Errorf("%w: unexpected SASL element %s", ErrUpstream, start.Name.Local)
		}
	}
}

func (s *session) relaySASL2Response() error {
	u, err := s.nextClientElement()
	if err != nil {
		return err
	}
	start, _ := startOf(u.Raw)
	var out []byte
	switch {
	case start.Name.Space == nsSASL2 && start.Name.Local == "response":
		out = sasl1Response(u.Raw)
	case start.Name.Space == nsSASL2 && start.Name.Local == "abort":
		out = []byte("<abort xmlns='" + nsSASL + "'/>")
	default:
		return streamErr(CondNotAuthorized, "expected a SASL2 response")
	}
	if err := writeAll(s.up.conn, out); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	return nil
}

// bringOnline replays Bind2 upstream and sends the client <success/>,
// fresh features without bind or sm (there is no stream restart after
// SASL2 success), and the stanzas that arrived during setup.
func (s *session) bringOnline(a *authenticate, additional string, resumeFailed bool) error {
	bs, st, err := s.replayBind(a)
	if err != nil {
		return err
	}
	// Stanzas the upstream sent during setup are done upstream at once: the
	// catch-up part of them is archived, so nothing is lost if the client
	// vanishes before acking them.
	v2 := &session2{jid: bs.jid, upDone: bs.upIn, upBase: int64(bs.upOut), maxUnacked: s.srv.cfg.Limits.MaxUnacked,
		served: func(d string) bool { return s.srv.domains[d] }, bound: s.srv.registry.isBound}
	s.setBound(bs.jid)
	if bs.smID != "" {
		v2.up = &smState{id: bs.smID, in: bs.upIn}
	}
	if a.Bind != nil && a.Bind.SM != nil {
		v2.client = &smState{id: newStreamID()}
		v2.resumable = a.Bind.SM.Resume == "true" || a.Bind.SM.Resume == "1"
	}
	s.v2 = v2
	s.fr.SetLimits(Limits{MaxBytes: s.srv.cfg.Limits.MaxStanzaBytes, MaxDepth: s.srv.cfg.Limits.MaxDepth})
	b := appendSuccess(nil, additional, bs, st, v2.client, resumeFailed)
	b = append(b, "<stream:features/>"...)
	b, sent := st.appendCatchup(b, bareJID(bs.jid))
	if v2.client != nil {
		for _, raw := range sent {
			v2.client.out++
			v2.unacked = append(v2.unacked, outStanza{seq: v2.client.out, raw: raw})
		}
	}
	s.log.Info("2.0 session online", "jid", bs.jid, "sm", v2.client != nil, "carbons", bs.carbons)
	return s.writeClient(b)
}

// fromClient applies the client leg's stream management and reports
// whether the unit goes upstream.
func (v *session2) fromClient(r *relay, raw []byte) []byte {
	name, xmlns := elementName(raw)
	if string(xmlns) == nsSM {
		v.clientSM(r, string(name), raw)
		return nil
	}
	if !isStanza(name) {
		return raw
	}
	v.mu.Lock()
	if v.client != nil {
		v.client.in++
	}
	v.mu.Unlock()
	out := raw
	if string(name) == "message" {
		if bounce := v.bounceOffline(raw); bounce != nil {
			// Answered here: it never reaches the upstream, so the
			// client's count and the upstream's part ways by one.
			v.mu.Lock()
			v.upBase--
			v.mu.Unlock()
			r.send(&r.client, bounce)
			return nil
		}
		if rewritten, err := rewrite.Leaving(raw); err == nil {
			out = rewritten
		}
	}
	v.mu.Lock()
	if v.up != nil {
		v.up.out++
	}
	v.mu.Unlock()
	return out
}

// bounceOffline answers a message to a full JID of a served domain that
// no session is bound to with <service-unavailable/>: it is delivered
// nowhere and archived nowhere (contract section 5).
func (v *session2) bounceOffline(raw []byte) []byte {
	tag := raw[:bytes.IndexByte(raw, '>')+1]
	to := string(attrValue(tag, "to"))
	bare, resource, full := strings.Cut(to, "/")
	_, domain, _ := strings.Cut(bare, "@")
	if !full || resource == "" || v.served == nil || !v.served(strings.ToLower(domain)) || v.bound(to) {
		return nil
	}
	b := []byte("<message type='error' from='")
	b = appendEscaped(b, to)
	b = append(b, "' to='"...)
	b = appendEscaped(b, v.jid)
	if id := attrValue(tag, "id"); id != nil {
		b = append(b, "' id='"...)
		b = append(b, id...)
	}
	return append(b, "'><error type='cancel'><service-unavailable xmlns='"+nsStanzas+"'/></error></message>"...)
}

func (v *session2) clientSM(r *relay, name string, raw []byte) {
	v.mu.Lock()
	var reply, upReply []byte
	switch name {
	case "r":
		switch {
		case v.client == nil:
		case v.up == nil:
			reply = appendAck(nil, v.client.in)
		default:
			if v.clientAsked++; v.clientAsked == 1 {
				upReply = []byte("<r xmlns='" + nsSM + "'/>")
			}
		}
	case "a":
		if h, err := strconv.ParseUint(string(attrValue(raw, "h")), 10, 32); err == nil {
			if upH, advanced := v.clientAcked(uint32(h)); advanced {
				upReply = appendAck(nil, upH)
			}
		}
	case "enable":
		if v.client == nil {
			v.client = &smState{id: newStreamID()}
			resume := string(attrValue(raw, "resume"))
			v.resumable = resume == "true" || resume == "1"
			reply = []byte("<enabled xmlns='" + nsSM + "' id='" + v.client.id + "' resume='true'/>")
		} else {
			reply = smFailed("unexpected-request")
		}
	default: // resume on a live stream, or anything else
		reply = smFailed("unexpected-request")
	}
	v.mu.Unlock()
	if reply != nil {
		r.send(&r.client, reply)
	}
	if upReply != nil {
		r.send(&r.up, upReply)
	}
}

// clientAcked drops what the client acknowledged with h and reports the
// new upstream h when it advanced, so the upstream learns at once.
// Called with v.mu held.
func (v *session2) clientAcked(h uint32) (uint32, bool) {
	i := 0
	before := v.upDone
	for ; i < len(v.unacked) && v.unacked[i].seq <= h; i++ {
		if up := v.unacked[i].upSeq; up > v.upDone {
			v.upDone = up
		}
	}
	v.unacked = v.unacked[i:]
	return v.upDone, v.upDone != before && v.up != nil
}

// fromUpstream applies the upstream leg's stream management and reports
// whether the unit goes to the client.
func (v *session2) fromUpstream(r *relay, raw []byte) []byte {
	name, xmlns := elementName(raw)
	if string(xmlns) == nsSM {
		v.upstreamSM(r, string(name), raw)
		return nil
	}
	if !isStanza(name) {
		return raw
	}
	v.mu.Lock()
	var upSeq uint32
	if v.up != nil {
		v.up.in++
		upSeq = v.up.in
	}
	v.mu.Unlock()
	out := raw
	if string(name) == "message" {
		out = v.route(r, raw)
		if out == nil {
			return nil // delivered elsewhere, or dropped: done upstream once later acks pass it
		}
	}
	return v.toClient(r, out, upSeq)
}

// route applies the 2.0 routing rules to a message that arrived on this
// session's upstream leg: a 2.0-marked full-JID message the 1.0 server
// rerouted to this resource is dropped; the account's exactly-once rules
// decide which sessions get it; each copy gets the entering rules. It
// returns this session's copy, or nil; the others are delivered directly.
func (v *session2) route(r *relay, raw []byte) []byte {
	if reroutedFullJID(raw, v.jid) {
		return nil
	}
	if v.acc == nil {
		return entering(raw)
	}
	ds, err := v.acc.observe(v.jid, raw)
	if err != nil {
		r.s.log.Debug("message not routed", "err", err)
	}
	var mine []byte
	for _, d := range ds {
		if d.to == r {
			mine = entering(d.stanza)
			continue
		}
		d.to.deliver(entering(d.stanza))
	}
	return mine
}

// deliver writes a stanza that arrived on a sibling session's leg to this
// session's client, with this leg's stream management.
func (r *relay) deliver(stanza []byte) {
	v := r.s.v2
	if out := v.toClient(r, bytes.Clone(stanza), 0); out != nil {
		r.send(&r.client, out)
	}
}

// toClient counts a stanza on the client leg, keeps it for replay until
// acked, and reports what to forward (nil while detached).
func (v *session2) toClient(r *relay, out []byte, upSeq uint32) []byte {
	v.mu.Lock()
	if v.client == nil {
		if upSeq > v.upDone {
			v.upDone = upSeq // nobody acks on the client leg: done when sent
		}
		v.mu.Unlock()
		return out
	}
	v.client.out++
	v.unacked = append(v.unacked, outStanza{seq: v.client.out, upSeq: upSeq, raw: bytes.Clone(out)})
	forward, overflow := !v.detached, len(v.unacked) > v.maxUnacked
	ask := forward && len(v.unacked)%requestEvery == 0
	v.mu.Unlock()
	switch {
	case overflow:
		r.terminate(streamErr(CondPolicyViolation, "too many unacknowledged stanzas"), true)
		return nil
	case ask:
		r.send(&r.client, []byte("<r xmlns='"+nsSM+"'/>"))
	}
	if !forward {
		return nil
	}
	return out
}

// entering applies the migration rules to one delivered copy. A sent
// carbon or a MAM result is a wrapper the client takes apart itself; only
// plain messages (an unwrapped received carbon among them) are marked.
func entering(stanza []byte) []byte {
	if bytes.Contains(stanza, []byte(nsMAM)) && bytes.Contains(stanza, []byte("<result")) ||
		bytes.Contains(stanza, []byte(nsCarbons)) && bytes.Contains(stanza, []byte("<sent")) {
		return stanza
	}
	out, _, err := rewrite.Entering(stanza)
	if err != nil {
		return stanza
	}
	return out
}

// reroutedFullJID reports a message that a 2.0 client sent to another full
// JID (it carries <xmpp-2/>) and that the 1.0 server delivered here instead.
func reroutedFullJID(raw []byte, self string) bool {
	if !bytes.Contains(raw, []byte(nsXMPP2)) {
		return false
	}
	_, route, err := rewrite.Entering(raw)
	if err != nil || !route.Marked2 {
		return false
	}
	tag := raw[:bytes.IndexByte(raw, '>')+1]
	to := string(attrValue(tag, "to"))
	return strings.Contains(to, "/") && !strings.EqualFold(to, self)
}

// upstreamSM answers the upstream's <r/> with what the client acked, and
// turns the upstream's <a/> into the answer to the client's pending <r/>.
func (v *session2) upstreamSM(r *relay, name string, raw []byte) {
	v.mu.Lock()
	var toUp, toClient []byte
	switch name {
	case "r":
		toUp = appendAck(nil, v.upDone)
	case "a":
		h, err := strconv.ParseUint(string(attrValue(raw, "h")), 10, 32)
		if err == nil && v.clientAsked > 0 && v.client != nil {
			acked := uint32(min(max(int64(h)-v.upBase, 0), int64(v.client.in)))
			toClient = appendAck(nil, acked)
			v.clientAsked = 0
		}
	}
	detached := v.detached
	v.mu.Unlock()
	if toUp != nil {
		r.send(&r.up, toUp)
	}
	if toClient != nil && !detached {
		r.send(&r.client, toClient)
	}
}

// detach marks the client leg gone if the session can be resumed.
func (v *session2) detach() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client == nil || !v.resumable || v.detached {
		return false
	}
	v.detached = true
	return true
}

// resumeGreeting reattaches the session: it drops what the client says it
// received (h) and returns <resumed/> plus every stanza to replay.
func (v *session2) resumeGreeting(h uint32, success func(*session2, []byte) []byte) ([]byte, uint32, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if h > v.client.out {
		return nil, 0, false // the client claims more than was sent
	}
	v.clientAcked(h)
	resumed := []byte("<resumed xmlns='" + nsSM + "' previd='")
	resumed = appendEscaped(resumed, v.client.id)
	resumed = append(resumed, "' h='"...)
	resumed = strconv.AppendUint(resumed, uint64(v.client.in), 10)
	resumed = append(resumed, "'/>"...)
	b := success(v, resumed)
	for _, u := range v.unacked {
		b = append(b, u.raw...)
	}
	v.detached = false
	return b, v.upDone, true
}

func bareJID(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

func appendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+nsSM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

func smFailed(condition string) []byte {
	return []byte("<failed xmlns='" + nsSM + "'><" + condition + " xmlns='" + nsStanzas + "'/></failed>")
}
