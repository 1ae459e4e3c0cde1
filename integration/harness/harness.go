// Package harness starts real XMPP servers (Prosody, ejabberd) on loopback
// ports from configurations kept in this repository, for the end-to-end
// tests. Each server lives in its own temporary directory and leaves
// nothing behind when stopped. Prosody, the certificate maker and the
// port helpers come from internal/demo, which `xmpp2proxy demo` uses too,
// so the production binary never links this package.
package harness

import (
	"context"
	"net"
	"strconv"
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
	// Restart stops the server the way an operator does (its clients get
	// a stream error) and starts it again on the same ports and data, so
	// accounts and archives survive. It returns once it accepts
	// connections again.
	Restart(ctx context.Context) error
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

func itoa(i int) string { return strconv.Itoa(i) }
