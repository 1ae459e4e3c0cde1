package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
}

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
	return true, s.bringOnline(a, additional)
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
func (s *session) bringOnline(a *authenticate, additional string) error {
	bs, st, err := s.replayBind(a)
	if err != nil {
		return err
	}
	v2 := &session2{jid: bs.jid}
	if bs.smID != "" {
		v2.up = &smState{id: bs.smID, in: bs.upIn}
	}
	if a.Bind != nil && a.Bind.SM != nil {
		v2.client = &smState{id: newStreamID()}
	}
	s.v2 = v2
	s.fr.SetLimits(Limits{MaxBytes: s.srv.cfg.Limits.MaxStanzaBytes, MaxDepth: s.srv.cfg.Limits.MaxDepth})
	b := appendSuccess(nil, additional, bs, st, v2.client)
	b = append(b, "<stream:features/>"...)
	b, n := st.appendCatchup(b, bareJID(bs.jid))
	if v2.client != nil {
		v2.client.out += n
	}
	s.log.Info("2.0 session online", "jid", bs.jid, "sm", v2.client != nil, "carbons", bs.carbons)
	return s.writeClient(b)
}

// fromClient applies the client leg's stream management and reports
// whether the unit goes upstream.
func (v *session2) fromClient(r *relay, raw []byte) bool {
	name, xmlns := elementName(raw)
	if string(xmlns) == nsSM {
		v.clientSM(r, string(name))
		return false
	}
	if isStanza(name) {
		v.mu.Lock()
		if v.client != nil {
			v.client.in++
		}
		if v.up != nil {
			v.up.out++
		}
		v.mu.Unlock()
	}
	return true
}

func (v *session2) clientSM(r *relay, name string) {
	v.mu.Lock()
	var reply []byte
	switch name {
	case "r":
		if v.client != nil {
			reply = appendAck(nil, v.client.in)
		}
	case "a":
		// Acks are the basis of resumption, which is not offered yet.
	case "enable":
		if v.client == nil {
			v.client = &smState{id: newStreamID()}
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
}

// fromUpstream applies the upstream leg's stream management and reports
// whether the unit goes to the client.
func (v *session2) fromUpstream(r *relay, raw []byte) bool {
	name, xmlns := elementName(raw)
	if string(xmlns) == nsSM {
		if string(name) == "r" {
			v.mu.Lock()
			var h uint32
			if v.up != nil {
				h = v.up.in
			}
			v.mu.Unlock()
			r.send(&r.up, appendAck(nil, h))
		}
		return false
	}
	if isStanza(name) {
		v.mu.Lock()
		if v.up != nil {
			v.up.in++
		}
		if v.client != nil {
			v.client.out++
		}
		v.mu.Unlock()
	}
	return true
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
