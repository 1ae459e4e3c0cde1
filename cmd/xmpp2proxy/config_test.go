package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
	"github.com/xmpp2proxy/xmpp2proxy/proxy"
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

// problems splits a config error into its problems, without the file name
// it starts with: "F: p" or "F: N problems:\n  p1\n  p2".
func problems(t *testing.T, err error, file string) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	msg, ok := strings.CutPrefix(err.Error(), file+": ")
	if !ok {
		t.Fatalf("error %q does not start with the file name %q", err, file)
	}
	head, rest, multi := strings.Cut(msg, "\n")
	if !multi || !regexp.MustCompile(`^\d+ problems:$`).MatchString(head) {
		return []string{msg}
	}
	var out []string
	for _, l := range strings.Split(rest, "\n") {
		out = append(out, strings.TrimPrefix(l, "  "))
	}
	return out
}

// checkConfig runs check-config on yaml with args, and returns its
// problems (none when it passes).
func checkConfig(t *testing.T, yaml string, args ...string) []string {
	t.Helper()
	path := writeFile(t, yaml)
	out, err := runCLI(t, append([]string{"check-config", "--config", path}, args...)...)
	if err == nil && out != path+": ok\n" {
		t.Fatalf("check-config passed but printed %q", out)
	}
	return problems(t, err, path)
}

// base is the least a config needs to pass without a certificate.
const base = "upstream: a:1\ndomains: [x]\nallow_plaintext: true\n"

// selfSigned writes a certificate and key for check-config to load.
func selfSigned(t *testing.T) *demo.Cert {
	t.Helper()
	c, err := demo.SelfSigned(t.TempDir(), "proxy", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An empty or comment-only file means every default: only what has no
// default is reported, once each.
func TestAnEmptyConfigMeansTheDefaults(t *testing.T) {
	required := []string{
		"upstream: is required (the XMPP server's client address, HOST:PORT)",
		"domains: is required (the XMPP domains served, like [example.org])",
		"cert: is required, with key; without TLS clients can log in only with allow_plaintext: true (for loopback)",
	}
	tests := []struct {
		name string
		yaml string
	}{
		{"an empty file", ""},
		{"a comment-only file", "# nothing here yet\n\n# upstream: 127.0.0.1:15222\n"},
		{"a file of empty sections", "limits:\n  # max_depth: 64\ntimeouts:\n"},
		{"a document marker alone", "---\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name+" reports only what has no default", func(t *testing.T) {
			if got := checkConfig(t, tc.yaml); !slices.Equal(got, required) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(required, "\n"))
			}
		})
		t.Run(tc.name+" keeps every default", func(t *testing.T) {
			cfg, _, err := proxy.LoadConfig(writeFile(t, tc.yaml), func(c *proxy.Config) {
				c.Upstream, c.Domains, c.AllowPlaintext = "a:1", []string{"x"}, true
			})
			if err != nil {
				t.Fatal(err)
			}
			want := proxy.DefaultConfig()
			want.Upstream, want.Domains, want.AllowPlaintext = "a:1", []string{"x"}, true
			if !sameSettings(cfg, want) {
				t.Errorf("got  %+v\nwant %+v", cfg, want)
			}
		})
	}
}

// sameSettings compares two configurations' settings (the exported
// fields), not where each came from.
func sameSettings(a, b proxy.Config) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if va.Type().Field(i).IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// Every problem names the YAML key and its line, in the file's terms.
func TestProblemsNameTheKeyAndLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"an unknown key is named with its line and the likely key",
			base + "listn: ':1'\n", []string{"listn (line 4): unknown key (did you mean listen?)"}},
		{"an unknown nested key is named with its full path",
			base + "limits:\n  max_depht: 3\n", []string{"limits.max_depht (line 5): unknown key (did you mean limits.max_depth?)"}},
		{"a word where a number goes is not a whole number",
			base + "limits: {max_depth: \"x\"}\n", []string{`limits.max_depth (line 4): "x" is not a whole number`}},
		{"a fraction is not a whole number",
			base + "queue_size: 1.5\n", []string{"queue_size (line 4): 1.5 is not a whole number"}},
		{"a number without a unit is not a duration",
			base + "timeouts: {idle: 5}\n", []string{"timeouts.idle (line 4): 5 has no unit; write it like 5s or 5m"}},
		{"a word is not a duration",
			base + "timeouts:\n  drain: later\n", []string{`timeouts.drain (line 5): "later" is not a duration (like 30s, 5m or 1h)`}},
		{"a log level is one of its four words",
			base + "log_level: loud\n", []string{`log_level (line 4): "loud" is not one of debug, info, warn, error`}},
		{"a switch takes true or false",
			base + "upstream_insecure: yes please\n", []string{`upstream_insecure (line 4): "yes please" is not true or false`}},
		{"a section needs its keys below it",
			base + "limits: \"abc\"\n", []string{`limits (line 4): "abc" is not a mapping; put its keys on the lines below it, indented`}},
		{"a list needs list syntax",
			"upstream: a:1\ndomains: example.org\nallow_plaintext: true\n",
			[]string{`domains (line 2): "example.org" is not a list; write [example.org], or one "- example.org" per line below`}},
		{"a text value cannot be a mapping",
			"upstream: {host: a}\ndomains: [x]\nallow_plaintext: true\n", []string{"upstream (line 1): a mapping is not a string"}},
		{"a number left empty has no value",
			base + "limits:\n  max_depth:\n", []string{"limits.max_depth (line 5): has no value"}},
		{"an unknown upstream_tls is named",
			base + "upstream_tls: maybe\n", []string{`upstream_tls (line 4): "maybe" is not one of none, starttls, tls`}},
		{"an unknown log_format is named",
			base + "log_format: xml\n", []string{`log_format (line 4): "xml" is not one of text, json`}},
		{"a listen port above 65535 is refused",
			base + "listen: \":99999\"\n", []string{`listen (line 4): ":99999": port "99999" is not a number from 0 to 65535`}},
		{"a listen address without a port is refused",
			base + "listen: 127.0.0.1\n", []string{`listen (line 4): "127.0.0.1" is not HOST:PORT (":5222" listens on every address)`}},
		{"an upstream without a port is refused",
			"upstream: xmpp.example.org\ndomains: [x]\nallow_plaintext: true\n",
			[]string{`upstream (line 1): "xmpp.example.org" is not HOST:PORT (like 127.0.0.1:5222)`}},
		{"an upstream without a host is refused",
			"upstream: \":5222\"\ndomains: [x]\nallow_plaintext: true\n", []string{`upstream (line 1): ":5222" has no host (like 127.0.0.1:5222)`}},
		{"an upstream port out of range is refused",
			"upstream: a:70000\ndomains: [x]\nallow_plaintext: true\n", []string{`upstream (line 1): "a:70000": port "70000" is not a number from 0 to 65535`}},
		{"a bad domain is named by its own line",
			"upstream: a:1\nallow_plaintext: true\ndomains:\n  - example.org\n  - bob@example.org\n", []string{`domains (line 5): "bob@example.org" is not a domain`}},
		{"a zero drain timeout is refused",
			base + "timeouts:\n  drain: 0s\n", []string{"timeouts.drain (line 5): must be positive, not 0s"}},
		{"a negative drain timeout is refused",
			base + "timeouts:\n  drain: -5s\n", []string{"timeouts.drain (line 5): must be positive, not -5s"}},
		{"a misspelt drain key is named with the likely key",
			base + "timeouts:\n  drian: 5s\n", []string{"timeouts.drian (line 5): unknown key (did you mean timeouts.drain?)"}},
		{"a missing upstream is named",
			"domains: [x]\nallow_plaintext: true\n", []string{"upstream: is required (the XMPP server's client address, HOST:PORT)"}},
		{"no TLS and no plaintext is refused once",
			"upstream: a:1\ndomains: [x]\n",
			[]string{"cert: is required, with key; without TLS clients can log in only with allow_plaintext: true (for loopback)"}},
		{"max_preauth_bytes may not exceed max_stanza_bytes",
			base + "limits:\n  max_stanza_bytes: 5000\n  max_preauth_bytes: 6000\n",
			[]string{"limits.max_preauth_bytes (line 6): 6000 is above limits.max_stanza_bytes (line 5), 5000"}},
		{"max_detached_per_account has a floor of 1",
			base + "limits:\n  max_detached_per_account: 0\n",
			[]string{"limits.max_detached_per_account (line 5): 0 is below 1"}},
		{"problems come in the file's order",
			"queue_size: 0\nupstream: a:1\ndomains: [x]\nallow_plaintext: true\nlimits:\n  max_depth: x\n",
			[]string{"queue_size (line 1): 0 is below 1", `limits.max_depth (line 6): "x" is not a whole number`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkConfig(t, tc.yaml); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A YAML syntax error names its line and shows it.
func TestASyntaxErrorShowsItsLine(t *testing.T) {
	got := checkConfig(t, "upstream: a:1\ndomains: [x\nallow_plaintext: true\n")
	if len(got) != 1 || !strings.Contains(got[0], "[3:1]") || !strings.Contains(got[0], ">  3 | allow_plaintext") {
		t.Fatalf("problems %q, want one syntax error where the list should have ended, with the line shown", got)
	}
	got = checkConfig(t, base+"upstream: b:2\n")
	if len(got) != 1 || !strings.Contains(got[0], `"upstream" already defined`) {
		t.Fatalf("problems %q, want the key set twice named", got)
	}
}

// One cause gives one problem: a wrong value is not reported again by the
// checks that compare other keys with it, nor as missing.
func TestOneProblemPerCause(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"a small max_stanza_bytes does not also fail max_preauth_bytes",
			base + "limits:\n  max_stanza_bytes: 100\n", []string{"limits.max_stanza_bytes (line 5): 100 is below 4096"}},
		{"an undecodable max_stanza_bytes does not also fail max_preauth_bytes",
			base + "limits:\n  max_stanza_bytes: lots\n  max_preauth_bytes: 300000\n",
			[]string{`limits.max_stanza_bytes (line 5): "lots" is not a whole number`}},
		{"a zero max_detached_sessions does not also fail max_detached_per_account",
			base + "limits:\n  max_detached_sessions: 0\n", []string{"limits.max_detached_sessions (line 5): 0 is below 1"}},
		{"domains that are not a list are not also missing",
			"upstream: a:1\ndomains: x\nallow_plaintext: true\n",
			[]string{`domains (line 2): "x" is not a list; write [x], or one "- x" per line below`}},
		{"an upstream of the wrong type is not also missing",
			"upstream: [a:1]\ndomains: [x]\nallow_plaintext: true\n", []string{"upstream (line 1): a list is not a string"}},
		{"direct TLS without a certificate is one problem",
			"upstream: a:1\ndomains: [x]\ndirect_tls_listen: \":5223\"\n",
			[]string{"cert: is required, with key, by direct_tls_listen (line 3)"}},
		{"a cert without its key names the key",
			base + "cert: /c.pem\n", []string{"key: is required with cert (line 4)"}},
		{"a switch of the wrong type does not also require a certificate",
			"upstream: a:1\ndomains: [x]\nallow_plaintext: yes\n", []string{`allow_plaintext (line 3): "yes" is not true or false`}},
		{"an unknown key is not also a cascade of defaults",
			base + "limit:\n  max_depth: 3\n", []string{"limit (line 4): unknown key (did you mean limits?)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkConfig(t, tc.yaml); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// check-config runs what serve runs before it listens: the certificate and
// key must load, and serve fails with the very same message.
func TestCheckConfigRunsEveryCheckServeRuns(t *testing.T) {
	good := selfSigned(t)
	other := selfSigned(t)
	tests := []struct {
		name string
		yaml string
		want []string // nil: passes
		// prefix: the last problem's end is crypto/tls's wording.
		prefix bool
	}{
		{"a certificate and key that load pass",
			"upstream: a:1\ndomains: [x]\ncert: " + good.CertFile + "\nkey: " + good.KeyFile + "\n", nil, false},
		{"a missing certificate file is named with its line",
			"upstream: a:1\ndomains: [x]\ncert: /nonexistent/cert.pem\nkey: " + good.KeyFile + "\n",
			[]string{"cert (line 3): open /nonexistent/cert.pem: no such file or directory"}, false},
		{"a missing key file is named with its line",
			"upstream: a:1\ndomains: [x]\ncert: " + good.CertFile + "\nkey: /nonexistent/key.pem\n",
			[]string{"key (line 4): open /nonexistent/key.pem: no such file or directory"}, false},
		{"a key that is not the certificate's is refused",
			"upstream: a:1\ndomains: [x]\ncert: " + good.CertFile + "\nkey: " + other.KeyFile + "\n",
			[]string{"cert (line 3): does not load with key (line 4): tls: private key does not match public key"}, false},
		{"a certificate file that holds no certificate is refused",
			"upstream: a:1\ndomains: [x]\ncert: " + good.KeyFile + "\nkey: " + good.KeyFile + "\n",
			[]string{"cert (line 3): does not load with key (line 4): "}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := checkConfig(t, tc.yaml)
			match := slices.Equal(got, tc.want)
			if tc.prefix && len(got) == len(tc.want) {
				match = slices.Equal(got[:len(got)-1], tc.want[:len(got)-1]) && strings.HasPrefix(got[len(got)-1], tc.want[len(got)-1])
			}
			if !match {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if tc.want == nil {
				return
			}
			path := writeFile(t, tc.yaml)
			_, serveErr := runCLI(t, "serve", "--config", path)
			_, checkErr := runCLI(t, "check-config", "--config", path)
			if serveErr == nil || checkErr == nil || serveErr.Error() != checkErr.Error() {
				t.Errorf("serve said %v\ncheck-config said %v\nwant the same problem", serveErr, checkErr)
			}
		})
	}
}

// The shipped example decodes, its values are the documented defaults,
// and the one thing it cannot know, the certificate, is what it fails on.
func TestTheExampleConfig(t *testing.T) {
	const example = "../../configs/xmpp2proxy.example.yaml"
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("as shipped fails only on its certificate files", func(t *testing.T) {
		_, err := runCLI(t, "check-config", "--config", example)
		got := problems(t, err, example)
		if len(got) != 2 || !strings.HasPrefix(got[0], "cert (line ") || !strings.HasPrefix(got[1], "key (line ") {
			t.Errorf("problems %q, want only cert and key unreadable", got)
		}
	})
	t.Run("with a certificate that exists passes", func(t *testing.T) {
		c := selfSigned(t)
		yaml := strings.Replace(string(data), "/etc/xmpp2proxy/fullchain.pem", c.CertFile, 1)
		yaml = strings.Replace(yaml, "/etc/xmpp2proxy/privkey.pem", c.KeyFile, 1)
		if got := checkConfig(t, yaml); got != nil {
			t.Errorf("problems %q", got)
		}
	})
	t.Run("shows the defaults", func(t *testing.T) {
		cfg, err := proxy.ParseConfig(data)
		if err != nil {
			t.Fatal(err)
		}
		want := proxy.DefaultConfig()
		want.DirectTLSListen, want.Upstream, want.Domains = ":5223", "127.0.0.1:15222", []string{"example.org"}
		want.Cert, want.Key = "/etc/xmpp2proxy/fullchain.pem", "/etc/xmpp2proxy/privkey.pem"
		if !sameSettings(cfg, want) {
			t.Errorf("the example's values are not the defaults:\ngot  %+v\nwant %+v", cfg, want)
		}
	})
}

// A value set by a flag is named by its flag, not by a line.
func TestProblemsWithFlagsNameTheFlag(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		args []string
		want []string
	}{
		{"a bad --upstream", base,
			[]string{"--upstream", "nohost"}, []string{`upstream (flag --upstream): "nohost" is not HOST:PORT (like 127.0.0.1:5222)`}},
		{"a bad --listen", base,
			[]string{"--listen", ":99999"}, []string{`listen (flag --listen): ":99999": port "99999" is not a number from 0 to 65535`}},
		{"a bad --domain", base,
			[]string{"--domain", "a b"}, []string{`domains (flag --domain): "a b" is not a domain`}},
		{"a bad --log-format", base,
			[]string{"--log-format", "xml"}, []string{`log_format (flag --log-format): "xml" is not one of text, json`}},
		{"a good flag over a bad file value leaves only the file's problem",
			"upstream: [a:1]\ndomains: [x]\nallow_plaintext: true\n",
			[]string{"--upstream", "b:2"}, []string{"upstream (line 1): a list is not a string"}},
		{"a bad flag over a bad file value reports both",
			"upstream: [a:1]\ndomains: [x]\nallow_plaintext: true\n",
			[]string{"--upstream", "b"}, []string{"upstream (line 1): a list is not a string", `upstream (flag --upstream): "b" is not HOST:PORT (like 127.0.0.1:5222)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkConfig(t, tc.yaml, tc.args...); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCheckConfigWithFlagsAlone(t *testing.T) {
	out, err := runCLI(t, "check-config", "--upstream", "a:1", "--domain", "x", "--allow-plaintext")
	if err != nil || out != "config: ok\n" {
		t.Fatalf("check-config with flags: %v %q", err, out)
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
	cfg, _, err := f.load(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream != "flag:2" {
		t.Errorf("upstream = %q, want the flag's value", cfg.Upstream)
	}
	if strings.Join(cfg.Domains, ",") != "a.example,b.example" {
		t.Errorf("domains = %v, want the flags' values", cfg.Domains)
	}
	if cfg.UpstreamTLS != "tls" || cfg.LogLevel != slog.LevelWarn {
		t.Errorf("values only in the file were lost: %+v", cfg)
	}
	if cfg.Listen != ":5222" {
		t.Errorf("listen = %q, want the default", cfg.Listen)
	}
}

func TestDrainTimeoutComesFromTheFileOrTheFlag(t *testing.T) {
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
			cfg, _, err := f.load(cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Timeouts.Drain; got != tc.want {
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
	if _, _, err := f.load(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "timeouts.drain (flag --drain-timeout): must be positive") {
		t.Fatalf("load: %v, want timeouts.drain refused, naming the flag", err)
	}
}

func TestVersionPrintsTheName(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "xmpp2proxy ") {
		t.Fatalf("version: %v %q", err, out)
	}
}

func TestVersionFlagPrintsWhatVersionPrints(t *testing.T) {
	cmdOut, err := runCLI(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	flagOut, err := runCLI(t, "--version")
	if err != nil || flagOut != cmdOut {
		t.Fatalf("--version: %v %q, want %q", err, flagOut, cmdOut)
	}
}

// Timeouts are read by the YAML library's time.Duration decoding; a bare
// 0 needs no unit, since it means the same in every unit.
func TestTimeoutsReadGoDurations(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want time.Duration
	}{
		{"seconds", "timeouts: {idle: 45s}\n", 45 * time.Second},
		{"units combined", "timeouts: {idle: 1h30m}\n", 90 * time.Minute},
		{"quoted", "timeouts: {idle: '250ms'}\n", 250 * time.Millisecond},
		{"a bare 0 disables", "timeouts: {idle: 0}\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := proxy.ParseConfig([]byte(base + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Timeouts.Idle != tc.want {
				t.Errorf("timeouts.idle %v, want %v", cfg.Timeouts.Idle, tc.want)
			}
		})
	}
}

// log_level is read by slog.Level's own text decoding: the four words in
// any case, and no value or empty text keeps the default, info.
func TestLogLevelTakesTheFourWordsInAnyCase(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want slog.Level
	}{
		{"debug", "log_level: debug\n", slog.LevelDebug},
		{"upper case WARN", "log_level: WARN\n", slog.LevelWarn},
		{"error", "log_level: error\n", slog.LevelError},
		{"no value is info", "log_level:\n", slog.LevelInfo},
		{"empty text is info", "log_level: ''\n", slog.LevelInfo},
		{"absent is info", "", slog.LevelInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := proxy.ParseConfig([]byte(base + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.LogLevel != tc.want {
				t.Errorf("log level %v, want %v", cfg.LogLevel, tc.want)
			}
		})
	}
}

// --log-format (YAML log_format) picks the log's format; the flag wins.
func TestLogFormatComesFromTheFileOrTheFlag(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		args []string
		want string // how a line starts
	}{
		{"text by default", base, nil, "time="},
		{"json from the file", base + "log_format: json\n", nil, `{"time":`},
		{"json from the flag", base, []string{"--log-format", "json"}, `{"time":`},
		{"the flag wins over the file", base + "log_format: json\n", []string{"--log-format", "text"}, "time="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newServeCmd()
			var f serveFlags
			cmd.ResetFlags()
			f.register(cmd.Flags())
			if err := cmd.Flags().Parse(append([]string{"--config", writeFile(t, tc.yaml)}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := f.load(cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			newLogger(&out, cfg.LogLevel, cfg.LogFormat).Info("session started", "listener", "starttls")
			if !strings.HasPrefix(out.String(), tc.want) {
				t.Errorf("log line %q, want it to start with %q", out.String(), tc.want)
			}
		})
	}
}
