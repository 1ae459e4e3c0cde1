package proxy

import (
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
)

// edgeCache remembers each account's archive edges, so that a 2.0 setup
// with a <sync/> does not ask the server for them again: on Prosody's
// default storage every archive query reads the whole archive (about
// 100 ms for 5000 messages), and <metadata/> costs two of those reads.
//
// The rule that keeps it true:
//   - the start is taken from the cache while the entry is younger than
//     archiveEdgeTTL: it moves only when old messages expire or the user
//     empties the archive, and a start an hour stale still names where
//     paging back ends, give or take what expired meanwhile;
//   - the end is never taken from the cache alone: the setup's own
//     catch-up query decides it. When that query ends complete, the end
//     is its last message; when it found nothing after the client's id
//     and that id is the cached end, the cached end stands; in any other
//     case (a gap longer than a page, a window with nothing in it, an
//     error) the proxy asks the server, as without a cache;
//   - an entry is replaced by every <metadata/> the server gives; an end
//     the catch-up confirmed updates it without making its start younger;
//     it is dropped when a catch-up query fails (the archive may have
//     been emptied).
type edgeCache struct {
	lru *lru.Cache[string, edgeEntry]
	ttl time.Duration
	now func() time.Time
}

type edgeEntry struct {
	edges mam.Metadata
	at    time.Time
}

// archiveEdgeEntries bounds the accounts the edge cache remembers: about
// 200 bytes each.
const archiveEdgeEntries = 10000

// archiveEdgeTTL bounds how old a cached archive start may be.
const archiveEdgeTTL = time.Hour

func newEdgeCache(size int) *edgeCache {
	c, _ := lru.New[string, edgeEntry](max(size, 1))
	return &edgeCache{lru: c, ttl: archiveEdgeTTL, now: time.Now}
}

func edgeKey(account string) string { return strings.ToLower(account) }

// get returns the account's cached edges, if fresh.
func (c *edgeCache) get(account string) (mam.Metadata, bool) {
	e, ok := c.lru.Get(edgeKey(account))
	if !ok || c.now().Sub(e.at) > c.ttl {
		return mam.Metadata{}, false
	}
	return e.edges, true
}

// put remembers edges the server just gave, or the setup confirmed.
func (c *edgeCache) put(account string, e mam.Metadata) {
	if e.Empty() {
		c.forget(account) // an empty archive: nothing worth keeping
		return
	}
	c.lru.Add(edgeKey(account), edgeEntry{edges: e, at: c.now()})
}

// confirmEnd records an end the setup's catch-up query confirmed,
// keeping the entry's age: the start was not asked again.
func (c *edgeCache) confirmEnd(account, id, ts string) {
	e, ok := c.lru.Peek(edgeKey(account))
	if !ok {
		return
	}
	e.edges.EndID, e.edges.EndTS = id, ts
	c.lru.Add(edgeKey(account), e)
}

func (c *edgeCache) forget(account string) { c.lru.Remove(edgeKey(account)) }
