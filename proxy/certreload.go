package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Certificates are renewed while the proxy runs (Let's Encrypt every 60
// days), and a restart would drop every session. So the client-facing TLS
// config takes its certificate from an atomically swapped pointer
// (GetCertificate), and ReloadCertificate swaps in the pair read again
// from the configured files: each handshake from then on gets the new
// one, and sessions already up keep the TLS state they negotiated.

// reloadableCertificate makes the client-facing TLS config serve its one
// certificate through s.cert, so that ReloadCertificate can replace it.
// A config with several certificates or its own GetCertificate is left
// as it was given.
func (s *Server) reloadableCertificate() {
	if s.tls == nil || len(s.tls.Certificates) != 1 || s.tls.GetCertificate != nil {
		return
	}
	cfg := s.tls.Clone()
	s.cert.Store(&cfg.Certificates[0])
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }
	s.tls = cfg
}

// errNoReload: the certificate did not come from files the proxy can
// read again.
var errNoReload = errors.New("no certificate files to reload from (cert and key are not set)")

// ReloadCertificate reads the certificate and key again from the files
// cert and key name, and serves them to every TLS handshake from now on;
// sessions already up are untouched. On any failure (a file unreadable, a
// key that does not match) the current certificate stays and the error,
// naming the key at fault, says why. It returns the new certificate.
func (s *Server) ReloadCertificate() (*x509.Certificate, error) {
	if s.cert.Load() == nil || s.cfg.Cert == inMemory {
		return nil, errNoReload
	}
	k := configChecker{c: &s.cfg}
	loaded := k.loadCertificate()
	if err := configErr("", k.problems); err != nil {
		return nil, err
	}
	pair := loaded.Certificates[0]
	leaf := pair.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	s.cert.Store(&pair)
	return leaf, nil
}
