package main

import (
	"slices"
	"strings"
	"testing"
)

// The websocket_* keys are checked like every other key: each problem
// names the key and its line, and check-config finds them all.
func TestWebSocketSettingsAreChecked(t *testing.T) {
	c := selfSigned(t)
	withCert := "cert: " + c.CertFile + "\nkey: " + c.KeyFile + "\n"
	tests := []struct {
		name string
		yaml string
		want []string
		// wantPrefix, when set, is how the one problem starts (the
		// YAML library words the rest).
		wantPrefix string
	}{
		{name: "a loopback plain listener passes (a web server in front terminates TLS)",
			yaml: "upstream: a:1\ndomains: [x]\n" + withCert + "websocket_listen: 127.0.0.1:5280\n"},
		{name: "a wss listener with the certificate passes",
			yaml: "upstream: a:1\ndomains: [x]\n" + withCert + "websocket_listen: :5281\nwebsocket_tls: true\n"},
		{name: "a plain listener on every address needs allow_plaintext",
			yaml: "upstream: a:1\ndomains: [x]\n" + withCert + "websocket_listen: :5280\n",
			want: []string{`websocket_listen (line 5): ":5280" is not a loopback address, so plain WebSocket there would carry passwords in the clear: set websocket_tls: true, or allow_plaintext: true when a TLS-terminating web server on another host is in front`}},
		{name: "a plain listener on every address passes with allow_plaintext",
			yaml: base + "websocket_listen: :5280\n"},
		{name: "the WebSocket listener alone is something to listen on",
			yaml: base + "listen: \"\"\nwebsocket_listen: localhost:5280\n"},
		{name: "a listen address that is not HOST:PORT is named",
			yaml: base + "websocket_listen: 5280\n",
			want: []string{`websocket_listen (line 4): "5280" is not HOST:PORT (":5222" listens on every address)`}},
		{name: "wss needs a certificate",
			yaml: base + "websocket_listen: 127.0.0.1:5281\nwebsocket_tls: true\n",
			want: []string{"cert: is required, with key, by websocket_tls (line 5)"}},
		{name: "the path must be absolute",
			yaml: base + "websocket_listen: 127.0.0.1:5280\nwebsocket_path: xmpp\n",
			want: []string{`websocket_path (line 5): "xmpp" must start with / (like /xmpp-websocket)`}},
		{name: "the path must not hold pattern syntax",
			yaml: base + "websocket_listen: 127.0.0.1:5280\nwebsocket_path: /{x}\n",
			want: []string{`websocket_path (line 5): "/{x}" has '{', which a URL path cannot hold unescaped`}},
		{name: "a broken origin pattern names its line",
			yaml: base + "websocket_listen: 127.0.0.1:5280\nwebsocket_origins:\n  - chat.example.org\n  - \"[a-\"\n",
			want: []string{`websocket_origins (line 7): "[a-" is not a valid pattern (like *.example.org or https://chat.example.org)`}},
		{name: "a misspelt key is named with the one meant",
			yaml: base + "websocket_orgins: [x]\n",
			want: []string{"websocket_orgins (line 4): unknown key (did you mean websocket_origins?)"}},
		{name: "a boolean that is not one speaks YAML",
			yaml: base + "websocket_tls: sure\n", wantPrefix: "websocket_tls (line 4): "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := checkConfig(t, tc.yaml)
			if tc.wantPrefix != "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], tc.wantPrefix) {
					t.Fatalf("problems %q, want one starting %q", got, tc.wantPrefix)
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestWebSocketListenFlagWinsOverTheFile(t *testing.T) {
	got := checkConfig(t, base+"websocket_listen: 127.0.0.1:5280\n", "--websocket-listen", "nope")
	want := []string{`websocket_listen (flag --websocket-listen): "nope" is not HOST:PORT (":5222" listens on every address)`}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}
