package bind2

import (
	"strings"
	"testing"
)

func TestBind2ResourceRules(t *testing.T) {
	secret := []byte("s3cret")
	same1 := DeriveResource(secret, "alice", "mobile", "ua-1")
	same2 := DeriveResource(secret, "alice", "mobile", "ua-1")
	random1 := DeriveResource(secret, "alice", "mobile", "")
	random2 := DeriveResource(secret, "alice", "mobile", "")
	tests := []struct {
		name string
		ok   bool
	}{
		{"the same device gets the same resource", same1 == same2},
		{"the resource is tag + '.' + 10 characters", strings.HasPrefix(same1, "mobile.") && len(same1) == len("mobile.")+10},
		{"the user-agent id never appears", !strings.Contains(same1, "ua-1")},
		{"another device gets another resource", DeriveResource(secret, "alice", "mobile", "ua-2") != same1},
		{"another account gets another resource", DeriveResource(secret, "bob", "mobile", "ua-1") != same1},
		{"another secret gets another resource", DeriveResource([]byte("other"), "alice", "mobile", "ua-1") != same1},
		{"without a user-agent id the suffix is random", random1 != random2},
		{"a tag cannot inject JID separators", !strings.ContainsAny(DeriveResource(secret, "a", "x/y@z", "u"), "/@")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Fatal("rule violated")
			}
		})
	}
}
