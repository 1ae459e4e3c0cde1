package main

import (
	"slices"
	"strings"
	"testing"
)

// The PROXY protocol keys are checked like every other: each problem names
// the key and the line (or the flag) to change, once.
func TestPROXYProtocolSettingsAreChecked(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		args []string
		want []string
	}{
		{name: "both listeners behind a balancer, from its network, v2 upstream pass",
			yaml: base + "direct_tls_listen: ''\nproxy_protocol: [starttls]\nproxy_protocol_from: [10.0.0.0/8, 192.0.2.7]\nupstream_proxy_protocol: v2\n"},
		{name: "flags set the same",
			yaml: base, args: []string{"--proxy-protocol", "starttls", "--proxy-protocol-from", "10.0.0.0/8,::1", "--upstream-proxy-protocol", "v1"}},
		{name: "an unknown listener is named by its own line",
			yaml: base + "proxy_protocol:\n  - starttls\n  - c2s\n",
			want: []string{`proxy_protocol (line 6): "c2s" is not a listener; use starttls or direct_tls`}},
		{name: "a listener listed twice is named",
			yaml: base + "proxy_protocol: [starttls, starttls]\n",
			want: []string{`proxy_protocol (line 4): "starttls" is listed twice`}},
		{name: "a listener that is off is named with the key that turns it off",
			yaml: base + "proxy_protocol: [direct_tls]\n",
			want: []string{`proxy_protocol (line 4): "direct_tls" names a listener that is off (direct_tls_listen is empty)`}},
		{name: "a source that is no address is named",
			yaml: base + "proxy_protocol: [starttls]\nproxy_protocol_from:\n  - 10.0.0.0/33\n  - balancer.example\n",
			want: []string{`proxy_protocol_from (line 6): "10.0.0.0/33" is not a network (like 10.0.0.0/8)`,
				`proxy_protocol_from (line 7): "balancer.example" is neither an IP address nor a network (like 10.0.0.0/8)`}},
		{name: "trusted sources without a listener that reads the header have no effect",
			yaml: base + "proxy_protocol_from: [10.0.0.0/8]\n",
			want: []string{"proxy_protocol_from (line 4): has no effect: no listener reads PROXY headers (set proxy_protocol)"}},
		{name: "an unknown upstream version is named",
			yaml: base + "upstream_proxy_protocol: v3\n",
			want: []string{`upstream_proxy_protocol (line 4): "v3" is not one of v1, v2 (or empty for none)`}},
		{name: "a bad flag is named by the flag",
			yaml: base, args: []string{"--proxy-protocol", "websocket"},
			want: []string{`proxy_protocol (flag --proxy-protocol): "websocket" is not a listener; use starttls or direct_tls`}},
		{name: "a zero header timeout is refused",
			yaml: base + "timeouts:\n  proxy_header: 0s\n",
			want: []string{"timeouts.proxy_header (line 5): must be positive, not 0s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkConfig(t, tc.yaml, tc.args...); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
