package sm

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The properties, over random interleavings of stanzas both ways, client
// and upstream acks (valid and not), requests, caller holds, detaching and
// resuming, with every counter starting near 2^32:
//
//   - nothing queued is lost or duplicated: the client reads the stanzas
//     in queue order, each once; the machine keeps exactly those its valid
//     h has not covered, and a resumption replays exactly those, in order;
//   - sequence numbers follow queue order across the wrap;
//   - the upstream's h is exactly the run of upstream stanzas done from
//     the start: it never goes backwards and never exceeds what the
//     upstream sent;
//   - an h given to the client never covers a stanza the upstream has not
//     acked, never goes backwards, and a resumption answers with every
//     client stanza handled;
//   - invalid h values are refused and change nothing;
//   - the lists stay within their caps, overflow exactly at the cap, and a
//     failed machine refuses everything after;
//   - forwarded stanzas not covered by an upstream request or ack stay
//     below Config.RequestEvery;
//   - at the end, a client that comes back and reads and acks everything
//     has got every stanza exactly once, and every upstream stanza is
//     done.
func TestPropertyNothingLost(t *testing.T) {
	seeds := 3000
	if testing.Short() {
		seeds = 300
	}
	for seed := range uint64(seeds) {
		c := rand.New(rand.NewPCG(seed, 0x5eed5eed))
		if err := runSim(c, 400); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func FuzzInterleavings(f *testing.F) {
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{1, 2, 3, 5, 7, 11, 13}, 40))
	f.Add(bytes.Repeat([]byte{13, 0, 9, 16, 14, 6, 11, 7}, 60))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := runSim(&byteChooser{data: data}, 1<<20); err != nil {
			t.Fatal(err)
		}
	})
}

// byteChooser takes choices from fuzz input; exhausted, it says 0.
type byteChooser struct {
	data []byte
	used bool
}

func (b *byteChooser) IntN(n int) int {
	if len(b.data) == 0 {
		b.used = true
		return 0
	}
	v := int(b.data[0])
	b.data = b.data[1:]
	if n > 256 && len(b.data) > 0 {
		v = v<<8 | int(b.data[0])
		b.data = b.data[1:]
	}
	return v % n
}

func runSim(c chooser, steps int) error {
	s := newSim(c)
	exhausted := func() bool { b, ok := c.(*byteChooser); return ok && b.used }
	for i := 0; i < steps && !s.over && !exhausted(); i++ {
		if err := s.step(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("after step %d: %w", i, err)
		}
	}
	if s.over {
		return s.checkEnded()
	}
	return s.drain()
}

// check verifies the invariants that hold between any two events.
func (s *sim) check() error {
	c := s.m.Counts()
	want := StateDetached
	switch {
	case s.over:
		return nil
	case !s.enabled:
		want = StateOff
	case s.connected:
		want = StateLive
	case s.resuming:
		want = StateResuming
	}
	if s.m.State() != want {
		return fmt.Errorf("state %v, want %v", s.m.State(), want)
	}
	if c.Unacked > s.cfg.MaxUnacked || c.UnackedBytes > s.cfg.MaxUnackedBytes || c.InFlight > s.cfg.MaxInFlight {
		return fmt.Errorf("over a cap: %+v", c)
	}
	if s.enabled {
		if err := s.checkClientLeg(c); err != nil {
			return err
		}
	}
	if s.upSM {
		return s.checkUpstreamLeg(c)
	}
	return nil
}

func (s *sim) checkClientLeg(c Counts) error {
	start := s.cfg.clientStart
	switch {
	case c.Sent != start+uint32(len(s.queued)) || c.Acked != start+uint32(s.acked) || s.acked > s.got:
		return fmt.Errorf("sent %d acked %d, model %d queued %d acked %d read", c.Sent, c.Acked, len(s.queued), s.acked, s.got)
	case c.Received != start+uint32(len(s.stanzas)) || c.Handled != start+uint32(s.handled):
		return fmt.Errorf("received %d handled %d, model %d and %d", c.Received, c.Handled, len(s.stanzas), s.handled)
	case c.InFlight != len(s.stanzas)-s.handled:
		return fmt.Errorf("%d in flight, model %d", c.InFlight, len(s.stanzas)-s.handled)
	}
	// Nothing lost: what the client's h has not covered is kept, in order.
	kept, size := s.m.unacked, 0
	if len(kept) != len(s.queued)-s.acked {
		return fmt.Errorf("keeps %d stanzas, want %d", len(kept), len(s.queued)-s.acked)
	}
	for i, st := range kept {
		if st.Seq != s.seq(s.acked+i) || !bytes.Equal(st.Raw, s.queued[s.acked+i].raw) {
			return fmt.Errorf("kept[%d] is seq %d, want %d", i, st.Seq, s.seq(s.acked+i))
		}
		size += len(st.Raw)
	}
	if size != c.UnackedBytes {
		return fmt.Errorf("counts %d unacked bytes, keeps %d", c.UnackedBytes, size)
	}
	uncovered := 0
	for _, st := range s.stanzas[s.handled:] {
		if s.upSM && st.forwarded && after(st.up, s.covered()) {
			uncovered++
		}
	}
	if uncovered >= s.cfg.RequestEvery {
		return fmt.Errorf("%d forwarded stanzas in flight without a request (every %d)", uncovered, s.cfg.RequestEvery)
	}
	return nil
}

func (s *sim) checkUpstreamLeg(c Counts) error {
	pending := len(s.held)
	if s.enabled {
		for _, it := range s.queued[s.acked:] {
			if it.fromUp {
				pending++
			}
		}
	}
	switch {
	case c.UpstreamDone != s.upDonePrefix || s.m.AnswerUpstream() != c.UpstreamDone:
		return fmt.Errorf("upstream done %d, model %d", c.UpstreamDone, s.upDonePrefix)
	case after(c.UpstreamDone, s.upSentN):
		return fmt.Errorf("upstream done %d beyond the %d it sent", c.UpstreamDone, s.upSentN)
	case after(s.lastUpDone, c.UpstreamDone):
		return fmt.Errorf("upstream done went back from %d to %d", s.lastUpDone, c.UpstreamDone)
	case c.UpstreamReceived != s.upSentN || c.UpstreamSent != s.upGot || c.UpstreamAcked != s.upAcked:
		return fmt.Errorf("upstream counters %+v, model received %d sent %d acked %d", c, s.upSentN, s.upGot, s.upAcked)
	case c.UpstreamPending != pending:
		return fmt.Errorf("%d upstream stanzas pending, model %d", c.UpstreamPending, pending)
	}
	s.lastUpDone = c.UpstreamDone
	return nil
}

// checkEnded: a session past a cap refuses everything after.
func (s *sim) checkEnded() error {
	if s.m.State() != StateFailed {
		return nil // ended for want of a resumption promise
	}
	before := s.m.Counts()
	_, err1 := s.m.Queue([]byte("<message/>"))
	_, err2 := s.m.ClientStanza(true)
	_, err3 := s.m.Resume(before.Acked)
	_, err4 := s.m.Detach()
	for _, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrOverflow) {
			return fmt.Errorf("failed machine answered %v", err)
		}
	}
	if s.m.Counts() != before {
		return errors.New("a failed machine changed")
	}
	return nil
}

// drain brings the client back, reads and acks everything, and checks
// that every stanza arrived exactly once and every upstream one is done.
func (s *sim) drain() error {
	for len(s.held) > 0 && !s.over {
		n := s.held[0]
		s.held = s.held[1:]
		if err := s.queue(&n, true); err != nil {
			return err
		}
	}
	if s.over {
		return s.checkEnded()
	}
	if s.upSM {
		if err := s.ackUpstream(s.upGot); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	if s.enabled && !s.connected && !s.resuming {
		if err := s.resume(); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	if s.resuming {
		if err := s.ackUpstream(s.upGot); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	if err := s.read(len(s.wire)); err != nil {
		return err
	}
	if s.enabled {
		before := s.upDonePrefix
		a, err := s.m.ClientAck(s.cfg.clientStart + uint32(s.got))
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		s.release(s.got)
		if err := s.checkUpstreamAck("drain", a, before); err != nil {
			return err
		}
		if s.got != len(s.queued) || s.handled != len(s.stanzas) {
			return fmt.Errorf("drain: client read %d of %d, %d of %d handled", s.got, len(s.queued), s.handled, len(s.stanzas))
		}
	}
	if s.upSM && s.upDonePrefix != s.upSentN {
		return fmt.Errorf("drain: upstream done %d of %d", s.upDonePrefix, s.upSentN)
	}
	return s.check()
}
