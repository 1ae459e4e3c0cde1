package sm

import (
	"bytes"
	"errors"
	"fmt"
)

func (s *sim) clientAck() error {
	to := s.acked + s.c.IntN(s.got-s.acked+1)
	h := s.cfg.clientStart + uint32(to)
	before := s.upDonePrefix
	a, err := s.m.ClientAck(h)
	if err != nil {
		return fmt.Errorf("ClientAck(%d) after reading %d: %v", h, s.got, err)
	}
	s.release(to)
	return s.checkUpstreamAck("ClientAck", a, before)
}

func (s *sim) checkUpstreamAck(op string, a Ack, before uint32) error {
	if a.Send != (s.upSM && s.upDonePrefix != before) || (a.Send && a.H != s.upDonePrefix) {
		return fmt.Errorf("%s: upstream ack %+v, model done %d (was %d)", op, a, s.upDonePrefix, before)
	}
	return nil
}

// badClientAck: an h above what was sent, or below the last one, is
// refused and changes nothing.
func (s *sim) badClientAck() error {
	backwards := s.acked > 0 && s.c.IntN(2) == 0
	h := s.cfg.clientStart + uint32(len(s.queued)+1+s.c.IntN(1000))
	if backwards {
		h = s.cfg.clientStart + uint32(s.acked-1-s.c.IntN(s.acked))
	}
	before := s.m.Counts()
	_, err := s.m.ClientAck(h)
	var ae *AckError
	switch {
	case !errors.As(err, &ae) || ae.Upstream || ae.H != h:
		return fmt.Errorf("bad h %d: %v", h, err)
	case backwards != errors.Is(err, ErrAckBackwards) || backwards == errors.Is(err, ErrHandledCountTooHigh):
		return fmt.Errorf("bad h %d (backwards %v): %v", h, backwards, err)
	case ae.Sent != s.cfg.clientStart+uint32(len(s.queued)) || ae.Acked != s.cfg.clientStart+uint32(s.acked):
		return fmt.Errorf("bad h %d: %+v", h, ae)
	case s.m.Counts() != before:
		return fmt.Errorf("a refused h %d changed the counters", h)
	}
	return nil
}

func (s *sim) clientStanza(forwarded bool) error {
	before := s.m.Counts()
	in, err := s.m.ClientStanza(forwarded)
	overflow := s.enabled && s.upSM && before.InFlight >= s.cfg.MaxInFlight
	switch {
	case overflow != errors.Is(err, ErrOverflow):
		return fmt.Errorf("client stanza with %d in flight: %v", before.InFlight, err)
	case overflow:
		s.over = true
		return nil
	case err != nil:
		return err
	}
	var up uint32
	if forwarded && s.upSM {
		s.upGot++
		up = s.upGot
	}
	if s.enabled {
		s.stanzas = append(s.stanzas, clientStanza{forwarded: forwarded, up: up})
		s.settle()
	}
	if in.AskUpstream {
		if !forwarded || !s.upSM {
			return errors.New("asked the upstream after a stanza that did not go there")
		}
		s.asked()
	}
	return nil
}

// covered is the last upstream number a request or an ack covers.
func (s *sim) covered() uint32 {
	if after(s.upRequestedAt, s.upAcked) {
		return s.upRequestedAt
	}
	return s.upAcked
}

func (s *sim) asked() { s.upAsked, s.upRequestedAt = true, s.upGot }

// settle is the model of which client stanzas are handled.
func (s *sim) settle() {
	for ; s.handled < len(s.stanzas); s.handled++ {
		if st := s.stanzas[s.handled]; s.upSM && st.forwarded && after(st.up, s.upAcked) {
			break
		}
	}
}

func (s *sim) inFlight() bool { return s.handled < len(s.stanzas) }

func (s *sim) clientRequest() error {
	r, err := s.m.ClientRequest()
	if err != nil {
		return err
	}
	if r.Client.Send == s.inFlight() {
		return fmt.Errorf("<r/> with stanzas in flight %v answered at once %v", s.inFlight(), r.Client.Send)
	}
	if r.Client.Send {
		return s.answer(r.Client.H)
	}
	s.waiting = true
	if r.AskUpstream {
		s.asked()
	} else if s.covered() != s.upGot {
		return errors.New("a waiting <r/> did not ask the upstream, and no request covers what is in flight")
	}
	return nil
}

// answer checks an h given to the client: never more than it sent, never
// backwards, never a stanza the upstream has not acked, and exactly the
// stanzas handled.
func (s *sim) answer(h uint32) error {
	n := int(h - s.cfg.clientStart)
	switch {
	case n > len(s.stanzas):
		return fmt.Errorf("h=%d answers %d of %d client stanzas", h, n, len(s.stanzas))
	case n < s.lastAnswer:
		return fmt.Errorf("h answer went back from %d to %d", s.lastAnswer, n)
	case n != s.handled:
		return fmt.Errorf("h answers %d, model handled %d", n, s.handled)
	}
	for i, st := range s.stanzas[s.lastAnswer:n] {
		if s.upSM && st.forwarded && after(st.up, s.upAcked) {
			return fmt.Errorf("h=%d covers client stanza %d, upstream %d, which the upstream (h=%d) has not acked", h, s.lastAnswer+i, st.up, s.upAcked)
		}
	}
	s.lastAnswer = n
	return nil
}

func (s *sim) upstreamAck() error {
	return s.ackUpstream(s.upAcked + uint32(s.c.IntN(int(s.upGot-s.upAcked)+1)))
}

func (s *sim) ackUpstream(h uint32) error {
	r, err := s.m.UpstreamAck(h)
	if err != nil {
		return fmt.Errorf("UpstreamAck(%d) with %d sent: %v", h, s.upGot, err)
	}
	s.upAcked = h
	if h == s.upGot {
		s.upAsked = false
	}
	s.settle()
	if r.Client.Send != (s.waiting && s.connected) {
		return fmt.Errorf("upstream <a/>: client answer %+v while waiting %v", r.Client, s.waiting)
	}
	if r.Client.Send {
		s.waiting = false
		if err := s.answer(r.Client.H); err != nil {
			return err
		}
	}
	ready := s.resuming && !s.inFlight()
	if (r.Resumed != nil) != ready {
		return fmt.Errorf("upstream <a/>: resumed %v, want %v", r.Resumed != nil, ready)
	}
	if ready {
		return s.resumed(*r.Resumed)
	}
	return nil
}

func (s *sim) badUpstreamAck() error {
	h := s.upGot + 1 + uint32(s.c.IntN(1000))
	if s.c.IntN(2) == 0 {
		h = s.upAcked - 1 - uint32(s.c.IntN(5))
	}
	before := s.m.Counts()
	_, err := s.m.UpstreamAck(h)
	var ae *AckError
	if !errors.As(err, &ae) || !ae.Upstream || s.m.Counts() != before {
		return fmt.Errorf("bad upstream h %d (acked %d, sent %d): %v", h, s.upAcked, s.upGot, err)
	}
	return nil
}

func (s *sim) detach() error {
	ask, err := s.m.Detach()
	if !s.m.Resumable() {
		if !errors.Is(err, ErrNotResumable) {
			return fmt.Errorf("Detach without a promise: %v", err)
		}
		s.over = true // the caller ends the session
		return nil
	}
	if err != nil {
		return err
	}
	if want := s.inFlight() && s.covered() != s.upGot; ask != want {
		return fmt.Errorf("Detach asked upstream %v, want %v", ask, want)
	}
	if ask {
		s.asked()
	}
	s.connected, s.resuming, s.wire, s.waiting = false, false, nil, false
	return nil
}

func (s *sim) resume() error {
	if s.c.IntN(4) == 0 {
		h := s.cfg.clientStart + uint32(len(s.queued)+1+s.c.IntN(50))
		before := s.m.Counts()
		if _, err := s.m.Resume(h); !errors.Is(err, ErrHandledCountTooHigh) || s.m.Counts() != before || s.m.State() != StateDetached {
			return fmt.Errorf("resume with too high h %d: %v", h, err)
		}
	}
	before := s.upDonePrefix
	r, err := s.m.Resume(s.cfg.clientStart + uint32(s.got))
	if err != nil {
		return fmt.Errorf("Resume(%d): %v", s.got, err)
	}
	s.release(s.got)
	if err := s.checkUpstreamAck("Resume", r.Upstream, before); err != nil {
		return err
	}
	if r.Ready {
		return s.resumed(r)
	}
	if !s.inFlight() {
		return errors.New("resumption waits with nothing in flight")
	}
	if want := s.covered() != s.upGot; r.AskUpstream != want {
		return fmt.Errorf("waiting resumption asked upstream %v, want %v", r.AskUpstream, want)
	}
	if r.AskUpstream {
		s.asked()
	}
	s.resuming = true
	return nil
}

// resumed checks a ready resumption: it answers with every client stanza
// handled and replays exactly the unacked stanzas, in order.
func (s *sim) resumed(r Resumption) error {
	if err := s.answer(r.H); err != nil {
		return fmt.Errorf("resumed: %w", err)
	}
	if s.inFlight() {
		return errors.New("resumed with client stanzas still in flight")
	}
	if len(r.Replay) != len(s.queued)-s.acked || r.AskClient != (len(r.Replay) > 0) {
		return fmt.Errorf("replay of %d (ask %v), want %d", len(r.Replay), r.AskClient, len(s.queued)-s.acked)
	}
	s.wire = s.wire[:0]
	for i, st := range r.Replay {
		it := s.queued[s.acked+i]
		if st.Seq != s.seq(s.acked+i) || !bytes.Equal(st.Raw, it.raw) || st.FromUpstream != it.fromUp || st.UpstreamSeq != it.up {
			return fmt.Errorf("replay[%d] = seq %d %q, want seq %d %q", i, st.Seq, st.Raw, s.seq(s.acked+i), it.raw)
		}
		s.wire = append(s.wire, s.acked+i)
	}
	s.got = s.acked
	s.connected, s.resuming = true, false
	return nil
}
