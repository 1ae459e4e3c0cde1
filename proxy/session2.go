package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/carbonsim"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/bind2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// session2 is the state of a 2.0 (SASL2 + Bind2) session once relaying.
// The proxy terminates stream management on both legs (contract section
// 7): each leg has its own counters, so stanzas the proxy adds or consumes
// never put the client's and the server's counts out of step. The
// bookkeeping is package sm's machine (clientsm.go wires it).
type session2 struct {
	mu sync.Mutex
	// upMu orders what goes upstream and counts there (XEP-0198): the
	// client's stanzas and the proxy's own questions and answers. Each is
	// numbered and queued under it, so the upstream counts them in the
	// order they were numbered. Taken before mu, never while holding it.
	upMu sync.Mutex
	jid  string
	// sm is the client leg's stream management, guarded by mu; it counts
	// nothing on the client leg until the client enables it.
	sm *sm.Machine
	// smID is the client's SM session id, for resumption; "" until enabled.
	smID string
	// resuming receives the resumption that waits for the upstream's ack.
	resuming chan sm.Resumption
	// drained is closed once no client stanza waits for the upstream's
	// ack, when a shutdown waits for that.
	drained chan struct{}
	// acc is the account's delivery state, shared with its other 2.0
	// sessions; set when the relay starts.
	acc *account
	// served tells whether the proxy serves a domain, for the bounce rule.
	served func(domain string) bool
	// bound tells whether a full JID is online through the proxy.
	isLocal func(jid string) bool
	// abandoned: setup queries given up on, whose late answers are dropped.
	abandoned *abandonedQueries
	// probes are the questions to the server about full JIDs (online.go).
	probes onlineProbes
	// online, when set, replaces asking the server whether a full JID is
	// online (tests).
	online func(r *relay, to string) bool
	// catchup streams the catch-up the client asked for; nil without one.
	// Set before the relay starts, never changed.
	catchup *catchup
	// recheck is the second look at the archive after the catch-up.
	recheck recheck
}

// authenticate2 relays a SASL2 exchange to the upstream in RFC 6120
// framing. On success it replays the Bind2 request upstream and answers with
// <success/> carrying <bound/>, so the client is online in one round trip.
func (s *session) authenticate2(raw []byte, deadline time.Time) (bool, error) {
	a, err := sasl2.ParseAuthenticate(raw)
	if err != nil {
		return false, stream.NewError(stream.CondBadFormat, "malformed <authenticate/>")
	}
	profile := saslProfile{
		failure:         sasl2.Failure,
		challenge:       func(raw []byte) []byte { return sasl2.Wrap("challenge", raw) },
		upstreamFailure: sasl2.FailureFromSASL1,
		response:        s.relaySASL2Response,
	}
	success, err := s.relaySASL(profile, a.SASL1Auth(), a.Mechanism, deadline)
	if err != nil || success == nil {
		return false, err
	}
	additional := sasl2.InnerText(success)
	resumeFailed := false
	if prev := a.ResumeRequest(); prev != nil {
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
func (s *session) resume(a *sasl2.Authenticate, prev *bind2.SMResume, additional string) bool {
	user := a.Username()
	h, err := strconv.ParseUint(prev.H, 10, 32)
	if user == "" || err != nil {
		s.srv.metrics.resumed(outcomeFailed)
		return false
	}
	r, ok := s.srv.detached.Take(prev.PrevID, accountOf(user+"@"+s.domain))
	if !ok {
		s.srv.metrics.resumed(outcomeExpired)
		return false
	}
	success := func(v *session2, resumed []byte) []byte {
		s.srv.metrics.resumed(outcomeOK) // it is: the greeting is written next
		b := sasl2.AppendSuccessStart(nil, additional, v.jid)
		b = append(b, resumed...)
		return append(b, sasl2.SuccessEnd+"<stream:features/>"...)
	}
	_ = s.conn.SetDeadline(time.Time{})
	if !r.attach(s, uint32(h), success) {
		s.srv.metrics.resumed(outcomeFailed)
		r.endBeforeRebind(s.srv.cfg.Timeouts.Close)
		return false
	}
	s.mu.Lock()
	up := s.up
	s.up, s.handedOff = nil, true
	s.mu.Unlock()
	_ = writeDirect(up.conn, []byte(stream.CloseTag))
	up.conn.Close()
	s.log.Info("2.0 session resumed", "previd", prev.PrevID)
	return true
}

func (s *session) relaySASL2Response() error {
	u, err := s.nextClientElement()
	if err != nil {
		return err
	}
	start, _ := stream.StartOf(u.Raw)
	var out []byte
	switch {
	case start.Name.Space == ns.SASL2 && start.Name.Local == "response":
		out = sasl2.SASL1Response(u.Raw)
	case start.Name.Space == ns.SASL2 && start.Name.Local == "abort":
		out = []byte("<abort xmlns='" + ns.SASL + "'/>")
	default:
		return stream.NewError(stream.CondNotAuthorized, "expected a SASL2 response")
	}
	if err := writeDirect(s.up.conn, out); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	return nil
}

// bringOnline replays Bind2 upstream and sends the client <success/>,
// fresh features without bind or sm (there is no stream restart after
// SASL2 success), and the stanzas that arrived during setup.
func (s *session) bringOnline(a *sasl2.Authenticate, additional string, resumeFailed bool) (err error) {
	start, online := time.Now(), false
	defer func() {
		if !online {
			s.srv.metrics.setupDone(start, err)
		}
	}()
	bs, st, err := s.replayBind(a)
	if err != nil {
		return err
	}
	// Stanzas the upstream sent during setup are done upstream at once: the
	// catch-up part of them is archived, so nothing is lost if the client
	// vanishes before acking them.
	v2 := &session2{jid: bs.jid, sm: newClientSM(bs, s.srv.cfg.Limits.MaxUnacked),
		served: func(d string) bool { return s.srv.domains[d] }, isLocal: s.srv.registry.isLocal, abandoned: bs.abandoned}
	s.setFullJID(bs.jid)
	var enabled []byte
	if a.Bind != nil && a.Bind.SM != nil {
		enabled, _ = v2.enableSM() // a fresh machine: cannot fail
	}
	s.v2 = v2
	s.fr.SetLimits(stream.Limits{MaxBytes: s.srv.cfg.Limits.MaxStanzaBytes, MaxDepth: s.srv.cfg.Limits.MaxDepth})
	b := appendSuccess(nil, additional, bs, st, enabled, resumeFailed)
	b = append(b, "<stream:features/>"...)
	// The catch-up streams from the relay (catchup.go); without one, what
	// came during setup follows <success/> at once.
	var sent [][]byte
	v2.catchup = newCatchup(st, s.srv.cfg.Timeouts.SetupStep, carbonsim.DefaultMemory)
	if v2.catchup == nil {
		b, sent = appendPending(b, bs.pending)
	}
	ask := false
	for _, raw := range sent {
		q, err := v2.sm.Queue(raw)
		if err != nil {
			return stream.NewError(stream.CondPolicyViolation, "the catch-up exceeds limits.max_unacked")
		}
		ask = ask || q.AskClient
	}
	if ask {
		b = append(b, requestAck...)
	}
	s.log.Info("2.0 session online", "jid", bs.jid, "sm", enabled != nil, "carbons", bs.carbons)
	online = true
	s.srv.metrics.setupDone(start, nil) // before the client can see it
	return s.writeClient(b)
}

// fromClient applies the client leg's stream management and reports
// whether the unit goes upstream.
func (v *session2) fromClient(r *relay, raw []byte) []byte {
	name, xmlns := stream.ElementName(raw)
	if string(xmlns) == ns.SM {
		v.clientSM(r, string(name), raw)
		return nil
	}
	if !stream.IsStanza(name) {
		return raw
	}
	out := raw
	if string(name) == "presence" && isBroadcastPresence(raw) {
		out = clampPriority(raw)
	}
	if string(name) == "message" {
		if to, check := v.fullJIDToCheck(raw); check && !v.isOnline(r, to) {
			if _, ok := v.clientStanza(r, nil, false); ok {
				r.s.srv.metrics.bounced("service-unavailable")
				v.toClient(r, v.bounce(raw, to)) // answered here, never upstream
			}
			return nil
		}
		if rewritten, err := rewrite.Leaving(raw); err == nil {
			out = rewritten
		}
		r.noteFullJIDSend(v.jid, raw)
	}
	v.forward(r, out)
	return nil
}

// forward numbers a client stanza for the upstream and queues it there,
// after what the client sent before it (see upMu). Only the client reader
// calls it.
func (v *session2) forward(r *relay, out []byte) {
	v.upMu.Lock()
	defer v.upMu.Unlock()
	if !r.flushBatch(&r.client) {
		return
	}
	if out, ok := v.clientStanza(r, out, true); ok {
		r.send(&r.up, bytes.Clone(out)) // out may be the framer's buffer
	}
}

// sendOwnUpstream queues a stanza the proxy itself sends upstream (a
// question about a full JID, an answer to one), numbered there.
func (v *session2) sendOwnUpstream(r *relay, b []byte) bool {
	v.upMu.Lock()
	defer v.upMu.Unlock()
	v.mu.Lock()
	v.sm.ToUpstream()
	v.mu.Unlock()
	return r.send(&r.up, b)
}

// fromUpstream applies the upstream leg's stream management and queues
// the stanzas that go to the client itself (toClient); it returns only
// other units to forward.
func (v *session2) fromUpstream(r *relay, raw []byte) []byte {
	name, xmlns := stream.ElementName(raw)
	if string(xmlns) == ns.SM {
		v.upstreamSM(r, string(name), raw)
		return nil
	}
	if !stream.IsStanza(name) {
		return raw
	}
	v.mu.Lock()
	upSeq := v.sm.FromUpstream()
	v.mu.Unlock()
	if v.abandoned.late(name, raw) || string(name) == "iq" && (v.probes.answer(raw) || v.answerProbe(r, raw)) {
		v.upstreamHandled(upSeq)
		return nil
	}
	if v.recheckTakes(r, name, raw, upSeq) {
		return nil
	}
	if v.catchup != nil && v.catchUpTakes(r, name, raw, upSeq) {
		return nil
	}
	if string(name) == "message" {
		if !v.routeInOrder(r, raw, upSeq) { // delivered elsewhere only, held, or dropped
			v.upstreamHandled(upSeq)
		}
		return nil
	}
	defer v.inOrder()()
	v.toClientFromUpstream(r, raw, upSeq)
	return nil
}

// routeInOrder routes a message from this session's upstream leg and
// queues this session's copy, all under the account's delivery lock (see
// account.deliverMu). It reports whether this session's client got a copy.
func (v *session2) routeInOrder(r *relay, raw []byte, upSeq uint32) bool {
	if acc := v.acc; acc != nil {
		acc.deliverMu.Lock()
		defer acc.deliverMu.Unlock()
	}
	out := v.route(r, raw)
	if out == nil {
		return false
	}
	defer v.inOrder()()
	v.toClientFromUpstream(r, out, upSeq)
	return true
}
