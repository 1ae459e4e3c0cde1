package rewrite

import "testing"

// Typical traffic: a chat message as a 2.0 client sends it, and as the
// upstream delivers one to a full JID (the rerouting case, which does the
// most work).
var (
	benchOut = []byte("<message to='bob@example.net/laptop' type='chat' id='5f3a9c1e-8d2b-4f6a-9e7c-1b2d3e4f5a6b' xml:lang='en'><body>Are we still on for lunch tomorrow?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='5f3a9c1e-8d2b-4f6a-9e7c-1b2d3e4f5a6b'/></message>")
	benchIn  = []byte("<message from='bob@example.net/laptop' to='alice@example.com/phone' type='chat' id='5f3a9c1e-8d2b-4f6a-9e7c-1b2d3e4f5a6b' xml:lang='en'><body>Are we still on for lunch tomorrow?</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='5f3a9c1e-8d2b-4f6a-9e7c-1b2d3e4f5a6b'/><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.com' id='Xq7hQ1u2Tfa'/></message>")
)

func BenchmarkLeaving(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchOut)))
	for b.Loop() {
		if _, err := Leaving(benchOut); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEntering(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchIn)))
	for b.Loop() {
		if _, _, err := Entering(benchIn); err != nil {
			b.Fatal(err)
		}
	}
}

// The allocation count of the hot path is pinned, so that a regression shows
// up as a failing number: the scanner allocates nothing, and the one
// allocation is the rewritten stanza.
func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, tc := range []struct {
		name string
		f    func()
		max  float64
	}{
		{"Leaving", func() { _, _ = Leaving(benchOut) }, maxAllocsLeaving},
		{"Entering", func() { _, _, _ = Entering(benchIn) }, maxAllocsEntering},
	} {
		if got := testing.AllocsPerRun(100, tc.f); got > tc.max {
			t.Errorf("%s: %v allocations per call, want at most %v", tc.name, got, tc.max)
		}
	}
}

const (
	maxAllocsLeaving  = 1
	maxAllocsEntering = 1
)
