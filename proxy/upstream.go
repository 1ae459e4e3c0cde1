package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// upstreamFeatures is what the proxy needs from the upstream's pre-auth
// <stream:features/>.
type upstreamFeatures struct {
	StartTLS   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
}

// upstreamLeg is a negotiated (TLS as configured, not yet authenticated)
// stream to the upstream server.
type upstreamLeg struct {
	conn       net.Conn
	sock       net.Conn           // the TCP connection under conn
	rec        *stream.RecordConn // under the TLS connection, if any
	fr         *stream.Framer
	mechanisms []string // offered to clients: the upstream's minus -PLUS
}

// ErrUpstream wraps every failure to reach or negotiate with the upstream;
// the client then sees <remote-connection-failed/>.
var ErrUpstream = errors.New("upstream")

// dialUpstream connects, negotiates TLS as configured and reads the
// mechanisms. The whole exchange is bounded by the upstream dial timeout.
// client is the client's address, for a PROXY header (proxyproto.go).
func (s *Server) dialUpstream(ctx context.Context, domain, lang string, client peerAddrs) (*upstreamLeg, error) {
	up, err := s.dialNegotiated(ctx, domain, lang, client)
	if ctx.Err() == nil { // not given up by the session: the upstream's doing
		s.upstreamDialed(err)
	}
	return up, err
}

func (s *Server) dialNegotiated(ctx context.Context, domain, lang string, client peerAddrs) (*upstreamLeg, error) {
	timeout := s.cfg.Timeouts.UpstreamDial
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUpstream, s.cfg.Upstream, err)
	}
	if err := s.sendProxyHeader(ctx, conn, client); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, s.cfg.Upstream, err)
	}
	conn = stream.WithQuickAck(conn)
	// Reads during negotiation only watch the deadline; closing the socket
	// when the session goes away unblocks them at once.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	up, err := s.negotiateUpstream(ctx, conn, domain, lang)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrUpstream, s.cfg.Upstream, err)
	}
	return up, nil
}

func (s *Server) negotiateUpstream(ctx context.Context, conn net.Conn, domain, lang string) (*upstreamLeg, error) {
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	up := &upstreamLeg{conn: conn, sock: conn}
	if s.cfg.UpstreamTLS == UpstreamTLSDirect {
		up.rec = stream.NewRecordConn(conn)
		tc := tls.Client(up.rec, s.upstreamTLSConfig(domain))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		up.conn = tc
	}
	up.fr = stream.NewFramer(up.conn, s.upstreamLimits())
	feats, err := up.openStream(domain, lang)
	if err != nil {
		return nil, err
	}
	if s.cfg.UpstreamTLS == UpstreamTLSStartTLS {
		if feats.StartTLS == nil {
			return nil, errors.New("upstream offers no STARTTLS")
		}
		if feats, err = up.startTLS(ctx, s.upstreamTLSConfig(domain), domain, lang); err != nil {
			return nil, err
		}
	}
	for _, m := range feats.Mechanisms {
		// Channel binding cannot survive a proxy: the client's TLS channel
		// is not the upstream's.
		if !strings.HasSuffix(strings.ToUpper(m), "-PLUS") {
			up.mechanisms = append(up.mechanisms, m)
		}
	}
	if len(up.mechanisms) == 0 {
		return nil, errors.New("upstream offers no SASL mechanism usable through a proxy")
	}
	return up, nil
}

func (up *upstreamLeg) startTLS(ctx context.Context, cfg *tls.Config, domain, lang string) (upstreamFeatures, error) {
	if err := writeDirect(up.conn, []byte("<starttls xmlns='"+ns.TLS+"'/>")); err != nil {
		return upstreamFeatures{}, err
	}
	u, err := up.fr.Next()
	if err != nil {
		return upstreamFeatures{}, err
	}
	if start, _ := stream.StartOf(u.Raw); start.Name.Local != "proceed" || start.Name.Space != ns.TLS {
		return upstreamFeatures{}, fmt.Errorf("starttls refused: %s", u.Raw)
	}
	if up.fr.Buffered() > 0 {
		return upstreamFeatures{}, errors.New("data after <proceed/> before the TLS handshake")
	}
	up.rec = stream.NewRecordConn(up.conn)
	tc := tls.Client(up.rec, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return upstreamFeatures{}, fmt.Errorf("tls: %w", err)
	}
	up.conn = tc
	up.fr.Reset(tc)
	return up.openStream(domain, lang)
}

// openStream sends a stream header and reads the reply header and features.
func (up *upstreamLeg) openStream(domain, lang string) (upstreamFeatures, error) {
	var feats upstreamFeatures
	if err := writeDirect(up.conn, stream.AppendHeader(nil, domain, "", "", lang)); err != nil {
		return feats, err
	}
	raw, _, err := up.readHeaderAndFeatures()
	if err != nil {
		return feats, err
	}
	if err := xml.Unmarshal(raw, &feats); err != nil {
		return feats, fmt.Errorf("stream features: %w", err)
	}
	return feats, nil
}

// readHeaderAndFeatures reads the upstream's stream header and the
// <stream:features/> after it. It returns the raw features and the stream id.
func (up *upstreamLeg) readHeaderAndFeatures() (features []byte, id string, err error) {
	u, err := up.fr.Next()
	if err != nil {
		return nil, "", err
	}
	if u.Kind != stream.UnitStreamOpen {
		return nil, "", fmt.Errorf("expected a stream header, got %.200s", u.Raw)
	}
	h, err := stream.ParseHeader(u.Raw)
	if err != nil {
		return nil, "", fmt.Errorf("stream header: %w", err)
	}
	u, err = up.fr.Next()
	if err != nil {
		return nil, "", err
	}
	start, _ := stream.StartOf(u.Raw)
	if u.Kind != stream.UnitElement || start.Name.Local != "features" || start.Name.Space != ns.Stream {
		if start.Name.Local == "error" && start.Name.Space == ns.Stream {
			return nil, "", fmt.Errorf("upstream stream error: %s", bytes.TrimSpace(u.Raw))
		}
		return nil, "", fmt.Errorf("expected stream features, got %.200s", u.Raw)
	}
	return bytes.Clone(u.Raw), h.ID, nil
}

func (s *Server) upstreamTLSConfig(domain string) *tls.Config {
	return &tls.Config{
		ServerName:         domain,
		InsecureSkipVerify: s.cfg.UpstreamInsecure, //nolint:gosec // the operator's explicit choice
		MinVersion:         tls.VersionTLS12,
	}
}

// upstreamLimits are looser than the client's: the upstream is trusted to
// send large rosters or archive pages, but is still bounded.
func (s *Server) upstreamLimits() stream.Limits {
	return stream.Limits{
		MaxBytes: max(16<<20, s.cfg.Limits.MaxStanzaBytes),
		MaxDepth: max(128, 2*s.cfg.Limits.MaxDepth),
	}
}

// writeDirect writes b to the upstream connection itself, not through a
// relay leg's queue: for negotiation and Bind2 setup, which run before the
// relay owns the connection, and for the last </stream:stream> on one no
// relay writer serves. net.Conn.Write writes all of b or fails, so only
// the error is kept.
func writeDirect(conn net.Conn, b []byte) error {
	_, err := conn.Write(b)
	return err
}
