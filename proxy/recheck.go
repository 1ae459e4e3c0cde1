package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// A second look at the account archive after a catch-up
// (timeouts.catchup_recheck). Traced on ejabberd 23.01 (issue 9): a chat
// that reaches the account while its only session comes online is routed
// to offline storage, archived under an id older than the catch-up's
// query, and becomes visible there only after that query ran; its offline
// copy is written after the session's initial presence emptied the
// spool, so it waits for the next login. Neither the catch-up nor live
// traffic brings it. One query after the catch-up's last message, a
// moment later, does; what the session had is recognised by the
// account's delivery state, so nothing comes twice.

const (
	recheckIQID    = "x2-recheck"
	recheckQueryID = "x2-recheck"
)

// recheck is a session's one second look; the zero value is ready.
type recheck struct {
	mu      sync.Mutex
	timer   *time.Timer
	after   string
	stopped bool
	// asked is set while the query is out; found counts what it brought
	// that the session did not have.
	asked atomic.Bool
	found atomic.Int32
}

// scheduleRecheck asks the archive for what came after the archive id
// after, once timeouts.catchup_recheck has passed. It never blocks: the
// catch-up calls it under its lock.
func (v *session2) scheduleRecheck(r *relay, after string) {
	delay := r.s.srv.cfg.Timeouts.CatchupRecheck
	if delay <= 0 || after == "" {
		return
	}
	rc := &v.recheck
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.stopped || rc.timer != nil {
		return
	}
	rc.after = after
	rc.timer = time.AfterFunc(delay, func() { v.sendRecheck(r) })
}

func (v *session2) sendRecheck(r *relay) {
	rc := &v.recheck
	rc.mu.Lock()
	stopped, after := rc.stopped, rc.after
	rc.mu.Unlock()
	if stopped {
		return
	}
	rc.asked.Store(true)
	v.sendOwnUpstream(r, mam.Query(recheckIQID, "", recheckQueryID, after, time.Time{}, syncPage, false))
}

// stopRecheck cancels a second look that has not gone out.
func (v *session2) stopRecheck() {
	rc := &v.recheck
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.stopped = true
	if rc.timer != nil {
		rc.timer.Stop()
	}
}

// recheckTakes handles the answer to the second look: each result as the
// live message the session missed, routed through the account's delivery
// state (which drops what a session already had), and the query's end.
// It reports whether raw was part of that answer. Only a result from the
// account's own archive counts: a stranger cannot inject one.
func (v *session2) recheckTakes(r *relay, name, raw []byte, upSeq uint32) bool {
	rc := &v.recheck
	if !rc.asked.Load() {
		return false
	}
	start, err := stream.StartOf(raw)
	if err != nil {
		return false
	}
	account := accountOf(v.jid)
	if from := stream.StartAttr(start, "from"); from != "" && accountOf(from) != account {
		return false
	}
	switch string(name) {
	case "message":
		res, ok := mam.ParseResult(raw)
		if !ok || res.QueryID != recheckQueryID {
			return false
		}
		// What was for another session only is left out, as in the
		// catch-up (archive.go).
		live := mam.Live(raw, account, v.jid)
		if live != nil && !forAnotherSession(raw, v.jid) && v.routeInOrder(r, live, upSeq) {
			rc.found.Add(1)
			r.s.srv.metrics.recheckFoundOne()
			return true
		}
	case "iq":
		typ := stream.StartAttr(start, "type")
		if stream.StartAttr(start, "id") != recheckIQID || typ != "result" && typ != "error" {
			return false
		}
		rc.asked.Store(false)
		if n := rc.found.Load(); n > 0 {
			r.s.log.Info("the second look at the archive found messages the catch-up missed", "jid", v.jid, "count", n)
		}
	default:
		return false
	}
	v.upstreamHandled(upSeq)
	return true
}
