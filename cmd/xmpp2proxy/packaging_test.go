package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// dockerfileBuild returns the environment assignments and the go command
// line of the Dockerfile's `RUN ... go build` instruction, with ${VERSION}
// replaced by version and the -o target by out.
func dockerfileBuild(t *testing.T, dockerfile, version, out string) (env, args []string) {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var runs []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "RUN "); ok && strings.Contains(rest, "go build") {
			runs = append(runs, rest)
		}
	}
	if len(runs) != 1 {
		t.Fatalf("%s: want exactly one RUN with go build, found %d", dockerfile, len(runs))
	}
	words, err := shellWords(strings.ReplaceAll(runs[0], "${VERSION}", version))
	if err != nil {
		t.Fatalf("%s: %v", dockerfile, err)
	}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env, words = append(env, words[0]), words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("%s: the build line is not `[VAR=value ...] go build ...`: %q", dockerfile, runs[0])
	}
	args = append([]string(nil), words[1:]...)
	found := false
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1], found = out, true
		}
	}
	if !found {
		t.Fatalf("%s: the build line has no -o: %q", dockerfile, runs[0])
	}
	return env, args
}

// shellWords splits s into words as a POSIX shell would for a simple
// command: blanks separate words, and single and double quotes group
// (no expansion, no escapes inside single quotes).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case r == ';' || r == '&' || r == '|' || r == '$' || r == '`' || r == '\\':
			return nil, fmt.Errorf("shell syntax %q in the build line: keep it a simple command", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// The Dockerfile's exact build command (read from the Dockerfile, not
// copied) makes a static binary that runs: no ELF interpreter, no shared
// libraries, and `version` prints the version passed in the ldflags.
// This stands in for `docker build` where there is no Docker engine.
func TestDockerfileBuildIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	goCmd := goTool(t)
	root := repoRoot(t)
	const version = "v0.0.0-dockerfile-test"
	bin := filepath.Join(t.TempDir(), "xmpp2proxy")
	env, args := dockerfileBuild(t, filepath.Join(root, "Dockerfile"), version, bin)
	if !contains(env, "CGO_ENABLED=0") || !contains(args, "-trimpath") {
		t.Fatalf("the Dockerfile's build is not CGO_ENABLED=0 with -trimpath: %q %q", env, args)
	}
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter (PT_INTERP): it is dynamically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries (DT_NEEDED): %v", libs)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "xmpp2proxy "+version; got != want {
		t.Errorf("version printed %q, want %q", got, want)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unitDirectives reads a systemd unit into section.Key -> values.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a directive: %q", path, line)
			}
			d[section+"."+k] = append(d[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

const unitBinary = "/usr/local/bin/xmpp2proxy"

// The systemd unit has the hardening and the start line operators are
// promised, and systemd itself accepts it: systemd-analyze verify prints
// nothing (it only warns about unknown or misspelled keys), and the
// offline security analysis rates its exposure at most 2.0 ("OK").
func TestSystemdUnit(t *testing.T) {
	unit := filepath.Join(repoRoot(t), "configs", "xmpp2proxy.service")
	d := unitDirectives(t, unit)
	want := map[string]string{
		"Service.ExecStart":             unitBinary + " serve --config /etc/xmpp2proxy/config.yaml",
		"Service.DynamicUser":           "yes",
		"Service.ProtectSystem":         "strict",
		"Service.ProtectHome":           "yes",
		"Service.PrivateTmp":            "yes",
		"Service.NoNewPrivileges":       "yes",
		"Service.AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"Service.CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"Service.Restart":               "on-failure",
		"Service.ReadOnlyPaths":         "/etc/xmpp2proxy",
		"Install.WantedBy":              "multi-user.target",
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if n, err := strconv.Atoi(strings.Join(d["Service.LimitNOFILE"], "")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE = %q, want at least 65536", d["Service.LimitNOFILE"])
	}
	// serve reloads its certificate on SIGHUP (reload.go).
	if got := d["Service.ExecReload"]; len(got) != 1 || got[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %q, want /bin/kill -HUP $MAINPID", got)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed:", err)
	}
	// verify checks that ExecStart's program exists and is executable:
	// point it at this test binary instead of the installed path.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "xmpp2proxy.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(b), unitBinary+" ", self+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", tmp).CombinedOutput()
	if err != nil && strings.Contains(string(out), "unrecognized option") {
		t.Skipf("this systemd-analyze has no offline security analysis:\n%s", out)
	}
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 or failure: %v\n%s", err, out)
	}
}
