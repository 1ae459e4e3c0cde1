package harness

import (
	"bufio"
	"crypto/tls"
	"fmt"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// ReadStreamOpen reads the peer's stream header on a client made with
// NewClient, after the client sent its own: a test that drives the stream
// byte by byte (the protocol document's examples) opens it itself.
func (c *Client) ReadStreamOpen() error {
	c.fr.Reset(nil)
	u, err := c.fr.Next()
	if err != nil {
		return fmt.Errorf("stream header: %w", err)
	}
	if u.Kind != stream.UnitStreamOpen {
		return fmt.Errorf("expected a stream header, got %s", u.Raw)
	}
	return nil
}

// UpgradeTLS runs the client side of the TLS handshake after the peer's
// <proceed/>, and reads from the TLS connection from then on.
func (c *Client) UpgradeTLS(cfg *tls.Config) error {
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	c.fr.Reset(bufio.NewReader(tc))
	return nil
}
