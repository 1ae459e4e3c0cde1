package sm

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// chooser makes the simulation's choices: math/rand/v2 for the property
// test, the fuzzer's bytes for the fuzz test.
type chooser interface{ IntN(n int) int }

// sim is the proxy around a Machine, plus a model of the client and of the
// upstream server: every call's answer is checked against what the model
// says XEP-0198 requires, and the invariants after every step.
type sim struct {
	c    chooser
	m    *Machine
	cfg  Config
	upSM bool
	over bool // the session ended (overflow, or not resumable)
	// enableAt counts the steps before the client enables stream
	// management; some runs never do.
	enableAt int

	// The caller: upstream stanzas it holds before routing (a catch-up
	// hold), in any order.
	held []uint32

	// Client leg, to the client, counted from Enable on.
	enabled   bool
	queued    []queuedItem // every stanza the machine accepted, in order
	connected bool         // a live client connection
	resuming  bool         // a new connection waits for the upstream's ack
	wire      []int        // indexes into queued, written and not yet read
	got       int          // the client read queued[:got], exactly once each
	acked     int          // its valid h covers queued[:acked]
	nextID    int

	// Client leg, from the client.
	stanzas    []clientStanza // client stanzas counted, from Enable on
	handled    int            // model: stanzas[:handled] are handled
	waiting    bool           // the client's <r/> waits for the upstream
	lastAnswer int            // the highest h the client was given

	// Upstream leg.
	upGot, upAcked uint32 // the upstream's count of what it received, its last h
	upAsked        bool   // the proxy asked and the upstream has not answered
	upRequestedAt  uint32 // upGot when the proxy last asked
	upSentN        uint32 // stanzas the upstream sent the proxy
	upDone         map[uint32]bool
	upDonePrefix   uint32 // model: every upstream number up to it is done
	lastUpDone     uint32 // the machine's upstream done at the last check
}

type queuedItem struct {
	raw    []byte
	fromUp bool
	up     uint32
}

type clientStanza struct {
	forwarded bool
	up        uint32
}

// newSim starts every counter near 2^32, so most runs cross the wrap.
func newSim(c chooser) *sim {
	near := func() uint32 { return uint32(1<<32 - c.IntN(400)) }
	upSent := near()
	cfg := Config{
		UpstreamSM:       c.IntN(5) != 0,
		UpstreamReceived: near(),
		UpstreamSent:     upSent,
		UpstreamAcked:    upSent - uint32(c.IntN(4)),
		RequestEvery:     1 + c.IntN(20),
		MaxUnacked:       5 + c.IntN(120),
		MaxUnackedBytes:  200 + c.IntN(4000),
		MaxInFlight:      3 + c.IntN(60),
		clientStart:      near(),
	}
	return &sim{
		c: c, m: New(cfg), cfg: cfg, upSM: cfg.UpstreamSM, connected: true,
		upGot: cfg.UpstreamSent, upAcked: cfg.UpstreamAcked, upRequestedAt: cfg.UpstreamAcked,
		upSentN: cfg.UpstreamReceived, upDone: map[uint32]bool{}, upDonePrefix: cfg.UpstreamReceived,
		lastUpDone: cfg.UpstreamReceived, enableAt: c.IntN(40) - 5, // below 0: never
	}
}

func (s *sim) seq(i int) uint32 { return s.cfg.clientStart + uint32(i) + 1 }

// step runs one random event and returns what went wrong, if anything.
func (s *sim) step() error {
	if !s.enabled && s.enableAt == 0 {
		return s.enable()
	}
	s.enableAt--
	switch op := s.c.IntN(17); {
	case op <= 2:
		return s.fromUpstream()
	case op == 3 && len(s.held) > 0:
		i := s.c.IntN(len(s.held))
		n := s.held[i]
		s.held = append(s.held[:i], s.held[i+1:]...)
		return s.route(n)
	case op <= 5:
		return s.queue(nil, false)
	case op == 6 && s.connected:
		return s.read(1 + s.c.IntN(8))
	case op == 7 && s.connected && s.enabled:
		return s.clientAck()
	case op == 8 && s.connected && s.enabled:
		return s.badClientAck()
	case op == 9 && s.connected:
		return s.clientStanza(s.c.IntN(4) != 0)
	case op == 10 && s.connected && s.enabled:
		return s.clientRequest()
	case op == 11 && s.upSM:
		return s.upstreamAck()
	case op == 12:
		if s.upSM && s.m.ToUpstream() != s.upGot+1 {
			return errors.New("ToUpstream numbered out of order")
		}
		if s.upSM {
			s.upGot++
		}
		return nil
	case op == 13 && s.enabled && (s.connected || s.resuming) && s.c.IntN(3) == 0:
		return s.detach()
	case op == 14 && s.enabled && !s.connected && !s.resuming:
		return s.resume()
	case op == 15 && s.upSM:
		return s.badUpstreamAck()
	case op == 16 && s.upSM && s.upAsked:
		return s.ackUpstream(s.upGot)
	}
	return nil
}

func (s *sim) enable() error {
	promised, err := s.m.Enable(s.c.IntN(8) != 0, s.c.IntN(8) != 0)
	if err != nil {
		return err
	}
	if _, err := s.m.Enable(true, true); !errors.Is(err, ErrAlreadyEnabled) {
		return fmt.Errorf("second Enable: %v", err)
	}
	if promised != s.m.Resumable() {
		return errors.New("Enable's promise and Resumable disagree")
	}
	s.enabled = true
	return nil
}

// fromUpstream: the upstream sends a stanza, which the caller routes now
// or holds for later.
func (s *sim) fromUpstream() error {
	n := s.m.FromUpstream()
	if s.upSentN++; n != s.upSentN {
		return fmt.Errorf("FromUpstream = %d, want %d", n, s.upSentN)
	}
	if !s.upSM {
		return s.queue(&n, true) // nothing to track upstream
	}
	if len(s.held) < 8 && s.c.IntN(4) == 0 {
		s.held = append(s.held, n)
		return nil
	}
	return s.route(n)
}

// route queues upstream stanza n for the client, or declares it done.
func (s *sim) route(n uint32) error {
	if s.c.IntN(4) == 0 {
		if err := s.m.UpstreamHandled(n); err != nil {
			return fmt.Errorf("UpstreamHandled(%d): %v", n, err)
		}
		s.markUpDone(n)
		if err := s.m.UpstreamHandled(n); !errors.Is(err, ErrUnknownUpstreamSeq) {
			return fmt.Errorf("UpstreamHandled(%d) twice: %v", n, err)
		}
		return nil
	}
	return s.queue(&n, true)
}

func (s *sim) queue(up *uint32, fromUp bool) error {
	s.nextID++
	raw := []byte("<message id='" + strconv.Itoa(s.nextID) + "'>" + string(bytes.Repeat([]byte("x"), s.c.IntN(90))) + "</message>")
	c := s.m.Counts()
	overflow := s.enabled && (c.Unacked >= s.cfg.MaxUnacked || c.UnackedBytes+len(raw) > s.cfg.MaxUnackedBytes)
	var q Queued
	var err error
	if fromUp {
		q, err = s.m.QueueFromUpstream(raw, *up)
	} else {
		q, err = s.m.Queue(raw)
	}
	switch {
	case overflow != errors.Is(err, ErrOverflow):
		return fmt.Errorf("queue with %d unacked, %d+%d bytes: err %v", c.Unacked, c.UnackedBytes, len(raw), err)
	case overflow:
		s.over = true
		return nil
	case err != nil:
		return err
	case !s.enabled:
		if q.Write != true || q.Seq != 0 {
			return fmt.Errorf("queue with SM off = %+v", q)
		}
		if fromUp {
			s.markUpDone(*up) // nobody will ack it: done when written
		}
		return nil
	case q.Seq != s.seq(len(s.queued)):
		return fmt.Errorf("queued as %d, want %d: numbers follow queue order", q.Seq, s.seq(len(s.queued)))
	case q.Write != s.connected:
		return fmt.Errorf("Write = %v while connected = %v", q.Write, s.connected)
	}
	it := queuedItem{raw: raw, fromUp: fromUp && s.upSM}
	if fromUp {
		it.up = *up
	}
	s.queued = append(s.queued, it)
	if q.Write {
		s.wire = append(s.wire, len(s.queued)-1)
	}
	return nil
}

// read: the client reads stanzas off its connection, checking each is the
// next one queued: in order, none twice, none missing.
func (s *sim) read(k int) error {
	for ; k > 0 && len(s.wire) > 0; k-- {
		i := s.wire[0]
		s.wire = s.wire[1:]
		if i != s.got {
			return fmt.Errorf("client read stanza %d after %d: lost or duplicated", i, s.got)
		}
		s.got++
	}
	return nil
}

func (s *sim) markUpDone(n uint32) {
	s.upDone[n] = true
	for s.upDone[s.upDonePrefix+1] {
		delete(s.upDone, s.upDonePrefix+1)
		s.upDonePrefix++
	}
}

// release applies a valid h from the client to the model.
func (s *sim) release(to int) {
	for ; s.acked < to; s.acked++ {
		if it := s.queued[s.acked]; it.fromUp && s.upSM {
			s.markUpDone(it.up)
		}
	}
}
