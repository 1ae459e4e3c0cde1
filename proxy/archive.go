package proxy

import (
	"mellium.im/xmpp/jid"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/mam"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
	"github.com/xmpp2proxy/xmpp2proxy/rewrite"
)

// Query ids of the Bind2 replay's XEP-0313 (MAM) queries.
const (
	queryIDSync = "x2-sync" // the contract's queryid for the account catch-up
	idMetadata  = "x2-meta"
	idMetaFirst = "x2-meta-first"
	idMetaLast  = "x2-meta-last"
	// idArchiveMark is an empty archive query (max 0) every fresh 2.0
	// bind sends without a catch-up of its own: Prosody then leaves the
	// messages the session never acked to the archive instead of storing
	// them offline too (mod_smacks checks mam_requested), so a client's
	// next <sync/> gets each once, as on ejabberd.
	idArchiveMark = "x2-archive-mark"
	// syncPage is the RSM page size of catch-up queries.
	syncPage = 250
)

// forAnotherSession reports an archived message that was for one other
// session of self's account only: addressed to another full JID of the
// account and single-session by the entering rules (a 1.0 chat with
// <private/> or <no-copy/>, a MUC private message). The 1.0 server
// archives those, but full-JID messages are never part of a catch-up
// (contract section 5).
func forAnotherSession(raw []byte, self string) bool {
	inner := mam.ForwardedMessage(raw)
	if inner == nil || self == "" {
		return false
	}
	to, err := jid.Parse(stream.AttrString(inner, "to"))
	me, errSelf := jid.Parse(self)
	if err != nil || errSelf != nil || to.Resourcepart() == "" || !to.Bare().Equal(me.Bare()) || to.Equal(me) {
		return false
	}
	_, route, err := rewrite.Entering(inner)
	return err == nil && route.Scope == rewrite.ScopeSession
}
