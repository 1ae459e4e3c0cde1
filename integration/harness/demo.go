package harness

import (
	"context"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
)

// Cert is a self-signed certificate on disk and in memory (demo.Cert).
type Cert = demo.Cert

// Prosody is a private Prosody process (demo.Prosody).
type Prosody = demo.Prosody

var _ Server = (*Prosody)(nil)

// SelfSigned makes a certificate for hosts in dir (see demo.SelfSigned).
func SelfSigned(dir, name string, hosts ...string) (*Cert, error) {
	return demo.SelfSigned(dir, name, hosts...)
}

// StartProsody starts Prosody for domain on free loopback ports (see
// demo.StartProsody).
func StartProsody(ctx context.Context, domain string) (*Prosody, error) {
	return demo.StartProsody(ctx, domain)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) { return demo.FreePort() }

// WaitForPort waits until something accepts connections on addr (see
// demo.WaitForPort).
func WaitForPort(ctx context.Context, addr string, alive func() error) error {
	return demo.WaitForPort(ctx, addr, alive)
}

// EnsureInstalled makes sure binary is on PATH, installing the Debian
// package pkg when it is missing and we are root (see demo.EnsureInstalled).
func EnsureInstalled(binary, pkg string) error { return demo.EnsureInstalled(binary, pkg) }
