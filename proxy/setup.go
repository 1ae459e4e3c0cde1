package proxy

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/bind2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/muc"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sm"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// archiveSync is one MAM catch-up: the account's or a room's.
type archiveSync struct {
	to, queryID, idPrefix string
	after                 string
	start                 time.Time
	// buf holds the page's messages not queued for the client yet; the
	// catch-up (catchup.go) queues them as they come.
	buf []catchItem
	// fin is the end of the current page, until the catch-up acts on it.
	fin *mam.Fin
	// ids are the archive ids delivered so far: ejabberd was seen to
	// answer one query with a result twice under the same id, and a
	// catch-up delivers each archived message once.
	ids            map[string]bool
	lastID         string
	lastStamp      string // the archive timestamp of lastID
	delivered      int
	pageLen        int // messages delivered of the current page
	page           int
	done, complete bool
	// max bounds the messages this catch-up delivers (limits.max_catchup);
	// beyond it <synced/> says complete='false' and the client pages on.
	max int
}

// firstTime reports whether the archive id has not been delivered yet by
// this catch-up, and remembers it. An empty id cannot be told apart and
// always counts as new.
func (a *archiveSync) firstTime(id string) bool {
	if id == "" {
		return true
	}
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	if a.ids[id] {
		return false
	}
	a.ids[id] = true
	return true
}

// take keeps an archived message of this catch-up's current page; it
// reports false for a repeat, or for the account archive's message to
// another session of the account (it moves the page on, but is not
// delivered: see forAnotherSession).
func (a *archiveSync) take(res mam.Result, it catchItem, self string, account bool) bool {
	if a.done || !a.firstTime(res.ID) {
		return false // a repeat: last must not go back to it
	}
	a.lastID, a.lastStamp = res.ID, res.Stamp
	if account && forAnotherSession(it.raw, self) {
		return false
	}
	a.buf = append(a.buf, it)
	return true
}

// endPage keeps the end of the current page for the catch-up to act on.
func (a *archiveSync) endPage(f mam.Fin) {
	if !a.done {
		a.fin = &f
	}
}

func (a *archiveSync) request() []byte {
	id := a.idPrefix + strconv.Itoa(a.page)
	return mam.Query(id, a.to, a.queryID, a.after, a.start, min(syncPage, a.max-a.delivered), false)
}

// onFin handles a page's end and returns the next page's request, if any.
func (a *archiveSync) onFin(fin mam.Fin) []byte {
	if !fin.OK {
		a.done = true
		return nil
	}
	if fin.Complete || fin.Last == "" {
		a.done, a.complete = true, true
		return nil
	}
	if a.delivered >= a.max {
		a.done = true
		return nil
	}
	a.page++
	a.after = fin.Last
	return a.request()
}

// roomJoin is one requested MUC join and its outcome.
type roomJoin struct {
	req     bind2.Join
	room    string // bare room JID, lower case
	done    bool
	nick    string // the nick the room gave us
	errXML  []byte // the <error/> of a failed join
	catchup *archiveSync
}

// archiveMeta is the account archive's first and last entry.
type archiveMeta struct {
	edges        mam.Metadata
	account      string // the cache key: the account authenticated
	fallbackLeft int
	done         bool
	// fromCache: the start came from the edge cache and no <metadata/>
	// was asked; the catch-up's first page decides the end (endFromSync).
	fromCache bool
}

// setupState collects the upstream's answers to the pipelined Bind2 replay.
type setupState struct {
	s        *session
	out      *bindOutcome
	wantSM   bool
	gotBind  bool
	gotCarb  bool
	gotSM    bool
	meta     archiveMeta
	sync     *archiveSync
	joins    []*roomJoin
	followUp []byte // requests to send before reading on
}

func (st *setupState) requiredDone() bool { return st.gotBind && st.gotCarb && st.gotSM }

// allDone reports whether everything <success/> reports is in: bind,
// carbons, SM, the archive metadata and the joins. The catch-up is not
// waited for: it streams once the client has its <success/> (catchup.go).
func (st *setupState) allDone() bool {
	if !st.requiredDone() || !st.meta.done {
		return false
	}
	for _, j := range st.joins {
		if !j.done {
			return false
		}
	}
	return true
}

// run reads until every answer <success/> needs is in. Optional parts that
// do not answer within timeouts.setup_step are given up and reported as
// failed.
func (st *setupState) run(deadline time.Time) error {
	stepDeadline := time.Now().Add(time.Duration(st.s.srv.cfg.Timeouts.SetupStep))
	for !st.allDone() {
		if len(st.followUp) > 0 {
			if err := writeDirect(st.s.up.conn, st.followUp); err != nil {
				return fmt.Errorf("%w: %w", ErrUpstream, err)
			}
			if st.wantSM {
				st.out.upOut += stream.CountStanzas(st.followUp)
			}
			st.followUp = nil
		}
		dl := deadline
		if st.requiredDone() && stepDeadline.Before(dl) {
			dl = stepDeadline
		}
		_ = st.s.up.conn.SetReadDeadline(dl)
		// A shutdown's wake moves the deadline into the past; one that came
		// before the line above is seen here, one after it ends the read.
		if err := st.s.ctx.Err(); err != nil {
			return context.Cause(st.s.ctx)
		}
		u, err := st.s.up.fr.Next()
		if err != nil {
			if isTimeout(err) && st.requiredDone() {
				st.giveUp()
				return nil
			}
			return fmt.Errorf("%w: during bind: %w", ErrUpstream, err)
		}
		if u.Kind == stream.UnitStreamClose {
			return fmt.Errorf("%w: closed the stream during bind", ErrUpstream)
		}
		if u.Kind == stream.UnitElement {
			if err := st.dispatch(u.Raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// giveUp marks every unanswered optional part as failed.
func (st *setupState) giveUp() {
	st.s.log.Warn("upstream setup step timed out; the session comes up without it")
	ab := st.out.abandoned
	if ab == nil {
		ab = &abandonedQueries{}
	}
	if !st.meta.done {
		st.meta.done = true
		st.meta.edges = mam.Metadata{} // a cached start without its end says nothing
		ab.queryIDs = append(ab.queryIDs, idMetaFirst, idMetaLast)
		ab.idPrefixes = append(ab.idPrefixes, idMetadata)
	}
	for _, j := range st.joins {
		if !j.done {
			j.done = true
			j.errXML = []byte("<error type='wait'><remote-server-timeout xmlns='" + ns.Stanzas + "'/></error>")
		}
	}
	st.out.abandoned = ab
}

func (st *setupState) dispatch(raw []byte) error {
	name, xmlns := stream.ElementName(raw)
	if st.out.smID != "" && stream.IsStanza(name) {
		st.out.upIn++
	}
	switch {
	case string(xmlns) == ns.SM:
		return st.onSM(string(name), raw)
	case string(name) == "stream:error":
		return fmt.Errorf("%w: stream error during bind: %s", ErrUpstream, raw)
	case string(name) == "iq":
		st.onIQ(raw)
	case string(name) == "message":
		st.onMessage(raw)
	case string(name) == "presence":
		st.onPresence(raw)
	default:
		st.out.pending = append(st.out.pending, bytes.Clone(raw))
	}
	return nil
}

func (st *setupState) onSM(name string, raw []byte) error {
	switch name {
	case "enabled":
		st.gotSM = true
		start, _ := stream.StartOf(raw)
		st.out.smID = stream.StartAttr(start, "id")
		st.out.smResume = stream.StartAttr(start, "resume") == "true" || stream.StartAttr(start, "resume") == "1"
	case "failed":
		st.gotSM = true
	case "r":
		if err := writeDirect(st.s.up.conn, sm.AppendAck(nil, st.out.upIn)); err != nil {
			return fmt.Errorf("%w: %w", ErrUpstream, err)
		}
	}
	return nil
}

func (st *setupState) onIQ(raw []byte) {
	start, _ := stream.StartOf(raw)
	id, typ := stream.StartAttr(start, "id"), stream.StartAttr(start, "type")
	switch {
	case id == idBind:
		st.gotBind = true
		jid, err := jidFromBindResult(raw)
		if err == nil {
			st.out.jid = jid
		}
		if st.meta.fromCache && accountOf(jid) != accountOf(st.meta.account) {
			st.askMetadata() // bound to another account than the cache key
		}
	case id == idCarbons:
		st.gotCarb = true
		st.out.carbons = typ == "result"
	case id == idMetadata:
		st.onMetadata(raw, typ)
	case id == idArchiveMark:
		// answered during setup: nothing to do
	case id == idMetaFirst || id == idMetaLast:
		if st.meta.fallbackLeft--; st.meta.fallbackLeft <= 0 {
			st.meta.done = true
			st.s.srv.edges.put(st.meta.account, st.meta.edges)
		}
	case st.sync != nil && strings.HasPrefix(id, st.sync.idPrefix):
		f := mam.ParseFin(raw)
		st.sync.endPage(f)
		if st.meta.fromCache && !st.meta.done {
			st.endFromSync(f)
		}
	default:
		for _, j := range st.joins {
			if j.catchup != nil && strings.HasPrefix(id, j.catchup.idPrefix) {
				j.catchup.endPage(mam.ParseFin(raw))
				return
			}
		}
		st.out.pending = append(st.out.pending, bytes.Clone(raw))
	}
}

// onMetadata keeps XEP-0313 metadata, or falls back to two one-item RSM
// queries (first and last) on servers without it, such as ejabberd 23.01.
func (st *setupState) onMetadata(raw []byte, typ string) {
	if typ == "result" {
		st.meta.edges = mam.Metadata{}
		if m := stream.ChildElement(raw, ns.MAM, "metadata"); m != nil {
			st.meta.edges = mam.ParseMetadata(m)
		}
		st.meta.done = true
		st.s.srv.edges.put(st.meta.account, st.meta.edges)
		return
	}
	st.meta.fallbackLeft = 2
	st.followUp = append(st.followUp, mam.Query(idMetaFirst, "", idMetaFirst, "", time.Time{}, 1, false)...)
	st.followUp = append(st.followUp, mam.Query(idMetaLast, "", idMetaLast, "", time.Time{}, 1, true)...)
}

func (st *setupState) onMessage(raw []byte) {
	res, ok := mam.ParseResult(raw)
	if !ok {
		st.out.pending = append(st.out.pending, bytes.Clone(raw))
		return
	}
	switch {
	case res.QueryID == idMetaFirst:
		st.meta.edges.StartID, st.meta.edges.StartTS = res.ID, res.Stamp
	case res.QueryID == idMetaLast:
		st.meta.edges.EndID, st.meta.edges.EndTS = res.ID, res.Stamp
	case st.sync != nil && res.QueryID == st.sync.queryID:
		st.sync.take(res, catchItem{raw: bytes.Clone(raw)}, st.out.jid, true)
	default:
		for _, j := range st.joins {
			if j.catchup != nil && res.QueryID == j.catchup.queryID {
				j.catchup.take(res, catchItem{raw: bytes.Clone(raw)}, st.out.jid, false)
				return
			}
		}
		// A late page of a query given up on: nobody asked for it now.
	}
}

// onPresence settles MUC joins: the self-presence (status 110) means
// joined, a presence error means the join failed. Every presence,
// including the self-presence, is also live traffic for the client.
func (st *setupState) onPresence(raw []byte) {
	start, _ := stream.StartOf(raw)
	from := stream.StartAttr(start, "from")
	bareFrom, nick, _ := strings.Cut(from, "/")
	for _, j := range st.joins {
		if j.done || !strings.EqualFold(bareFrom, j.room) {
			continue
		}
		switch {
		case stream.StartAttr(start, "type") == "error":
			j.done = true
			j.errXML = muc.JoinError(raw)
			return // the client learns it from <join-failed/>
		case muc.IsSelfPresence(raw):
			j.done, j.nick = true, nick
		}
	}
	st.out.pending = append(st.out.pending, bytes.Clone(raw))
}

// askMetadata asks the server for the archive's edges (XEP-0313
// <metadata/>), after all: the cache could not vouch for them.
func (st *setupState) askMetadata() {
	st.meta.fromCache, st.meta.edges = false, mam.Metadata{}
	st.followUp = append(st.followUp, metadataQuery...)
}

var metadataQuery = mam.MetadataQuery(idMetadata)

// endFromSync decides the archive's end from the first page of the
// account catch-up, when the start came from the cache (see edgeCache
// for why each case holds).
func (st *setupState) endFromSync(f mam.Fin) {
	a, e := st.sync, &st.meta.edges
	switch {
	case f.OK && f.Complete && a.lastID != "":
		e.EndID, e.EndTS = a.lastID, a.lastStamp
	case f.OK && f.Complete && a.after != "" && a.after == e.EndID:
		// nothing after the end the cache knew
	default:
		if !f.OK {
			st.s.srv.edges.forget(st.meta.account)
		}
		st.askMetadata()
		return
	}
	st.meta.done = true
	st.s.srv.edges.confirmEnd(st.meta.account, e.EndID, e.EndTS)
}
