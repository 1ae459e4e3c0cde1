package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Cert is a self-signed certificate written to disk for servers that need
// files, and loaded for Go code that needs a tls.Config.
type Cert struct {
	// CertFile is the PEM certificate, mode 0644; KeyFile is the PEM
	// PKCS #8 private key, mode 0600.
	CertFile, KeyFile string
	// Pair is the loaded certificate and key.
	Pair tls.Certificate
	// Pool holds the certificate alone, for clients that trust only it.
	Pool *x509.CertPool
}

// SelfSigned makes a P-256 certificate for hosts (and their conference.
// subdomains), valid for a day, and writes it to dir/name.crt (mode 0644)
// and dir/name.key (mode 0600), whatever the umask.
func SelfSigned(dir, name string, hosts ...string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, h := range hosts {
		names = append(names, h, "conference."+h)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"xmpp2proxy test"}},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	c := &Cert{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	if err := writeFileMode(c.KeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileMode(c.CertFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	if c.Pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("load generated pair: %w", err)
	}
	c.Pool = x509.NewCertPool()
	c.Pool.AppendCertsFromPEM(certPEM)
	return c, nil
}

// writeFileMode writes data to a new file with exactly mode perm: the
// file is created 0600 and widened afterwards, so a restrictive umask
// cannot narrow it and the key is never readable by others in between.
func writeFileMode(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, perm)
}

// ServerConfig returns a tls.Config serving this certificate.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.Pair}, MinVersion: tls.VersionTLS12}
}

// ClientConfig returns a tls.Config that trusts only this certificate.
func (c *Cert) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: c.Pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// Fingerprints are a certificate's fingerprints in the forms XMPP clients
// show when they ask whether to trust it.
type Fingerprints struct {
	// SHA1 and SHA256 are digests of the DER certificate in
	// colon-separated uppercase hex ("AB:CD:...").
	SHA1, SHA256 string
	// SPKIPin is the base64 SHA-256 of the certificate's
	// SubjectPublicKeyInfo (the RFC 7469 pin), without the
	// pin-sha256="..." wrapper.
	SPKIPin string
}

// Fingerprints returns the fingerprints of the certificate in c.Pair.
func (c *Cert) Fingerprints() (Fingerprints, error) {
	if len(c.Pair.Certificate) == 0 {
		return Fingerprints{}, fmt.Errorf("no certificate loaded")
	}
	der := c.Pair.Certificate[0]
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return Fingerprints{}, err
	}
	s1, s256 := sha1.Sum(der), sha256.Sum256(der)
	pin := sha256.Sum256(parsed.RawSubjectPublicKeyInfo)
	return Fingerprints{
		SHA1:    colonHex(s1[:]),
		SHA256:  colonHex(s256[:]),
		SPKIPin: base64.StdEncoding.EncodeToString(pin[:]),
	}, nil
}

// colonHex formats b as uppercase hex bytes separated by colons.
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}
