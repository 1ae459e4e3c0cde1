package proxy

import (
	"strings"

	"mellium.im/xmpp/jid"
)

// JIDs are compared as RFC 7622 says, through mellium.im/xmpp/jid: the
// localpart and domainpart case-folded (PRECIS), the resourcepart as it
// is (/desk and /Desk are two resources). These two are the proxy's only
// JID keys; the hot paths that only need to cut a JID at its '/' (package
// rewrite's and carbonsim's scanners) do that without parsing.

// normJID is a full JID as RFC 7622 compares it. A string that is not a
// JID stays as it is, and so matches nothing that is one.
func normJID(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return s
	}
	return j.String()
}

// accountOf is the account of a JID, full or bare, as RFC 7622 compares
// it: the key of everything kept per account (the registry, the
// resumption cache, the archive edges). A string that is not a JID is cut
// at its first '/' and lower-cased, so that it still finds nothing.
func accountOf(s string) string {
	if j, err := jid.Parse(s); err == nil {
		return j.Bare().String()
	}
	bare, _, _ := strings.Cut(s, "/")
	return strings.ToLower(bare)
}
