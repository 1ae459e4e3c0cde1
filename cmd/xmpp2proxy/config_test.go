package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfigPassesCheckConfig(t *testing.T) {
	out, err := runCLI(t, "check-config", "--config", "../../configs/xmpp2proxy.example.yaml")
	if err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("check-config on the example: %v\n%s", err, out)
	}
}

func TestCheckConfigNamesTheBadFieldAndLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown key names key and line", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\nlistn: ':1'\n", []string{"[4:1]", `unknown field "listn"`}},
		{"nested unknown key names key and line", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\nlimits:\n  max_depht: 3\n", []string{"[5:3]", "max_depht"}},
		{"wrong type names the line", "upstream: a:1\ndomains: [x]\nallow_plaintext: yes please\nqueue_size: many\n", []string{"[3:"}},
		{"bad duration names the line", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\ntimeouts:\n  idle: soon\n", []string{"[5:", "soon"}},
		{"bad upstream_tls value is named", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\nupstream_tls: maybe\n", []string{"upstream_tls", "maybe"}},
		{"missing upstream is named", "domains: [x]\nallow_plaintext: true\n", []string{"upstream: is required"}},
		{"missing domains is named", "upstream: a:1\nallow_plaintext: true\n", []string{"domains"}},
		{"no TLS and no plaintext is refused", "upstream: a:1\ndomains: [x]\n", []string{"allow_plaintext"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLI(t, "check-config", "--config", writeFile(t, tc.yaml))
			if err == nil {
				t.Fatal("check-config accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestServeFlagsWinOverTheConfigFile(t *testing.T) {
	path := writeFile(t, "upstream: file:1\nupstream_tls: tls\ndomains: [file.example]\nallow_plaintext: true\nlog_level: warn\n")
	cmd := newServeCmd()
	var f serveFlags
	cmd.ResetFlags()
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--config", path, "--upstream", "flag:2", "--domain", "a.example", "--domain", "b.example"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.load(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream != "flag:2" {
		t.Errorf("upstream = %q, want the flag's value", cfg.Upstream)
	}
	if strings.Join(cfg.Domains, ",") != "a.example,b.example" {
		t.Errorf("domains = %v, want the flags' values", cfg.Domains)
	}
	if cfg.UpstreamTLS != "tls" || cfg.LogLevel != "warn" {
		t.Errorf("values only in the file were lost: %+v", cfg)
	}
	if cfg.Listen != ":5222" {
		t.Errorf("listen = %q, want the default", cfg.Listen)
	}
}

func TestVersionPrintsTheName(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "xmpp2proxy ") {
		t.Fatalf("version: %v %q", err, out)
	}
}
