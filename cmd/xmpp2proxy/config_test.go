package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{"bad drain timeout names the line", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\ntimeouts:\n  drain: later\n", []string{"[5:", "later"}},
		{"zero drain timeout is named", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\ntimeouts:\n  drain: 0s\n", []string{"timeouts.drain: must be positive"}},
		{"negative drain timeout is named", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\ntimeouts:\n  drain: -5s\n", []string{"timeouts.drain: must be positive"}},
		{"misspelt drain key names key and line", "upstream: a:1\ndomains: [x]\nallow_plaintext: true\ntimeouts:\n  drian: 5s\n", []string{"[5:3]", "drian"}},
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

func TestDrainTimeoutComesFromTheFileOrTheFlag(t *testing.T) {
	const base = "upstream: a:1\ndomains: [x]\nallow_plaintext: true\n"
	tests := []struct {
		name string
		yaml string // "" for no config file
		args []string
		want time.Duration
	}{
		{"default", base, nil, 10 * time.Second},
		{"file", base + "timeouts:\n  drain: 45s\n", nil, 45 * time.Second},
		{"flag wins over the file", base + "timeouts:\n  drain: 45s\n", []string{"--drain-timeout", "3s"}, 3 * time.Second},
		{"flag without a file", "", []string{"--upstream", "a:1", "--domain", "x", "--allow-plaintext", "--drain-timeout", "2m"}, 2 * time.Minute},
		{"other flags keep the file's value", base + "timeouts:\n  drain: 45s\n", []string{"--log-level", "debug"}, 45 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newServeCmd()
			var f serveFlags
			cmd.ResetFlags()
			f.register(cmd.Flags())
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"--config", writeFile(t, tc.yaml)}, args...)
			}
			if err := cmd.Flags().Parse(args); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Duration(cfg.Timeouts.Drain); got != tc.want {
				t.Errorf("drain = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDrainTimeoutFlagRejectsABadDuration(t *testing.T) {
	cmd := newServeCmd()
	var f serveFlags
	cmd.ResetFlags()
	f.register(cmd.Flags())
	if err := cmd.Flags().Parse([]string{"--drain-timeout", "soon"}); err == nil || !strings.Contains(err.Error(), "drain-timeout") {
		t.Fatalf("parse: %v, want an error naming --drain-timeout", err)
	}
	if err := cmd.Flags().Parse([]string{"--upstream", "a:1", "--domain", "x", "--allow-plaintext", "--drain-timeout", "0s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.load(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "timeouts.drain") {
		t.Fatalf("load: %v, want timeouts.drain refused", err)
	}
}

func TestVersionPrintsTheName(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "xmpp2proxy ") {
		t.Fatalf("version: %v %q", err, out)
	}
}
