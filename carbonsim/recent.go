package carbonsim

// recentMax bounds the account-scope messages an account keeps, with their
// bytes, for a session that joins after the last one it saw (see
// [Account.JoinAfter]). The gap it covers is the few messages routed while
// a device moved from one session to the next: tens of milliseconds.
const recentMax = 64

// recentBytesMax bounds the bytes those messages take; the oldest go first.
const recentBytesMax = 1 << 20

// recentItem is one account-scope message with a stanza-id by the
// account, as the sessions that were online got it.
type recentItem struct {
	stanza []byte
	k      keys
	sender string // the full JID it came from; it never goes back there
}

// remember keeps an account-scope message the first time it arrives on
// any leg, in arrival order, reusing the evicted item's buffer.
func (a *Account) remember(out []byte, k keys, sender string) {
	if k.sid == 0 || len(out) > recentBytesMax {
		return
	}
	for i := len(a.recent) - 1; i >= 0; i-- {
		if a.recent[i].k.sid == k.sid {
			return
		}
	}
	var buf []byte
	for len(a.recent) > 0 && (len(a.recent) >= recentMax || a.recentBytes+len(out) > recentBytesMax) {
		buf = a.recent[0].stanza
		a.recentBytes -= len(buf)
		a.recent = append(a.recent[:0], a.recent[1:]...)
	}
	buf = append(buf[:0], out...)
	a.recentBytes += len(buf)
	a.recent = append(a.recent, recentItem{stanza: buf, k: k, sender: sender})
}

// JoinAfter is [Account.JoinAs] for a session whose catch-up starts after
// the archive id after (a <sync after/>). It returns, in arrival order,
// the account-scope messages that arrived on other sessions' legs after
// that one, before this session joined, and that are not among have (what
// the session's own leg brought before it joined). They count as
// delivered to the session: the caller hands them over with what its own
// leg brought, and later live copies of them are dropped.
//
// Why: a server may archive a message after it routed it. ejabberd gives
// a stanza-id when it routes a chat to the bare JID, but only one
// resource's session process (the highest priority, then the greatest
// resource) stores it, when it handles it; the others get a copy that is
// not stored. A message routed just before the joining session was bound
// is therefore not delivered to it, and may not be in the archive yet when
// its catch-up query runs: without this, it is lost (seen end to end:
// sibling legs had it, the archive stored it tens of milliseconds after
// the query). The caller drops what the catch-up delivers too.
//
// Nothing is handed over when after is empty or is not among the messages
// kept: an older resume point cannot be placed in arrival order.
func (a *Account) JoinAfter(session, jid, after string, have [][]byte) [][]byte {
	a.JoinAs(session, jid)
	if after == "" {
		return nil
	}
	s := a.find(session)
	for _, raw := range have {
		p, err := parse(raw, a.bare)
		if err != nil || p.form == result {
			continue
		}
		m := &p.outer
		if p.form != plain && p.innerRaw != nil {
			m = &p.inner
		}
		if k := a.keysOf(m, "", ""); !k.empty() && !s.seen.seen(k) {
			s.seen.add(k, -1)
		}
	}
	at := hashKey(a.seed, kindSID, a.bare, after)
	start := -1
	for i := len(a.recent) - 1; i >= 0; i-- {
		if a.recent[i].k.sid == at {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return nil
	}
	var out [][]byte
	for _, it := range a.recent[start:] {
		if it.sender == jid || s.seen.seen(it.k) {
			continue
		}
		s.seen.add(it.k, -1)
		out = append(out, append([]byte(nil), it.stanza...))
	}
	return out
}
