//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
)

var (
	endIDRE    = regexp.MustCompile(`<end [^>]*\bid=['"]([^'"]+)['"]`)
	stanzaIDRE = regexp.MustCompile(`<stanza-id[^>]*id=['"]([^'"]+)['"]`)
	syncedRE   = regexp.MustCompile(`<synced xmlns='urn:xmpp:xmpp2:0' last='([^']*)' count='(\d+)' complete='(true|false)'/>`)
)

// archiveEnd logs user in with SASL2 and returns the archive's last id
// from the <metadata/> in <bound/>.
func archiveEnd(t *testing.T, e *env, user string) string {
	t.Helper()
	c := e.login2(t, user)
	defer c.Close()
	if !contains(c.Success, "<metadata xmlns='urn:xmpp:mam:2'") {
		t.Fatalf("<bound/> has no archive metadata: %s", c.Success)
	}
	m := endIDRE.FindSubmatch(c.Success)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// catchup reads what a freshly bound 2.0 session receives until <synced/>,
// then a little longer, and returns the elements in order.
func catchup(t *testing.T, c *harness.Client) (before [][]byte, synced []byte, after [][]byte) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for synced == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no <synced/> after %d elements", len(before))
		}
		b, err := c.WaitFor(wait, func([]byte) bool { return true })
		if err != nil {
			t.Fatalf("waiting for the catch-up: %v", err)
		}
		if bytes.HasPrefix(b, []byte("<synced")) {
			synced = b
		} else {
			before = append(before, b)
		}
	}
	return before, synced, c.Collect(500 * time.Millisecond)
}

func bodiesWith(els [][]byte, marker string) []string {
	var out []string
	re := regexp.MustCompile(`<body>([^<]*` + regexp.QuoteMeta(marker) + `[^<]*)</body>`)
	for _, el := range els {
		for _, m := range re.FindAllSubmatch(el, -1) {
			out = append(out, string(m[1]))
		}
	}
	return out
}

func TestSyncAfterDeliversMissedMessagesOnceInOrderBeforeSynced(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		// Make sure the archive has an end to sync after.
		first := "before " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='alice@%s' type='chat'><body>%s</body></message>", domain, first))
		waitArchived(t, e, "alice", first, 1)
		after := archiveEnd(t, e, "alice")
		if after == "" {
			t.Fatalf("no archive end id in <metadata/>; server log:\n%s", srv.Log())
		}
		marker := harness.NewID()
		for i := 1; i <= 3; i++ {
			send(t, bob, fmt.Sprintf("<message to='alice@%s' type='chat' id='m%d-%s'><body>missed %d %s</body></message>", domain, i, marker, i, marker))
		}
		waitArchived(t, e, "alice", marker, 3)
		alice := e.login2(t, "alice", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><sync xmlns='urn:xmpp:xmpp2:0' after='" + after + "'/><presence xmlns='jabber:client'/></bind>"
		})
		before, synced, later := catchup(t, alice)
		got := bodiesWith(before, marker)
		want := []string{"missed 1 " + marker, "missed 2 " + marker, "missed 3 " + marker}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("catch-up bodies %q, want %q in order", got, want)
		}
		for _, el := range before {
			if contains(el, marker) && !contains(el, "queryid='x2-sync'") {
				t.Errorf("catch-up message is not a MAM result with queryid x2-sync: %s", el)
			}
		}
		m := syncedRE.FindSubmatch(synced)
		if m == nil || string(m[2]) != "3" || string(m[3]) != "true" {
			t.Fatalf("synced = %s, want count='3' complete='true'", synced)
		}
		if dup := bodiesWith(later, marker); len(dup) > 0 {
			t.Fatalf("messages delivered again after <synced/> (offline flush not de-duplicated): %q", dup)
		}
	})
}

func TestSyncWithinDeliversTheRecentWindow(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		marker := harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='carol@%s' type='chat'><body>recent %s</body></message>", domain, marker))
		waitArchived(t, e, "carol", marker, 1)
		carol := e.login2(t, "carol", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><sync xmlns='urn:xmpp:xmpp2:0' within='120'/></bind>"
		})
		before, synced, _ := catchup(t, carol)
		if got := bodiesWith(before, marker); len(got) != 1 {
			t.Fatalf("catch-up within 120 s: bodies %q, want the one recent message", got)
		}
		if !contains(synced, "complete='true'") {
			t.Fatalf("synced = %s", synced)
		}
	})
}

func TestInlineJoinEntersTheRoomAndReportsJoined(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		room := fmt.Sprintf("join-%s@%s", harness.NewID(), srv.MUCService())
		erin := e.login(t, "erin")
		openRoom(t, erin, room, "erin")
		dave := e.login2(t, "dave", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><join xmlns='urn:xmpp:xmpp2:0' room='" + room + "' nick='dave'/></bind>"
		})
		if !contains(dave.Success, "<joined xmlns='urn:xmpp:xmpp2:0' room='"+room+"' nick='dave'/>") {
			t.Fatalf("<bound/> lacks <joined/>: %s", dave.Success)
		}
		waitFor(t, erin, "<presence", room+"/dave")
	})
}

func TestInlineJoinFailureIsReportedAndTheSessionStillComesUp(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		room := "nowhere@unknown-service." + domain
		c := e.login2(t, "dave", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><join xmlns='urn:xmpp:xmpp2:0' room='" + room + "' nick='dave'/></bind>"
		})
		if !contains(c.Success, "<join-failed xmlns='urn:xmpp:xmpp2:0' room='"+room+"'><error") {
			t.Fatalf("<bound/> lacks <join-failed/> with the error: %s", c.Success)
		}
		send(t, c, "<iq type='get' id='alive' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq>")
		waitFor(t, c, "alive", "result")
	})
}

func TestInlineJoinWithAfterSyncsTheRoomArchiveInsteadOfHistory(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		room := fmt.Sprintf("archive-%s@%s", harness.NewID(), srv.MUCService())
		erin := e.login(t, "erin")
		openRoom(t, erin, room, "erin")
		marker := harness.NewID()
		var ids []string
		for i := 1; i <= 3; i++ {
			send(t, erin, fmt.Sprintf("<message to='%s' type='groupchat'><body>room %d %s</body></message>", room, i, marker))
			echo := waitFor(t, erin, "<message", fmt.Sprintf("room %d %s", i, marker))
			m := stanzaIDRE.FindSubmatch(echo)
			if m == nil {
				t.Fatalf("room echo has no stanza-id: %s", echo)
			}
			ids = append(ids, string(m[1]))
		}
		dave := e.login2(t, "dave", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><join xmlns='urn:xmpp:xmpp2:0' room='" + room + "' nick='dave' after='" + ids[0] + "'/></bind>"
		})
		before, synced, _ := catchup(t, dave)
		got := bodiesWith(before, marker)
		want := []string{"room 2 " + marker, "room 3 " + marker}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("room catch-up %q, want %q (and no legacy history)", got, want)
		}
		for _, el := range before {
			if contains(el, marker) && !contains(el, "queryid='"+room+"'") {
				t.Errorf("room catch-up message lacks queryid=%s: %s", room, el)
			}
		}
		if !contains(synced, "complete='true'") {
			t.Fatalf("synced = %s", synced)
		}
	})
}

// openRoom has owner create room as nick and configure it open and
// archived (Prosody locks new rooms until their owner configures them).
func openRoom(t *testing.T, owner *harness.Client, room, nick string) {
	t.Helper()
	send(t, owner, fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room, nick))
	waitFor(t, owner, "<presence", room+"/"+nick, "110")
	send(t, owner, "<iq type='set' id='cfg1' to='"+room+"'><query xmlns='http://jabber.org/protocol/muc#owner'>"+
		"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_enablearchiving'><value>1</value></field>"+
		"<field var='mam'><value>1</value></field></x></query></iq>")
	waitFor(t, owner, "cfg1")
}

func TestCatchupCapSaysIncompleteAndLosesNothing(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv, func(c *proxy.Config) { c.Limits.MaxCatchup = 2 })
		bob := e.login(t, "bob")
		first := "before " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='erin@%s' type='chat'><body>%s</body></message>", domain, first))
		waitArchived(t, e, "erin", first, 1)
		after := archiveEnd(t, e, "erin")
		marker := harness.NewID()
		for i := 1; i <= 3; i++ {
			send(t, bob, fmt.Sprintf("<message to='erin@%s' type='chat' id='c%d-%s'><body>capped %d %s</body></message>", domain, i, marker, i, marker))
		}
		waitArchived(t, e, "erin", marker, 3)
		erin := e.login2(t, "erin", func(l *harness.Login) {
			l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>mobile</tag><sync xmlns='urn:xmpp:xmpp2:0' after='" + after + "'/><presence xmlns='jabber:client'/></bind>"
		})
		before, synced, later := catchup(t, erin)
		if got := bodiesWith(before, marker); strings.Join(got, "|") != "capped 1 "+marker+"|capped 2 "+marker {
			t.Fatalf("capped catch-up = %q, want the two oldest", got)
		}
		if m := syncedRE.FindSubmatch(synced); m == nil || string(m[2]) != "2" || string(m[3]) != "false" {
			t.Fatalf("synced = %s, want count='2' complete='false'", synced)
		}
		if got := bodiesWith(later, marker); len(got) != 1 || got[0] != "capped 3 "+marker {
			t.Fatalf("after <synced/>: %q, want the third message once (offline flush)", got)
		}
	})
}

var startIDRE = regexp.MustCompile(`<start [^>]*\bid=['"]([^'"]+)['"]`)

// edgesOf returns the start and end archive ids of <bound/>'s <metadata/>.
func edgesOf(t *testing.T, success []byte) (start, end string) {
	t.Helper()
	s, e := startIDRE.FindSubmatch(success), endIDRE.FindSubmatch(success)
	if s == nil || e == nil {
		t.Fatalf("<bound/> lacks the archive's start or end: %s", success)
	}
	return string(s[1]), string(e[1])
}

// TestArchiveMetadataStaysTrueWhenTheProxyRemembersIt logs ken (its own
// account: what it leaves offline bothers nobody) in
// again and again with <sync after='...'/>: from the second login on, the
// proxy has the archive's start cached and takes the end from the
// catch-up. The <metadata/> in <bound/> must still be what the server
// says, whether messages came in between or not.
func TestArchiveMetadataStaysTrueWhenTheProxyRemembersIt(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv harness.Server) {
		e := startProxy(t, srv)
		bob := e.login(t, "bob")
		// ken's own classic resource, straight on the server and without
		// presence, asks the archive until each write has landed.
		archive := e.login(t, "ken", directTo(srv))
		first := "first " + harness.NewID()
		send(t, bob, fmt.Sprintf("<message to='ken@%s' type='chat'><body>%s</body></message>", domain, first))
		lastArchived(t, archive, first)
		syncAfter := func(after string) ([]byte, []byte) {
			c := e.login2(t, "ken", func(l *harness.Login) {
				l.Inline = "<bind xmlns='urn:xmpp:bind:0'><tag>meta</tag><sync xmlns='urn:xmpp:xmpp2:0' after='" + after + "'/></bind>"
			})
			defer c.Close()
			_, synced, _ := catchup(t, c)
			return c.Success, synced
		}
		serverSays := func() (string, string) { // a login without <sync/> always asks the server
			c := e.login2(t, "ken")
			defer c.Close()
			return edgesOf(t, c.Success)
		}
		start, end := serverSays()
		success, _ := syncAfter(end) // fills the cache
		if s, en := edgesOf(t, success); s != start || en != end {
			t.Fatalf("first sync: edges %s..%s, server says %s..%s", s, en, start, end)
		}
		marker := harness.NewID()
		for i := 1; i <= 3; i++ {
			send(t, bob, fmt.Sprintf("<message to='ken@%s' type='chat'><body>new %d %s</body></message>", domain, i, marker))
		}
		lastArchived(t, archive, fmt.Sprintf("new 3 %s", marker))
		success, synced := syncAfter(end)
		m := syncedRE.FindSubmatch(synced)
		newStart, newEnd := serverSays()
		if s, en := edgesOf(t, success); s != newStart || en != newEnd || m == nil || string(m[1]) != newEnd {
			t.Fatalf("after new messages: edges %s..%s, synced %s; server says %s..%s", s, en, synced, newStart, newEnd)
		}
		success, _ = syncAfter(newEnd) // nothing new: the cached end stands
		if s, en := edgesOf(t, success); s != newStart || en != newEnd {
			t.Fatalf("nothing new: edges %s..%s, server says %s..%s", s, en, newStart, newEnd)
		}
		success, _ = syncAfter(end) // an older id than the end, three after it
		if s, en := edgesOf(t, success); s != newStart || en != newEnd {
			t.Fatalf("sync from an older id: edges %s..%s, server says %s..%s", s, en, newStart, newEnd)
		}
	})
}
