package main

import (
	"slices"
	"testing"
)

// metrics_listen is checked like the other listen addresses, from the
// file and from its flag, and is off unless set.
func TestMetricsListenIsCheckedLikeTheOtherListenAddresses(t *testing.T) {
	const base = "upstream: 127.0.0.1:5222\ndomains: [x]\nallow_plaintext: true\n"
	tests := []struct {
		name string
		yaml string
		args []string
		want []string
	}{
		{"metrics_listen is off when not set", base, nil, nil},
		{"a metrics_listen address passes", base + "metrics_listen: 127.0.0.1:9090\n", nil, nil},
		{"a metrics_listen port out of range is refused", base + "metrics_listen: \":99999\"\n", nil,
			[]string{`metrics_listen (line 4): ":99999": port "99999" is not a number from 0 to 65535`}},
		{"a metrics_listen address without a port is refused", base + "metrics_listen: 127.0.0.1\n", nil,
			[]string{`metrics_listen (line 4): "127.0.0.1" is not HOST:PORT (":5222" listens on every address)`}},
		{"a bad --metrics-listen is named by its flag", base, []string{"--metrics-listen", "localhost"},
			[]string{`metrics_listen (flag --metrics-listen): "localhost" is not HOST:PORT (":5222" listens on every address)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkConfig(t, tc.yaml, tc.args...); !slices.Equal(got, tc.want) {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
		})
	}
}
