package demo

import (
	"crypto/tls"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
)

// The certificate is readable by anyone and the key by its owner only,
// whatever the umask; the pair loads and the fingerprints have the shape
// clients show.
func TestSelfSigned(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	c, err := SelfSigned(dir, "proxy", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{c.CertFile: 0o644, c.KeyFile: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		t.Fatal(err)
	}
	fp, err := c.Fingerprints()
	if err != nil {
		t.Fatal(err)
	}
	hexColons := func(n int) *regexp.Regexp {
		return regexp.MustCompile(`^[0-9A-F]{2}(:[0-9A-F]{2}){` + strconv.Itoa(n-1) + `}$`)
	}
	if !hexColons(20).MatchString(fp.SHA1) || !hexColons(32).MatchString(fp.SHA256) {
		t.Errorf("fingerprints %q, %q are not colon-separated uppercase hex", fp.SHA1, fp.SHA256)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9+/]{43}=$`).MatchString(fp.SPKIPin) {
		t.Errorf("SPKI pin %q is not base64 of 32 bytes", fp.SPKIPin)
	}
	if _, err := (&Cert{}).Fingerprints(); err == nil {
		t.Error("Fingerprints of an empty Cert succeeded")
	}
}
