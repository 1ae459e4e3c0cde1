package proxy

import "testing"

func TestA20SessionsNegativePriorityGoesUpstreamAsZero(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a negative priority is raised to 0",
			"<presence><show>away</show><priority>-5</priority></presence>", "<presence><show>away</show><priority>0</priority></presence>"},
		{"spaces around the number do not hide it",
			"<presence><priority> -1 </priority></presence>", "<presence><priority>0</priority></presence>"},
		{"a positive priority is kept",
			"<presence><priority>5</priority></presence>", "<presence><priority>5</priority></presence>"},
		{"zero is kept", "<presence><priority>0</priority></presence>", "<presence><priority>0</priority></presence>"},
		{"no priority is kept", "<presence><show>dnd</show></presence>", "<presence><show>dnd</show></presence>"},
		{"a priority that is not a number is left for the server to refuse",
			"<presence><priority>low</priority></presence>", "<presence><priority>low</priority></presence>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(clampPriority([]byte(tt.in))); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestOnlyTheSessionsOwnPresenceIsClamped(t *testing.T) {
	tests := []struct {
		name string
		in   string
		own  bool
	}{
		{"an available presence without to is the session's own", "<presence><priority>-1</priority></presence>", true},
		{"a directed presence is not", "<presence to='bob@localhost'><priority>-1</priority></presence>", false},
		{"a MUC join is not", "<presence to='room@conference.localhost/nick'/>", false},
		{"unavailable is not", "<presence type='unavailable'/>", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isBroadcastPresence([]byte(tt.in)); got != tt.own {
				t.Fatalf("own = %v, want %v", got, tt.own)
			}
		})
	}
}
