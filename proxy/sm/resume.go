package sm

import "slices"

// Detach marks the client gone (its connection failed or went silent)
// and holds the session for resumption: from now on queued stanzas are
// kept but not written. Without a promise of resumption it is
// ErrNotResumable and the caller ends the session. Detaching a detached
// session changes nothing; detaching one that is resuming gives up that
// resumption (its new connection failed too).
//
// askUpstream says to write <r/> upstream, so the client stanzas still in
// flight are handled before the client comes back.
func (m *Machine) Detach() (askUpstream bool, err error) {
	switch m.state {
	case StateOff:
		return false, ErrNotEnabled
	case StateFailed:
		return false, m.failure
	case StateDetached:
		return false, nil
	}
	if !m.resumable {
		return false, ErrNotResumable
	}
	m.state = StateDetached
	m.clientWaiting = false // its answer has nowhere to go
	if len(m.inFlight) > 0 && m.upSent != m.upRequested {
		askUpstream, m.upRequested = true, m.upSent
	}
	return askUpstream, nil
}

// Resumption is the answer to a <resume/> (or a SASL2 inline resumption).
type Resumption struct {
	// Ready: write <resumed h='H'/>, then Replay in order, then <r/> if
	// AskClient. When not Ready the machine is resuming: the client
	// stanzas still in flight must be acked upstream first, so H never
	// covers what the upstream might lose; hold the new connection
	// until [Machine.UpstreamAck] returns the ready Resumption.
	Ready bool
	// H is the client stanzas handled, for <resumed h=.../>.
	H uint32
	// Replay is every stanza the client has not acked, oldest first,
	// numbered right after the h it resumed with. Later stanzas are
	// numbered after these. Do not modify their bytes.
	Replay []Stanza
	// AskClient: write <r/> after the replay, so the client releases it.
	AskClient bool
	// AskUpstream: write <r/> upstream (only when not Ready).
	AskUpstream bool
	// Upstream is the <a/> to send the upstream at once, when the client's
	// h released stanzas from it.
	Upstream Ack
}

// Resume reattaches a detached session for a client that has handled h
// stanzas. An h above the stanzas sent, or below the last acked one, is an
// *AckError and the session stays detached (answer <failed/>, or the
// stream error of [AckError.AppendStreamError]). The caller checks first
// that the authenticated identity owns the session.
func (m *Machine) Resume(h uint32) (Resumption, error) {
	switch m.state {
	case StateFailed:
		return Resumption{}, m.failure
	case StateDetached:
	default:
		return Resumption{}, ErrNotDetached
	}
	if err := checkAck(h, m.acked, m.sent, false); err != nil {
		return Resumption{}, err
	}
	up := m.dropAcked(h)
	m.state = StateResuming
	if len(m.inFlight) == 0 {
		r := m.finishResume()
		r.Upstream = up
		return r, nil
	}
	r := Resumption{Upstream: up}
	if m.upSent != m.upRequested {
		r.AskUpstream, m.upRequested = true, m.upSent
	}
	return r, nil
}

// finishResume goes live again with every unacked stanza to replay.
func (m *Machine) finishResume() Resumption {
	m.state = StateLive
	r := Resumption{Ready: true, H: m.handled, Replay: slices.Clone(m.unacked)}
	// The new connection has no request outstanding. Ask at once after a
	// replay: those stanzas may have waited long enough.
	m.requested = m.acked
	if len(r.Replay) > 0 {
		r.AskClient, m.requested = true, m.sent
	}
	return r
}
