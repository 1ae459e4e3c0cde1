package stream

import "testing"

// Routing reads to, id and type on every message; reading them must not
// allocate when they hold no references.
func TestReadingRoutingAttributesDoesNotAllocate(t *testing.T) {
	raw := []byte(`<message from='bob@localhost/desk' to='alice@localhost/one' type='chat' id='5f3a9c1e'><body>hi</body></message>`)
	var sink int
	n := testing.AllocsPerRun(1000, func() {
		for _, name := range [...]string{"to", "id", "type"} {
			sink += len(AttrBytes(raw, name))
		}
		if HasAttr(raw, "to") && AttrEqualFold(raw, "to", "Alice@localhost/one") {
			sink++
		}
		name, _ := ElementName(raw)
		sink += len(name)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
	if sink == 0 {
		t.Fatal("nothing read")
	}
}
