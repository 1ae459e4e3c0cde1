package proxy

import (
	"bytes"
	"strconv"
)

// smState is one leg's XEP-0198 counters as seen by the proxy.
type smState struct {
	id  string
	in  uint32 // stanzas received on this leg
	out uint32 // stanzas sent on this leg
}

// inFlight is one client stanza on its way: its number on the client leg
// and on the upstream leg (0 when the proxy answered it itself).
type inFlight struct {
	client, up uint32
}

// clientStanza counts a stanza from the client; forwarded says whether it
// goes upstream (and so waits for the upstream's ack) or was answered here.
func (v *session2) clientStanza(forwarded bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client != nil {
		v.client.in++
	}
	if v.up == nil || v.client == nil {
		if v.client != nil {
			v.clientDone = v.client.in // nothing upstream to wait for
		}
		return
	}
	f := inFlight{client: v.client.in}
	if forwarded {
		v.upSent++
		f.up = v.upSent
	}
	v.inFlight = append(v.inFlight, f)
	v.settle(0)
}

// upstreamAcked applies the upstream's h: the client's stanzas up to the
// last one the upstream has, and those answered here right after them,
// are done. Called with v.mu held.
func (v *session2) upstreamAcked(h uint32) { v.settle(h) }

// settle pops in-flight stanzas that are done: acked upstream (up <= h) or
// answered here, in order, so nothing is acked before what precedes it.
func (v *session2) settle(h uint32) {
	if h > v.upAcked {
		v.upAcked = h
	}
	i := 0
	for ; i < len(v.inFlight); i++ {
		f := v.inFlight[i]
		if f.up != 0 && f.up > v.upAcked {
			break
		}
		v.clientDone = f.client
	}
	v.inFlight = v.inFlight[i:]
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
		if h, err := strconv.ParseUint(attrString(raw, "h"), 10, 32); err == nil {
			if upH, advanced := v.clientAcked(uint32(h)); advanced {
				upReply = appendAck(nil, upH)
			}
		}
	case "enable":
		if v.client == nil {
			v.client = &smState{id: newStreamID()}
			resume := attrString(raw, "resume")
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

// upstreamSM answers the upstream's <r/> with what the client acked, and
// turns the upstream's <a/> into the answer to the client's pending <r/>.
func (v *session2) upstreamSM(r *relay, name string, raw []byte) {
	v.mu.Lock()
	var toUp, toClient []byte
	switch name {
	case "r":
		toUp = appendAck(nil, v.upDone)
	case "a":
		h, err := strconv.ParseUint(attrString(raw, "h"), 10, 32)
		if err == nil {
			v.upstreamAcked(uint32(h))
		}
		if err == nil && v.clientAsked > 0 && v.client != nil {
			toClient = appendAck(nil, v.clientDone)
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

func appendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+nsSM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

func smFailed(condition string) []byte {
	return []byte("<failed xmlns='" + nsSM + "'><" + condition + " xmlns='" + nsStanzas + "'/></failed>")
}
