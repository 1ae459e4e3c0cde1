package proxy

import (
	"errors"
	"sync"

	"github.com/xmpp2proxy/xmpp2proxy/carbonsim"
)

// registry knows every full JID bound through this proxy process
// (local), classic or 2.0, and the online 2.0 sessions of each account
// (contract section 5).
type registry struct {
	mu       sync.RWMutex
	local    map[string]int // full JID (normJID: resource case kept) -> sessions bound to it here
	accounts map[string]*account
}

// account is one account's online 2.0 sessions and its delivery state.
type account struct {
	// deliverMu orders deliveries: it is held from a message's observe
	// until every copy of it is queued, the arriving leg's own included.
	// Without it, two legs that read consecutive messages could queue them
	// for a third session in the wrong order (the first observed, the
	// second observed and queued, then the first queued), and a device cut
	// off in between would resume with <sync after/> past a message it
	// never got. Queueing never waits on a client, so it is held briefly.
	// Taken before mu, and before any session's catch-up lock.
	deliverMu sync.Mutex
	mu        sync.Mutex // guards sim and sessions; never held while delivering
	sim       *carbonsim.Account
	// sessions maps each session's carbonsim name (its relay's name, not
	// its JID: a device that logs in again has two sessions of one JID
	// for a moment) to its relay.
	sessions map[string]*relay
	// private remembers classic senders' private messages to these
	// sessions, whose marker Prosody takes off (private.go).
	private messageHints
	// sent remembers where 2.0 senders' full-JID messages to these
	// sessions were meant to go (rerouted.go).
	sent messageHints
}

// delivery is one stanza for one session's client leg.
type delivery struct {
	to     *relay
	stanza []byte
}

func newRegistry() *registry {
	return &registry{local: map[string]int{}, accounts: map[string]*account{}}
}

func (g *registry) bind(jid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.local[normJID(jid)]++
}

func (g *registry) unbind(jid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := normJID(jid)
	if g.local[k]--; g.local[k] <= 0 {
		delete(g.local, k)
	}
}

// isLocal reports whether a session of this process is bound to the
// full JID right now.
func (g *registry) isLocal(jid string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.local[normJID(jid)] > 0
}

// online returns the account's delivery state if it has 2.0 sessions.
func (g *registry) online(jid string) *account {
	key := accountOf(jid)
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.accounts[key]
}

// join makes a bound 2.0 session one of its account's delivery targets.
// A session with a catch-up to stream joins catching up: the live
// messages meant for it are held until synced. It returns the sessions of
// the same full JID that this one replaces (XEP-0386), which are no longer
// delivery targets: the caller ends them.
func (g *registry) join(r *relay, catchingUp bool) (*account, []*relay) {
	jid := r.s.v2.jid
	bare := accountOf(jid)
	// Lock order: registry, then account (leave deletes empty accounts).
	g.mu.Lock()
	defer g.mu.Unlock()
	acc := g.accounts[bare]
	if acc == nil {
		acc = &account{sim: carbonsim.NewAccount(bare, 0), sessions: map[string]*relay{}}
		g.accounts[bare] = acc
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	var replaced []*relay
	for name, old := range acc.sessions {
		if old.s.v2.jid == jid {
			replaced = append(replaced, old)
			delete(acc.sessions, name)
			acc.sim.Leave(name)
		}
	}
	acc.sessions[r.name] = r
	if c := r.s.v2.catchup; c != nil && c.account != nil {
		// What siblings had before this session was bound goes first,
		// with what its own leg brought meanwhile (carbonsim.JoinAfter).
		c.pending = append(acc.sim.JoinAfter(r.name, jid, c.account.after, c.pending), c.pending...)
	} else {
		acc.sim.JoinAs(r.name, jid)
	}
	if !catchingUp {
		acc.sim.Synced(r.name)
	}
	return acc, replaced
}

// synced ends r's catch-up in the account's delivery state and returns
// the live messages held for it, in arrival order.
func (acc *account) synced(r *relay) [][]byte {
	acc.mu.Lock()
	defer acc.mu.Unlock()
	ds := acc.sim.Synced(r.name)
	out := make([][]byte, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Stanza)
	}
	return out
}

// leave removes an ended 2.0 session; a detached one stays until its
// resumption window ends. It touches only r's own entry, so the end of a
// replaced session never removes the session that replaced it.
func (g *registry) leave(r *relay) {
	bare := accountOf(r.s.v2.jid)
	g.mu.Lock()
	defer g.mu.Unlock()
	acc := g.accounts[bare]
	if acc == nil {
		return
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if acc.sessions[r.name] != r {
		return
	}
	delete(acc.sessions, r.name)
	acc.sim.Leave(r.name)
	if len(acc.sessions) == 0 {
		delete(g.accounts, bare)
	}
}

// observe runs a message that arrived on session's upstream leg through
// the account's exactly-once rules and returns who gets what. session is
// a 2.0 session's relay name, or a classic session's JID.
//
// A session whose catch-up met more live messages than carbonsim holds
// has left the account's delivery state: it is ended here, with
// <resource-constraint/>, and its client's next <sync/> recovers them.
func (acc *account) observe(session string, stanza []byte) ([]delivery, error) {
	acc.mu.Lock()
	ds, err := acc.sim.Observe(carbonsim.Event{Session: session, Stanza: stanza})
	out := make([]delivery, 0, len(ds))
	for _, d := range ds {
		if r := acc.sessions[d.Session]; r != nil {
			out = append(out, delivery{to: r, stanza: d.Stanza})
		}
	}
	var overflowed []*relay
	var hoe *carbonsim.HoldOverflowError
	if errors.As(err, &hoe) {
		for _, name := range hoe.Sessions {
			if r := acc.sessions[name]; r != nil {
				overflowed = append(overflowed, r)
				delete(acc.sessions, name)
			}
		}
	}
	acc.mu.Unlock()
	for _, r := range overflowed {
		// Ending it may wait on its upstream queue: never on this reader.
		go r.terminate(errHoldOverflow, true)
	}
	return out, err
}
