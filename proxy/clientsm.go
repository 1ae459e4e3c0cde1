package proxy

import (
	"errors"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// The client leg's stream management is the pure state machine in package
// sm; this file wires it to the relay. Every call runs under v.mu, and so
// does handing a counted stanza to the client's queue, so that numbers
// follow queue order whichever goroutine delivers.

var requestAck = sm.AppendRequest(nil)

// newClientSM returns the client leg's machine for a session whose
// upstream leg is as setup left it.
func newClientSM(bs *bindOutcome, maxUnacked int) *sm.Machine {
	return sm.New(sm.Config{
		UpstreamSM:       bs.smID != "",
		UpstreamReceived: bs.upIn,
		UpstreamSent:     bs.upOut,
		MaxUnacked:       maxUnacked,
	})
}

// enableSM turns on the client leg's stream management. Resumption is
// offered whenever SM is enabled, as the contract's <enabled resume='true'/>
// says, whether or not the client's <enable/> asked: the resumption cache
// always holds what detaches (it makes room within the account's share),
// so the promise can be kept. Called with v.mu held.
func (v *session2) enableSM() ([]byte, error) {
	resume, err := v.sm.Enable(true, true)
	if err != nil {
		return nil, err
	}
	v.smID = newStreamID()
	return sm.AppendEnabled(nil, v.smID, resume), nil
}

// clientSM answers the client's stream management elements.
func (v *session2) clientSM(r *relay, name string, raw []byte) {
	var toClient, toUp []byte
	var fatal *stream.Error
	v.mu.Lock()
	switch name {
	case "r":
		reply, _ := v.sm.ClientRequest() // without SM enabled: no answer
		if reply.Client.Send {
			toClient = sm.AppendAck(nil, reply.Client.H)
		}
		if reply.AskUpstream {
			toUp = requestAck
		}
	case "a":
		ack, err := v.clientAck(raw)
		fatal = err
		if ack.Send {
			toUp = sm.AppendAck(nil, ack.H)
		}
	case "enable":
		enabled, err := v.enableSM()
		if err != nil {
			toClient = sm.AppendFailed(nil, "unexpected-request")
			break
		}
		toClient = enabled
	default: // resume on a live stream, or anything else
		toClient = sm.AppendFailed(nil, "unexpected-request")
	}
	v.mu.Unlock()
	if fatal != nil {
		r.s.log.Info("stream management error from the client", "err", fatal.Text)
		r.terminate(fatal, true)
		return
	}
	if toClient != nil {
		r.send(&r.client, toClient)
	}
	if toUp != nil {
		r.send(&r.up, toUp)
	}
	if name == "a" {
		v.pokeCatchup(r) // the client took what it acked
	}
}

// clientAck applies the client's <a/>. A bad h is the stream error of
// XEP-0198 section 4. Called with v.mu held.
func (v *session2) clientAck(raw []byte) (sm.Ack, *stream.Error) {
	h, err := sm.ParseH(stream.AttrBytes(raw, "h"))
	if err != nil {
		return sm.Ack{}, stream.NewError(stream.CondBadFormat, "the h of <a/> is not a number")
	}
	ack, err := v.sm.ClientAck(h)
	var ae *sm.AckError
	switch {
	case errors.As(err, &ae):
		se := stream.NewError(stream.CondUndefinedCondition, ae.Error())
		if !ae.Backwards() {
			se.App = sm.AppendHandledCountTooHigh(nil, ae.H, ae.Sent)
		}
		return sm.Ack{}, se
	case err != nil:
		return sm.Ack{}, nil // not enabled: nothing to ack
	}
	return ack, nil
}

// upstreamSM answers the upstream's <r/> with what is done on the client
// leg, and applies its <a/>: that may answer the client's waiting <r/>, or
// complete a resumption that waited for it.
func (v *session2) upstreamSM(r *relay, name string, raw []byte) {
	var toUp, toClient []byte
	v.mu.Lock()
	switch name {
	case "r":
		toUp = sm.AppendAck(nil, v.sm.AnswerUpstream())
	case "a":
		h, err := sm.ParseH(stream.AttrBytes(raw, "h"))
		if err != nil {
			break
		}
		reply, err := v.sm.UpstreamAck(h)
		if err != nil {
			r.s.log.Warn("bad ack from the upstream", "err", err)
			break
		}
		if reply.Client.Send {
			toClient = sm.AppendAck(nil, reply.Client.H)
		}
		if reply.Resumed != nil && v.resuming != nil {
			v.resuming <- *reply.Resumed
			v.resuming = nil
		}
		if v.drained != nil && v.sm.Counts().InFlight == 0 {
			close(v.drained)
			v.drained = nil
		}
	}
	v.mu.Unlock()
	if toUp != nil {
		r.send(&r.up, toUp)
	}
	if toClient != nil {
		r.send(&r.client, toClient)
	}
}

// clientStanza counts a stanza from the client; forwarded says whether it
// goes upstream or was answered here. It returns the bytes to forward
// (with an <r/> after them when the upstream should be asked); ok is
// false when the session must end.
func (v *session2) clientStanza(r *relay, out []byte, forwarded bool) (_ []byte, ok bool) {
	v.mu.Lock()
	in, err := v.sm.ClientStanza(forwarded)
	v.mu.Unlock()
	if err != nil {
		r.terminate(stream.NewError(stream.CondPolicyViolation, "too many stanzas waiting for the server"), true)
		return nil, false
	}
	if in.AskUpstream {
		out = append(append(make([]byte, 0, len(out)+len(requestAck)), out...), requestAck...)
	}
	return out, true
}

// toClient writes a stanza that did not come from this session's upstream
// leg: delivered from a sibling, or written by the proxy (a bounce).
func (v *session2) toClient(r *relay, out []byte) { v.queueForClient(r, out, 0, false) }

// toClientFromUpstream writes upstream stanza upSeq to the client.
func (v *session2) toClientFromUpstream(r *relay, out []byte, upSeq uint32) {
	v.queueForClient(r, out, upSeq, true)
}

// upstreamHandled says upstream stanza upSeq never goes to this client.
func (v *session2) upstreamHandled(upSeq uint32) {
	v.mu.Lock()
	_ = v.sm.UpstreamHandled(upSeq)
	v.mu.Unlock()
}

// queueForClient counts a stanza on the client leg, keeps it for replay
// until acked, and queues it, all under v.mu (see the file comment).
// While detached the stanza is only kept.
func (v *session2) queueForClient(r *relay, out []byte, upSeq uint32, fromUpstream bool) {
	queued := true
	v.mu.Lock()
	var q sm.Queued
	var err error
	if fromUpstream {
		q, err = v.sm.QueueFromUpstream(out, upSeq)
	} else {
		q, err = v.sm.Queue(out)
	}
	if err == nil && q.Write {
		if q.Raw == nil {
			q.Raw = append([]byte(nil), out...) // out may be the framer's buffer
		}
		queued = r.client.out.offer(q.Raw, r.client.spillMax)
		if queued && q.AskClient {
			queued = r.client.out.offer(requestAck, r.client.spillMax)
		}
	}
	v.mu.Unlock()
	switch {
	case errors.Is(err, sm.ErrOverflow):
		r.terminate(stream.NewError(stream.CondPolicyViolation, "too many unacknowledged stanzas"), true)
	case err != nil:
		r.s.log.Error("stream management out of step", "err", err)
	case !queued:
		r.clientTooSlow()
	default:
		r.kick(&r.client)
	}
}

// smDetach moves the client leg's stream management to detached if the
// session can be resumed; ask says to ask the upstream for an ack of the
// client's stanzas in flight.
func (v *session2) smDetach() (ok, ask bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sm.State() != sm.StateLive && v.sm.State() != sm.StateResuming {
		return false, false
	}
	ask, err := v.sm.Detach()
	return err == nil, ask
}

// smEnabled reports whether the client enabled stream management.
func (v *session2) smEnabled() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sm.State() != sm.StateOff
}

// resumeWait bounds how long a resumption waits for the upstream to ack
// the client's stanzas still in flight.
func (s *Server) resumeWait() time.Duration { return s.cfg.Timeouts.SetupStep }

// resume reattaches the session for a client that handled h stanzas.
// When client stanzas are still in flight upstream, it waits for the
// upstream's ack, so <resumed h/> never covers what the upstream might
// still lose. It reports false when the session cannot resume.
func (v *session2) resume(r *relay, h uint32) (sm.Resumption, bool) {
	v.mu.Lock()
	res, err := v.sm.Resume(h)
	var wait chan sm.Resumption
	if err == nil && !res.Ready {
		wait = make(chan sm.Resumption, 1)
		v.resuming = wait
	}
	v.mu.Unlock()
	if err != nil {
		r.s.log.Info("resumption refused", "err", err)
		return res, false
	}
	if res.Upstream.Send {
		r.send(&r.up, sm.AppendAck(nil, res.Upstream.H))
	}
	if res.Ready {
		return res, true
	}
	if res.AskUpstream {
		r.send(&r.up, requestAck)
	}
	t := time.NewTimer(r.s.srv.resumeWait())
	defer t.Stop()
	select {
	case ready := <-wait:
		return ready, true
	case <-t.C:
	case <-r.s.ctx.Done():
	}
	v.mu.Lock()
	v.resuming = nil
	_, _ = v.sm.Detach() // give this attempt up
	v.mu.Unlock()
	r.s.log.Info("resumption gave up waiting for the upstream's ack")
	return sm.Resumption{}, false
}
