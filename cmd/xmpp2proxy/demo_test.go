package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
)

// occupy listens on a free loopback port for the test's duration.
func occupy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A taken port is reported with its address and the flag that picks
// another, for the STARTTLS and the direct TLS listener alike.
func TestDemoPortTakenNamesFlag(t *testing.T) {
	taken := occupy(t)
	for _, tc := range []struct {
		listen, directTLS, flag string
	}{
		{taken, "127.0.0.1:0", "--listen"},
		{"127.0.0.1:0", taken, "--direct-tls-listen"},
	} {
		p, err := reserveDemoPorts(tc.listen, tc.directTLS)
		if err == nil {
			p.release()
			t.Fatalf("reserveDemoPorts(%q, %q) succeeded on a taken port", tc.listen, tc.directTLS)
		}
		msg := err.Error()
		for _, want := range []string{taken + " is already in use", "pick another address with " + tc.flag + ",", "DEMO_FLAGS='" + tc.flag + " "} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not contain %q", msg, want)
			}
		}
		if tc.flag == "--listen" && strings.Contains(msg, "--direct-tls-listen") {
			t.Errorf("error %q names the wrong flag", msg)
		}
	}
}

// The whole demo stops at a taken port before it starts Prosody.
func TestDemoChecksPortsBeforeProsody(t *testing.T) {
	saved := startProsody
	t.Cleanup(func() { startProsody = saved })
	startProsody = func(context.Context, string) (*demo.Prosody, error) {
		t.Error("Prosody was started although the demo's port is taken")
		return nil, errors.New("not in this test")
	}
	taken := occupy(t)
	var out bytes.Buffer
	err := runDemo(context.Background(), &out, taken, "", slog.LevelInfo)
	if err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("runDemo on a taken port: %v, want an error naming --listen", err)
	}
	if strings.Contains(out.String(), "Prosody") {
		t.Errorf("runDemo printed %q before failing on the port", out.String())
	}
}

// Free ports are held until released; port 0 becomes the picked port; a
// loopback STARTTLS address allows plaintext; no direct TLS is fine.
func TestDemoReservePorts(t *testing.T) {
	p, err := reserveDemoPorts("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	if !p.loopback || p.directTLS != "" || strings.HasSuffix(p.listen, ":0") {
		t.Fatalf("reserved %+v", p)
	}
	if _, err := reserveDemoPorts(p.listen, ""); err == nil {
		t.Fatal("a reserved port could be reserved again")
	}
	p.release()
	p.release()
	again, err := reserveDemoPorts(p.listen, "")
	if err != nil {
		t.Fatalf("released port: %v", err)
	}
	again.release()
}

// The certificate sits where any user can read it, the key where only we
// can, and the fingerprints printed are those of the certificate on disk,
// computed here without the demo package's help.
func TestDemoCertificateAndFingerprints(t *testing.T) {
	cert, dir, err := newDemoCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for path, want := range map[string]os.FileMode{dir: 0o755, cert.CertFile: 0o644, cert.KeyFile: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	if filepath.Dir(cert.CertFile) != dir {
		t.Errorf("certificate %s is not in %s", cert.CertFile, dir)
	}

	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5222}
	var out bytes.Buffer
	if err := printDemoHelp(&out, addr, nil, "127.0.0.1:40000", cert); err != nil {
		t.Fatal(err)
	}
	text := out.String()

	pemBytes, err := os.ReadFile(cert.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", cert.CertFile)
	}
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(parsed.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	colons := func(sum []byte) string {
		h := strings.ToUpper(hex.EncodeToString(sum))
		var b strings.Builder
		for i := 0; i < len(h); i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(h[i : i+2])
		}
		return b.String()
	}
	s1, s256, pin := sha1.Sum(block.Bytes), sha256.Sum256(block.Bytes), sha256.Sum256(spki)
	want := map[string]string{
		"file":     cert.CertFile,
		"SHA-1":    colons(s1[:]),
		"SHA-256":  colons(s256[:]),
		"SPKI pin": `pin-sha256="` + base64.StdEncoding.EncodeToString(pin[:]) + `"`,
	}
	for label, value := range want {
		re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(label) + ` *: (.*)$`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %q line in:\n%s", label, text)
			continue
		}
		if m[1] != value {
			t.Errorf("%s: printed %q, want %q", label, m[1], value)
		}
	}
	for _, s := range []string{"proxy (direct TLS): off", "host 127.0.0.1, port 5222", "alice@localhost", "bob@localhost"} {
		if !strings.Contains(text, s) {
			t.Errorf("help does not contain %q:\n%s", s, text)
		}
	}
}

// The flags the errors name are the demo command's flags.
func TestDemoFlagsExist(t *testing.T) {
	fs := newDemoCmd().Flags()
	for _, f := range []string{flagListen, flagDirectTLS} {
		if !strings.HasPrefix(f, "--") || fs.Lookup(strings.TrimPrefix(f, "--")) == nil {
			t.Errorf("demo has no flag %s", f)
		}
	}
}
