//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/integration/harness"
)

// BenchmarkSessionSetup measures the time from TCP connect to a synced
// session: authenticated, bound, carbons and SM enabled, initial presence
// sent, a catch-up of 50 archived messages, and 3 MUC joins. The 2.0 client
// does it through the proxy with SASL2 + Bind2 (the <authenticate/>
// pipelined after the stream header). Two classic clients do it directly
// against the same server, in the same run: classicPipelined, a generous
// one that overlaps what it safely can, and classicSequential, which waits
// for every answer as a straightforward classic client does. A loopback
// relay adds oneWay latency in each direction between the client and
// whatever it dials; the proxy sits next to the server, as deployed.
//
// Besides the mean times, each row reports them in round trips
// (classic-RTTs, classic-seq-RTTs, x2-RTTs) and the ratios of each classic
// flow to the 2.0 one (speedup, speedup-seq).
func BenchmarkSessionSetup(b *testing.B) {
	const oneWay = 25 * time.Millisecond
	for _, srv := range servers {
		b.Run(srv.Name(), func(b *testing.B) {
			e := startProxy(b, srv)
			fresh := newSetupFixture(b, e, srv)
			// The same synced session for an account whose archive holds
			// archiveSize messages (its <sync/> still reads the last 50).
			full := *fresh
			full.user, full.after = archiveUser, seedArchive(b, e, srv).after50
			for _, variant := range setupVariants {
				transport, mech, archive := variant[0], variant[1], variant[2]
				fx := fresh
				if archive != "" {
					fx = &full
				}
				b.Run(transport+"/"+mech+archive, func(b *testing.B) {
					direct := transport == "direct-tls"
					serverAddr, proxyAddr := srv.Addr(), e.proxy.Addr().String()
					if direct {
						serverAddr, proxyAddr = srv.DirectTLSAddr(), e.proxy.DirectTLSAddr().String()
					}
					toServer := newRelay(b, serverAddr, oneWay)
					toProxy := newRelay(b, proxyAddr, oneWay)
					// One untimed round first: a device that reconnects finds
					// TLS, the server's caches and the proxy's archive edges
					// warm; the first login of all pays more (docs/performance.md).
					fx.classicSetup(b, classicPipelined, toServer.Addr(), direct, mech)
					fx.classicSetup(b, classicSequential, toServer.Addr(), direct, mech)
					fx.x2Setup(b, toProxy.Addr(), direct, mech)
					var classic, classicSeq, x2 time.Duration
					for b.Loop() {
						classic += fx.classicSetup(b, classicPipelined, toServer.Addr(), direct, mech)
						classicSeq += fx.classicSetup(b, classicSequential, toServer.Addr(), direct, mech)
						x2 += fx.x2Setup(b, toProxy.Addr(), direct, mech)
					}
					rtt := 2 * oneWay
					n := time.Duration(b.N)
					b.ReportMetric(float64((classic / n).Milliseconds()), "classic-ms")
					b.ReportMetric(float64((classicSeq / n).Milliseconds()), "classic-seq-ms")
					b.ReportMetric(float64((x2 / n).Milliseconds()), "x2-ms")
					b.ReportMetric(float64(classic/n)/float64(rtt), "classic-RTTs")
					b.ReportMetric(float64(classicSeq/n)/float64(rtt), "classic-seq-RTTs")
					b.ReportMetric(float64(x2/n)/float64(rtt), "x2-RTTs")
					b.ReportMetric(float64(classic)/float64(x2), "speedup")
					b.ReportMetric(float64(classicSeq)/float64(x2), "speedup-seq")
				})
			}
		})
	}
}

func newRelay(b *testing.B, target string, oneWay time.Duration) *harness.DelayRelay {
	r, err := harness.NewDelayRelay(target, oneWay)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// setupVariants are the transports, mechanisms and archives measured:
// SCRAM costs two SASL round trips in both profiles, PLAIN (offered on
// TLS) one; "/archive-5000" is the account with archiveSize messages.
var setupVariants = [][3]string{
	{"direct-tls", "PLAIN", ""}, {"direct-tls", "SCRAM-SHA-1", ""},
	{"starttls", "PLAIN", ""}, {"starttls", "SCRAM-SHA-1", ""},
	{"direct-tls", "PLAIN", "/archive-5000"},
}

const (
	setupUser     = "frank"
	setupMessages = 50
	setupRooms    = 3
)

// setupFixture is an account with setupMessages archived after a known
// archive id, and setupRooms open rooms.
type setupFixture struct {
	e     *env
	user  string
	after string
	rooms []string
}

func newSetupFixture(b *testing.B, e *env, srv harness.Server) *setupFixture {
	fx := &setupFixture{e: e, user: setupUser}
	peer := e.login(b, "grace")
	run := harness.NewID()
	send(b, peer, fmt.Sprintf("<message to='%s@%s' type='chat'><body>before the window %s</body></message>", setupUser, domain, run))
	waitArchived(b, e, setupUser, "before the window "+run, 1)
	c := e.login2(b, setupUser)
	m := endIDRE.FindSubmatch(c.Success)
	c.Close()
	if m == nil {
		b.Fatalf("no archive end: %s", c.Success)
	}
	fx.after = string(m[1])
	for i := 0; i < setupMessages; i++ {
		send(b, peer, fmt.Sprintf("<message to='%s@%s' type='chat' id='w%d'><body>in the window %d %s</body></message>", setupUser, domain, i, i, run))
	}
	for i := 0; i < setupRooms; i++ {
		room := fmt.Sprintf("bench%d-%s@%s", i, harness.NewID(), srv.MUCService())
		send(b, peer, fmt.Sprintf("<presence to='%s/grace'><x xmlns='http://jabber.org/protocol/muc'/></presence>", room))
		waitFor(b, peer, "<presence", room+"/grace", "110")
		send(b, peer, "<iq type='set' id='cfg-"+room+"' to='"+room+"'><query xmlns='http://jabber.org/protocol/muc#owner'>"+
			"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field></x></query></iq>")
		waitFor(b, peer, "cfg-"+room)
		fx.rooms = append(fx.rooms, room)
	}
	waitArchived(b, e, setupUser, fmt.Sprintf("in the window %d %s", setupMessages-1, run), 1)
	return fx
}

var mamResultRE = regexp.MustCompile(`queryid='x2-bench'`)

// classicFlow is how a classic client paces the steps of its setup.
type classicFlow struct {
	// resource is bound and used as the MUC nick. Each flow has its own, so
	// that one flow's session never conflicts with the previous one's.
	resource string
	// sequential waits for every answer before the next step, as a
	// straightforward classic client does (slixmpp's join_muc_wait, for
	// one): the reflection of its initial presence before the MAM query,
	// and each room's self-presence before joining the next. Without it,
	// the initial presence goes out unanswered just ahead of the MAM query
	// and the joins go together.
	sequential bool
}

var (
	// classicPipelined is the generous classic client.
	classicPipelined = classicFlow{resource: "classic"}
	// classicSequential is the classic client that waits for every answer.
	classicSequential = classicFlow{resource: "classic-seq", sequential: true}
)

// classicSetup does every step the classic way, directly against the
// server: TLS (STARTTLS or direct), SASL, restart, bind, carbons, SM
// enable, each waiting for its answer, then presence, a MAM query and
// three joins, paced as flow says.
func (fx *setupFixture) classicSetup(b *testing.B, flow classicFlow, addr string, directTLS bool, mech string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := harness.Dial(ctx, harness.Login{Addr: addr, Domain: domain, User: fx.user, Password: password,
		Mechanism: mech, TLS: &tls.Config{InsecureSkipVerify: true}, DirectTLS: directTLS, Resource: flow.resource}) //nolint:gosec // test server
	if err != nil {
		b.Fatalf("classic login: %v", err)
	}
	defer c.Close()
	send(b, c, "<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	waitFor(b, c, "carbons")
	send(b, c, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	waitFor(b, c, "<enabled")
	if flow.sequential {
		goOnline(b, c)
	} else {
		send(b, c, "<presence/>")
	}
	send(b, c, "<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='x2-bench'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max><after>"+fx.after+"</after></set></query></iq>")
	results := 0
	for {
		el := waitFor(b, c, "")
		if mamResultRE.Match(el) {
			results++
		}
		if contains(el, "id='mam'") {
			break
		}
	}
	if results != setupMessages {
		b.Fatalf("classic MAM query returned %d messages, want %d", results, setupMessages)
	}
	join := func(room string) {
		send(b, c, fmt.Sprintf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>", room, fx.user+"-"+flow.resource))
	}
	if flow.sequential {
		for _, room := range fx.rooms {
			join(room)
			waitFor(b, c, "<presence", "from='"+room+"/"+fx.user+"-"+flow.resource+"'", "110")
		}
		return time.Since(start)
	}
	for _, room := range fx.rooms {
		join(room)
	}
	for joined := 0; joined < len(fx.rooms); {
		if el := waitFor(b, c, "<presence"); contains(el, "110") {
			joined++
		}
	}
	return time.Since(start)
}

// x2Setup does the same with one SASL2 + Bind2 request through the proxy.
func (fx *setupFixture) x2Setup(b *testing.B, addr string, directTLS bool, mech string) time.Duration {
	var joins strings.Builder
	for _, room := range fx.rooms {
		fmt.Fprintf(&joins, "<join xmlns='urn:xmpp:xmpp2:0' room='%s' nick='%s-x2'/>", room, fx.user)
	}
	inline := "<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/>" +
		"<enable xmlns='urn:xmpp:carbons:2'/><sync xmlns='urn:xmpp:xmpp2:0' after='" + fx.after + "'/>" +
		"<presence xmlns='jabber:client'/>" + joins.String() + "</bind>"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	c, err := harness.Dial(ctx, harness.Login{Addr: addr, Domain: domain, User: fx.user, Password: password,
		Mechanism: mech, TLS: fx.e.cert.ClientConfig(domain), DirectTLS: directTLS,
		SASL2: true, Pipeline: true, Inline: inline})
	if err != nil {
		b.Fatalf("2.0 login: %v", err)
	}
	defer c.Close()
	success := time.Since(start)
	synced := waitFor(b, c, "<synced")
	elapsed := time.Since(start)
	if os.Getenv("SETUP_TRACE") != "" {
		b.Logf("x2 setup %s: success after %v, synced after %v", fx.user, success, elapsed)
	}
	if m := syncedRE.FindSubmatch(synced); m == nil || string(m[2]) != fmt.Sprint(setupMessages) {
		b.Fatalf("synced = %s, want count='%d'", synced, setupMessages)
	}
	if n := strings.Count(string(c.Success), "<joined "); n != setupRooms {
		b.Fatalf("%d rooms joined, want %d: %s", n, setupRooms, c.Success)
	}
	return elapsed
}
