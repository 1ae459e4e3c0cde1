package bind2

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// DeriveResource picks the resource for a Bind2 session (XEP-0386 v1.1.0
// section 4, contract section 3): tag (else "xmpp2", with '/', '@' and
// control characters made '_') + "." + 10 characters of an HMAC-SHA-256
// over (account, userAgentID) keyed by secret. So the same device gets
// the same resource and replaces its old session, while the user-agent id
// itself never appears. Without a user-agent id the suffix is random.
func DeriveResource(secret []byte, account, tag, userAgentID string) string {
	if tag == "" {
		tag = "xmpp2"
	}
	tag = strings.Map(func(r rune) rune {
		if r == '/' || r == '@' || r < ' ' {
			return '_'
		}
		return r
	}, tag)
	var sum []byte
	if userAgentID == "" {
		sum = make([]byte, 8)
		_, _ = rand.Read(sum)
	} else {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(account))
		m.Write([]byte{0})
		m.Write([]byte(userAgentID))
		sum = m.Sum(nil)
	}
	return tag + "." + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum))[:10]
}
