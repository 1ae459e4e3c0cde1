package sm

// Inbound says what to do after counting a client stanza.
type Inbound struct {
	// AskUpstream: write <r/> upstream (after the stanza, if it was
	// forwarded), so the upstream's <a/> keeps the in-flight list short.
	AskUpstream bool
}

// ClientStanza counts a stanza from the client. forwarded says whether it
// goes upstream (it is handled once the upstream acks it) or the proxy
// answered it itself (handled once everything before it is). Call it
// before writing the stanza upstream, under the lock that orders the
// upstream writes, so numbers follow the upstream's order.
//
// Past Config.MaxInFlight unhandled stanzas it is an *OverflowError and
// the session must end.
func (m *Machine) ClientStanza(forwarded bool) (Inbound, error) {
	switch {
	case m.state == StateFailed:
		return Inbound{}, m.failure
	case m.state == StateOff:
		if forwarded && m.cfg.UpstreamSM {
			m.upSent++ // the upstream counts it, whatever the client leg does
		}
		return Inbound{}, nil
	case !m.cfg.UpstreamSM:
		// Nothing upstream will ever ack it: handled once counted.
		m.received++
		m.handled = m.received
		return Inbound{}, nil
	case len(m.inFlight) >= m.cfg.MaxInFlight:
		return Inbound{}, m.fail(&OverflowError{List: "in-flight stanzas", Cap: m.cfg.MaxInFlight})
	}
	m.received++
	f := inFlight{forwarded: forwarded}
	if forwarded {
		m.upSent++
		f.up = m.upSent
	}
	m.inFlight = append(m.inFlight, f)
	m.settle()
	var in Inbound
	if forwarded && m.upSent-m.upRequested >= uint32(m.cfg.RequestEvery) {
		in.AskUpstream, m.upRequested = true, m.upSent
	}
	return in, nil
}

// ToUpstream counts a stanza the proxy itself sends upstream, not on the
// client's behalf (a MAM query of the catch-up, say), and returns its
// number there. It needs no answer on the client leg.
func (m *Machine) ToUpstream() uint32 {
	if m.cfg.UpstreamSM {
		m.upSent++
	}
	return m.upSent
}

// RequestReply is what to do about the client's <r/>.
type RequestReply struct {
	// Client is the <a/> to write now. When client stanzas are still in
	// flight it is not sent: the answer waits for the upstream's <a/>
	// (see [Machine.UpstreamAck]), so it never acks what the upstream
	// might still lose.
	Client Ack
	// AskUpstream: write <r/> upstream, since no request covers the
	// stanzas in flight.
	AskUpstream bool
}

// ClientRequest handles the client's <r/>.
func (m *Machine) ClientRequest() (RequestReply, error) {
	switch m.state {
	case StateOff:
		return RequestReply{}, ErrNotEnabled
	case StateFailed:
		return RequestReply{}, m.failure
	case StateLive:
	default:
		return RequestReply{}, nil // from a connection already given up
	}
	if len(m.inFlight) == 0 {
		return RequestReply{Client: Ack{Send: true, H: m.handled}}, nil
	}
	m.clientWaiting = true
	var r RequestReply
	if m.upSent != m.upRequested {
		r.AskUpstream, m.upRequested = true, m.upSent
	}
	return r, nil
}

// UpstreamReply is what to do about the upstream's <a/>.
type UpstreamReply struct {
	// Client is the answer to the client's waiting <r/>, if any.
	Client Ack
	// Resumed is set when a resumption that waited for this ack is
	// ready: write it as [Machine.Resume] describes.
	Resumed *Resumption
}

// UpstreamAck applies the upstream's <a h='h'/>: client stanzas it covers
// are handled, with those the proxy answered right after them. An h above
// what was sent upstream, or below its previous h, is an *AckError and
// changes nothing.
func (m *Machine) UpstreamAck(h uint32) (UpstreamReply, error) {
	if !m.cfg.UpstreamSM {
		return UpstreamReply{}, ErrNotEnabled
	}
	if err := checkAck(h, m.upAcked, m.upSent, true); err != nil {
		return UpstreamReply{}, err
	}
	m.upAcked = h
	if after(h, m.upRequested) {
		m.upRequested = h
	}
	m.settle()
	var r UpstreamReply
	if m.clientWaiting && m.state == StateLive {
		r.Client = Ack{Send: true, H: m.handled}
		m.clientWaiting = false
	}
	if m.state == StateResuming && len(m.inFlight) == 0 {
		res := m.finishResume()
		r.Resumed = &res
	}
	return r, nil
}

// settle hands out the in-flight stanzas that are handled, in order.
func (m *Machine) settle() {
	i := 0
	for ; i < len(m.inFlight); i++ {
		if f := m.inFlight[i]; f.forwarded && after(f.up, m.upAcked) {
			break
		}
	}
	m.handled += uint32(i)
	m.inFlight = m.inFlight[i:]
}
