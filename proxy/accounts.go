package proxy

import (
	"strings"
	"sync"

	"github.com/xmpp2proxy/xmpp2proxy/carbonsim"
)

// registry knows every full JID bound through the proxy, classic or 2.0,
// and the online 2.0 sessions of each account (contract section 5).
type registry struct {
	mu       sync.RWMutex
	bound    map[string]int // full JID (lower case) -> sessions bound to it
	accounts map[string]*account
}

// account is one account's online 2.0 sessions and its delivery state.
type account struct {
	mu       sync.Mutex // guards sim and sessions; never held while delivering
	sim      *carbonsim.Account
	sessions map[string]*relay // full JID as bound -> its relay
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
	return &registry{bound: map[string]int{}, accounts: map[string]*account{}}
}

func (g *registry) bind(jid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bound[strings.ToLower(jid)]++
}

func (g *registry) unbind(jid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := strings.ToLower(jid)
	if g.bound[k]--; g.bound[k] <= 0 {
		delete(g.bound, k)
	}
}

// isBound reports whether a session is bound to the full JID right now.
func (g *registry) isBound(jid string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.bound[strings.ToLower(jid)] > 0
}

// online returns the account's delivery state if it has 2.0 sessions.
func (g *registry) online(bare string) *account {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.accounts[strings.ToLower(bare)]
}

// join makes a bound 2.0 session one of its account's delivery targets.
// Its catch-up is already done (the Bind2 replay delivers it before the
// relay starts), so it is synced at once.
func (g *registry) join(jid string, r *relay) *account {
	bare := strings.ToLower(bareJID(jid))
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
	acc.sessions[jid] = r
	acc.sim.Join(jid)
	acc.sim.Synced(jid)
	return acc
}

// leave removes an ended 2.0 session; a detached one stays until its
// resumption window ends.
func (g *registry) leave(jid string) {
	bare := strings.ToLower(bareJID(jid))
	g.mu.Lock()
	defer g.mu.Unlock()
	acc := g.accounts[bare]
	if acc == nil {
		return
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	delete(acc.sessions, jid)
	acc.sim.Leave(jid)
	if len(acc.sessions) == 0 {
		delete(g.accounts, bare)
	}
}

// observe runs a message that arrived on session's upstream leg through
// the account's exactly-once rules and returns who gets what.
func (acc *account) observe(session string, stanza []byte) ([]delivery, error) {
	acc.mu.Lock()
	defer acc.mu.Unlock()
	ds, err := acc.sim.Observe(carbonsim.Event{Session: session, Stanza: stanza})
	out := make([]delivery, 0, len(ds))
	for _, d := range ds {
		if r := acc.sessions[d.Session]; r != nil {
			out = append(out, delivery{to: r, stanza: d.Stanza})
		}
	}
	return out, err
}
