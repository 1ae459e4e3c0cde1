package stream

import (
	"errors"
	"testing"
)

// A Framer over a Pending reader returns each unit complete in the writes
// so far, and ErrNeedMore where the writes end, whatever they cut.
func TestPendingSplitsWritesIntoUnits(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"two elements in one write", []string{"<a/><b/>"}, []string{"<a/>", "<b/>"}},
		{"an element cut between writes", []string{"<message><bo", "dy>hi</body></message>"}, []string{"<message><body>hi</body></message>"}},
		{"an empty write adds nothing", []string{"<a/>", "", "<b/>"}, []string{"<a/>", "<b/>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Pending
			fr := NewFramer(&p, Limits{MaxBytes: 1 << 10, MaxDepth: 8})
			fr.OpenStream()
			var got []string
			for _, w := range tc.writes {
				p.Set([]byte(w))
				for {
					u, err := fr.Next()
					if errors.Is(err, ErrNeedMore) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, string(u.Raw))
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("units %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("unit %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
