package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/internal/demo"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// newCert writes a fresh self-signed certificate for localhost.
func newCert(t *testing.T) *demo.Cert {
	t.Helper()
	c, err := demo.SelfSigned(t.TempDir(), "proxy", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// install copies c's files over the paths the proxy was configured with,
// as a renewal does.
func install(t *testing.T, c *demo.Cert, certFile, keyFile string) {
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

// dialDirectTLS connects to the direct TLS listener and returns the
// client and the certificate the proxy served.
func dialDirectTLS(t *testing.T, srv *Server) (*testClient, []byte) {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.DirectTLSAddr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // the test compares the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	served := conn.ConnectionState().PeerCertificates[0].Raw
	return &testClient{t: t, conn: conn, fr: stream.NewFramer(bufio.NewReader(conn), clientLimits)}, served
}

// startReloadable runs a proxy whose certificate comes from files, with a
// direct TLS listener, in front of an echoing fake upstream.
func startReloadable(t *testing.T) (srv *Server, certFile, keyFile string, first *demo.Cert, fake *fakeUpstream) {
	t.Helper()
	first = newCert(t)
	dir := t.TempDir()
	certFile, keyFile = dir+"/cert.pem", dir+"/key.pem"
	install(t, first, certFile, keyFile)
	fake = startFakeUpstream(t, true)
	srv = startProxy(t, fake.addr(), nil, func(c *Config) {
		c.Listen, c.DirectTLSListen = "", "127.0.0.1:0"
		c.Cert, c.Key = certFile, keyFile
	})
	return srv, certFile, keyFile, first, fake
}

// After a reload a new handshake gets the new certificate, while a
// session that negotiated TLS before it goes on relaying.
func TestAReloadedCertificateServesNewHandshakesAndKeepsSessions(t *testing.T) {
	t.Parallel()
	srv, certFile, keyFile, first, fake := startReloadable(t)
	before, served := dialDirectTLS(t, srv)
	if !bytes.Equal(served, first.Pair.Certificate[0]) {
		t.Fatal("the proxy did not serve the configured certificate")
	}
	before.login()
	up := fake.accept(t)

	second := newCert(t)
	install(t, second, certFile, keyFile)
	leaf, err := srv.ReloadCertificate()
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !bytes.Equal(leaf.Raw, second.Pair.Certificate[0]) {
		t.Error("reload returned another certificate than the files hold")
	}

	if _, served := dialDirectTLS(t, srv); !bytes.Equal(served, second.Pair.Certificate[0]) {
		t.Error("a handshake after the reload did not get the new certificate")
	}
	msg := "<message to='bob@localhost' id='after-reload'><body>still here</body></message>"
	before.send(msg)
	before.expect(stream.UnitElement, msg) // the fake echoes it back
	up.expect(t, stream.UnitElement, msg)
}

// A reload that fails keeps the certificate being served and says which
// file is at fault.
func TestAFailedReloadKeepsTheCurrentCertificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spoil   func(t *testing.T, certFile, keyFile string)
		wantErr string
	}{
		{name: "an unreadable certificate file", wantErr: "cert: ",
			spoil: func(t *testing.T, certFile, _ string) {
				if err := os.Remove(certFile); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "a certificate that is not PEM", wantErr: "cert: does not load with key",
			spoil: func(t *testing.T, certFile, _ string) {
				if err := os.WriteFile(certFile, []byte("half-written"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "a key that does not match the certificate", wantErr: "cert: does not load with key",
			spoil: func(t *testing.T, _, keyFile string) {
				other := newCert(t)
				data, err := os.ReadFile(other.KeyFile)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(keyFile, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, certFile, keyFile, first, _ := startReloadable(t)
			tt.spoil(t, certFile, keyFile)
			if _, err := srv.ReloadCertificate(); err == nil || !strings.HasPrefix(err.Error(), "config: "+tt.wantErr) {
				t.Errorf("reload error %v, want one starting %q", err, "config: "+tt.wantErr)
			}
			if _, served := dialDirectTLS(t, srv); !bytes.Equal(served, first.Pair.Certificate[0]) {
				t.Error("after a failed reload the proxy no longer serves the certificate it had")
			}
		})
	}
}

// A certificate given in memory has no files to be read again from.
func TestACertificateGivenInMemoryIsNotReloaded(t *testing.T) {
	t.Parallel()
	tlsConfig, _ := testCertificate(t)
	srv := newServerForTest(t, testConfig("127.0.0.1:1", nil), tlsConfig, nil)
	if _, err := srv.ReloadCertificate(); !errors.Is(err, errNoReload) {
		t.Errorf("reload error %v, want %v", err, errNoReload)
	}
}
