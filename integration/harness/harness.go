// Package harness starts real XMPP servers (Prosody, ejabberd) on loopback
// ports from configurations kept in this repository, for the end-to-end
// tests and the demo. Each server lives in its own temporary directory and
// leaves nothing behind when stopped.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Server is a running upstream XMPP server.
type Server interface {
	// Name is "prosody" or "ejabberd".
	Name() string
	// Domain is the XMPP domain it serves.
	Domain() string
	// Addr is the plaintext/STARTTLS c2s address.
	Addr() string
	// DirectTLSAddr is the XEP-0368 direct TLS c2s address, or "".
	DirectTLSAddr() string
	// MUCService is the domain of its multi-user chat service.
	MUCService() string
	// Register creates an account.
	Register(user, password string) error
	// Stop stops the server and removes its directory.
	Stop() error
	// Log returns the tail of the server's log, for test failures.
	Log() string
	// PID is the server's process id, 0 if unknown; benchmarks pin it
	// to a CPU.
	PID() int
}

// loopback holds what every harness server answers alike: its domain and
// its two c2s ports on 127.0.0.1.
type loopback struct {
	domain        string
	port, tlsPort int
}

// Domain implements Server.
func (l *loopback) Domain() string { return l.domain }

// Addr implements Server.
func (l *loopback) Addr() string { return net.JoinHostPort("127.0.0.1", itoa(l.port)) }

// DirectTLSAddr implements Server.
func (l *loopback) DirectTLSAddr() string { return net.JoinHostPort("127.0.0.1", itoa(l.tlsPort)) }

// MUCService implements Server.
func (l *loopback) MUCService() string { return "conference." + l.domain }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitForPort waits until something accepts connections on addr.
func WaitForPort(ctx context.Context, addr string, alive func() error) error {
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if alive != nil {
			if aerr := alive(); aerr != nil {
				return aerr
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EnsureInstalled makes sure binary is on PATH, installing the Debian
// package pkg with apt-get when it is missing and we are root.
func EnsureInstalled(binary, pkg string) error {
	if _, err := exec.LookPath(binary); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is not installed: run `sudo apt-get install -y %s`", binary, pkg)
	}
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %v: %w\n%s", args, err, out)
		}
	}
	if _, err := exec.LookPath(binary); err != nil {
		return errors.New(binary + " still missing after installing " + pkg)
	}
	return nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func itoa(i int) string { return strconv.Itoa(i) }
