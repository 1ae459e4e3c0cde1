package sm

import "slices"

// FromUpstream counts a stanza received on the upstream leg and returns
// its number there. The stanza is pending, holding back the h the upstream
// gets, until it is queued for the client and acked
// ([Machine.QueueFromUpstream]) or declared done
// ([Machine.UpstreamHandled]). Call it in the order the upstream sent.
func (m *Machine) FromUpstream() uint32 {
	m.upReceived++
	if m.cfg.UpstreamSM {
		m.upPending = append(m.upPending, m.upReceived)
	}
	return m.upReceived
}

// UpstreamHandled says upstream stanza n will never reach this client and
// is done with: consumed by the proxy, delivered to sibling sessions only,
// or dropped as a duplicate. The upstream learns on its next <r/>.
func (m *Machine) UpstreamHandled(n uint32) error {
	if !m.cfg.UpstreamSM {
		return nil
	}
	if !m.markUpDone(n) {
		return ErrUnknownUpstreamSeq
	}
	return nil
}

// AnswerUpstream is the h for the <a/> answering the upstream's <r/>: the
// upstream stanzas done, counting from the start without a gap.
func (m *Machine) AnswerUpstream() uint32 { return m.upDone() }

func (m *Machine) upDone() uint32 {
	if len(m.upPending) > 0 {
		return m.upPending[0] - 1
	}
	return m.upReceived
}

// upFind locates n in upPending, which is ascending in serial order from
// its first element (every pending number is within 2^31 of it).
func (m *Machine) upFind(n uint32) (int, bool) {
	if len(m.upPending) == 0 {
		return 0, false
	}
	base := m.upPending[0]
	return slices.BinarySearchFunc(m.upPending, n, func(e, t uint32) int {
		switch a, b := e-base, t-base; {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
}

func (m *Machine) upIsPending(n uint32) bool {
	_, ok := m.upFind(n)
	return ok
}

// markUpDone removes n from the pending upstream numbers.
func (m *Machine) markUpDone(n uint32) bool {
	i, ok := m.upFind(n)
	switch {
	case !ok:
		return false
	case i == 0: // the usual case: done in the order received
		m.upPending = m.upPending[1:]
	default:
		m.upPending = slices.Delete(m.upPending, i, i+1)
	}
	return true
}
