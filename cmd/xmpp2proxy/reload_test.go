package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
)

// serveProcess is `xmpp2proxy serve` running in a process of its own, its
// log kept and watched line by line.
type serveProcess struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   strings.Builder
	lines chan string // every line, for the test to wait on
	ended chan struct{}
}

func startServe(t *testing.T, args ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{t: t, cmd: exec.Command(os.Args[0], append([]string{"serve"}, args...)...),
		lines: make(chan string, 1024), ended: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.ended)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.ended
		_ = p.cmd.Wait()
	})
	return p
}

func (p *serveProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// wait returns the next line containing s.
func (p *serveProcess) wait(s string) string {
	p.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case line := <-p.lines:
			if strings.Contains(line, s) {
				return line
			}
		case <-p.ended:
			p.t.Fatalf("serve ended before logging %q:\n%s", s, p.output())
		case <-deadline:
			p.t.Fatalf("serve never logged %q:\n%s", s, p.output())
		}
	}
}

func (p *serveProcess) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// servedCertificate connects with TLS and returns the certificate served.
func servedCertificate(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // the test compares the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// copyCert puts c's files where serve was told to read them.
func copyCert(t *testing.T, c *demo.Cert, certFile, keyFile string) {
	t.Helper()
	for _, f := range [][2]string{{c.CertFile, certFile}, {c.KeyFile, keyFile}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// SIGHUP makes serve read its certificate files again: new handshakes get
// the new certificate, a connection already up stays up, and a reload that
// fails keeps the certificate served and says so.
func TestServeReloadsTheCertificateOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	first := selfSigned(t)
	copyCert(t, first, certFile, keyFile)
	p := startServe(t, "--listen", "", "--direct-tls-listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1",
		"--upstream-tls", "none", "--domain", "example.org", "--cert", certFile, "--key", keyFile)
	m := listeningAddr.FindStringSubmatch(p.wait("msg=listening"))
	if m == nil {
		t.Fatalf("no address in the listening line:\n%s", p.output())
	}
	addr := m[1]
	if !bytes.Equal(servedCertificate(t, addr), first.Pair.Certificate[0]) {
		t.Fatal("serve did not serve the configured certificate")
	}
	// A connection that negotiated TLS before the reload.
	live, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // as above
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	second := selfSigned(t)
	copyCert(t, second, certFile, keyFile)
	p.signal(syscall.SIGHUP)
	p.wait(`msg="certificate reloaded"`)
	if !bytes.Equal(servedCertificate(t, addr), second.Pair.Certificate[0]) {
		t.Error("after SIGHUP a new handshake did not get the new certificate")
	}

	if err := os.WriteFile(certFile, []byte("half-written renewal"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	if line := p.wait(`msg="certificate reload failed; still serving the previous certificate"`); !strings.Contains(line, "level=ERROR") {
		t.Errorf("a failed reload is logged as %q, want level ERROR", line)
	}
	if !bytes.Equal(servedCertificate(t, addr), second.Pair.Certificate[0]) {
		t.Error("after a failed reload serve no longer serves the certificate it had")
	}

	// The connection from before the reloads still answers over its TLS.
	_ = live.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(live, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"); err != nil {
		t.Fatalf("the connection from before the reload: %v", err)
	}
	buf := make([]byte, 4096)
	if n, err := live.Read(buf); err != nil || !bytes.Contains(buf[:n], []byte("<stream:stream")) {
		t.Errorf("the connection from before the reload read %q, %v; want the proxy's stream header", buf[:n], err)
	}

	p.signal(syscall.SIGTERM)
	<-p.ended
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, p.output())
	}
}
