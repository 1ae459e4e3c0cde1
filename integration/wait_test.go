//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// waitArchived asks user's archive, as a classic client, until its last
// 50 messages hold n that carry marker. A server stores a message a
// moment after it routes it: the archive answering is the event to wait
// on before reading the archive's end or syncing.
func waitArchived(t testing.TB, e *env, user, marker string, n int) {
	t.Helper()
	c := e.login(t, user)
	defer c.Close()
	deadline := time.Now().Add(wait)
	for len(elementsWith(archiveQuery(t, c), marker)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s's archive never held %d messages marked %q", user, n, marker)
		}
	}
}

// setPresence sends c's presence and waits for the server's broadcast of
// it back to c (RFC 6121 4.4.2: to every available resource of the user,
// the sender included), so that the server routes by it from then on.
func setPresence(t testing.TB, c *harness.Client, presence, mark string) {
	t.Helper()
	send(t, c, presence)
	waitFor(t, c, "<presence", "from='"+c.JID+"'", mark)
}
