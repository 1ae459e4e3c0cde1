package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, v1 text and v2
// binary) lets a TCP load balancer tell the proxy who its client is: the
// balancer opens each connection with a header carrying the client's
// address, and the proxy uses that address wherever it names the client
// (session and authentication log lines, which fail2ban reads). And the
// proxy can do the same for the upstream, so the XMPP server sees the
// client's address too.
//
// A listener either requires the header (proxy_protocol names it) or
// refuses it: a listener that would take a header when one came could be
// fooled by any client sending one. github.com/pires/go-proxyproto parses
// the header and applies those policies (REQUIRE, REJECT, and the trusted
// sources of proxy_protocol_from). The header is read in the session's own
// goroutine, never in Accept: a balancer, or anyone, that connects and
// sends nothing holds only its own session, for timeouts.proxy_header, and
// the accept loop goes on.

// errProxyRefused marks a connection refused at the PROXY protocol step.
var errProxyRefused = errors.New("PROXY protocol")

// peerAddrs are a client connection's two ends as the client sees them:
// from the PROXY header behind a balancer, else from the socket.
type peerAddrs struct {
	remote net.Addr // the client
	local  net.Addr // the address the client connected to
}

// proxyPolicies decides, per listener, whether a connection must or must
// not begin with a PROXY header, from the configuration.
type proxyPolicies struct {
	starttls, directTLS proxyproto.ConnPolicyFunc
}

func newProxyPolicies(cfg *Config) (proxyPolicies, error) {
	require := func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }
	if len(cfg.ProxyProtocolFrom) > 0 {
		// Untrusted sources are refused outright (an error), with or
		// without a header: the listener is the balancer's alone.
		var err error
		if require, err = proxyproto.TrustProxyHeaderFromRanges(cfg.ProxyProtocolFrom); err != nil {
			return proxyPolicies{}, fmt.Errorf("proxy_protocol_from: %w", err)
		}
	}
	reject := func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) { return proxyproto.REJECT, nil }
	p := proxyPolicies{starttls: reject, directTLS: reject}
	if cfg.requiresProxyHeader(ListenerStartTLS) {
		p.starttls = require
	}
	if cfg.requiresProxyHeader(ListenerDirectTLS) {
		p.directTLS = require
	}
	return p, nil
}

func (p proxyPolicies) of(directTLS bool) proxyproto.ConnPolicyFunc {
	if directTLS {
		return p.directTLS
	}
	return p.starttls
}

// admit runs a new connection's PROXY protocol step, and logs the
// session's start line with the client's address. On a listener that
// requires a header it reads it, within timeouts.proxy_header; on any
// other it checks that the first bytes are not one, within the handshake
// timeout (a client speaks first in XMPP, so this only waits for it). A
// refused connection is logged and gets nothing back: whoever sent it is
// not speaking XMPP to this listener. Other errors (a timeout, a
// shutdown) are the handshake's to report.
func (s *session) admit() error {
	raw := s.rawConn
	s.peer = peerAddrs{remote: raw.RemoteAddr(), local: raw.LocalAddr()}
	if s.ws {
		// A PROXY header would come on the HTTP connection, before the
		// upgrade, which the HTTP server reads: nothing to do here.
		s.logStart()
		return nil
	}
	policy, err := s.srv.proxyPolicies.of(s.directTLS)(proxyproto.ConnPolicyOptions{Upstream: raw.RemoteAddr(), Downstream: raw.LocalAddr()})
	if err != nil {
		return s.refuse(err)
	}
	wait := s.srv.cfg.Timeouts.Handshake
	if policy == proxyproto.REQUIRE {
		wait = s.srv.cfg.Timeouts.ProxyHeader
	} else {
		// Nothing to learn first: the line can go out before the client
		// has sent anything.
		s.logStart()
	}
	// The deadline is the connection's own, set before the shutdown check,
	// as in handshake: a shutdown after the check moves it into the past.
	// (The library's header timeout would set a deadline of its own after
	// the check, which a shutdown could not cut short.)
	pc := proxyproto.NewConn(raw, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(0))
	_ = pc.SetReadDeadline(time.Now().Add(wait))
	if s.ctx.Err() != nil {
		return context.Cause(s.ctx)
	}
	// A zero-length read runs the header step and returns its error, and
	// reads nothing from the client.
	if _, err := pc.Read(nil); err != nil {
		if s.ctx.Err() != nil {
			return context.Cause(s.ctx) // a shutdown, not the client's doing
		}
		if policy == proxyproto.REQUIRE || isHeaderError(err) {
			return s.refuse(err)
		}
		return err // a timeout or a dropped connection: the handshake's to report
	}
	s.adopt(raw, pc, policy == proxyproto.REQUIRE)
	return nil
}

// adopt makes the session read the socket itself again, after the bytes
// the header step read past the header; after a header, the session
// names the client it gives, and logs its start line.
func (s *session) adopt(raw net.Conn, pc *proxyproto.Conn, fromHeader bool) {
	conn := raw
	if rest := readBuffered(pc); len(rest) > 0 {
		conn = &replayConn{Conn: raw, pending: rest}
	}
	s.mu.Lock()
	s.rawConn, s.conn = conn, conn
	s.mu.Unlock()
	s.fr.Reset(conn)
	if fromHeader {
		s.peer = peerAddrs{remote: pc.RemoteAddr(), local: pc.LocalAddr()}
		s.log = s.srv.log.With("conn", s.id, "remote", s.peer.remote.String(), "via", raw.RemoteAddr().String())
		s.logStart()
	}
}

// headerErrors are what the library returns for a connection that began
// with a PROXY signature: a valid header where none may come, or one it
// cannot parse.
var headerErrors = []error{
	proxyproto.ErrSuperfluousProxyHeader, proxyproto.ErrCantReadVersion1Header, proxyproto.ErrVersion1HeaderTooLong,
	proxyproto.ErrLineMustEndWithCrlf, proxyproto.ErrCantReadProtocolVersionAndCommand,
	proxyproto.ErrCantReadAddressFamilyAndProtocol, proxyproto.ErrCantReadLength,
	proxyproto.ErrCantResolveSourceUnixAddress, proxyproto.ErrCantResolveDestinationUnixAddress,
	proxyproto.ErrUnknownProxyProtocolVersion, proxyproto.ErrUnsupportedProtocolVersionAndCommand,
	proxyproto.ErrUnsupportedAddressFamilyAndProtocol, proxyproto.ErrInvalidLength,
	proxyproto.ErrInvalidAddress, proxyproto.ErrInvalidPortNumber,
	proxyproto.ErrMalformedTLV, proxyproto.ErrTruncatedTLV, proxyproto.ErrIncompatibleTLV,
}

func isHeaderError(err error) bool {
	for _, e := range headerErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// refuse logs a connection refused at the PROXY protocol step. Its
// session start line, still with the socket's address, comes first, so
// that every session's lines pair up.
func (s *session) refuse(err error) error {
	required := s.srv.cfg.requiresProxyHeader(s.listenerName())
	if required {
		s.logStart()
	}
	reason := "no valid PROXY header"
	switch {
	case !required:
		reason = "a PROXY header on a listener not configured for it"
	case errors.Is(err, proxyproto.ErrInvalidUpstream):
		reason = "a source not in proxy_protocol_from"
	case isTimeout(err):
		reason = "no PROXY header in time"
	}
	s.log.Warn("connection refused", "listener", s.listenerName(), "reason", reason, "err", err)
	return fmt.Errorf("%w: %s: %w", errProxyRefused, reason, err)
}

// readBuffered returns the bytes the header step read past the header:
// the library reads ahead into a buffer of its own, and the session
// reads the socket itself from now on (parking needs the bare socket).
// It reads until the buffer is empty, with the deadline in the past so
// that no read waits for the client: the deadline's error ends it. Any
// other error means the client is gone; what it sent still goes first,
// and the session's next read reports the end.
func readBuffered(pc *proxyproto.Conn) []byte {
	_ = pc.SetReadDeadline(time.Unix(1, 0))
	var rest []byte
	buf := make([]byte, 512)
	for {
		n, err := pc.Read(buf)
		rest = append(rest, buf[:n]...)
		if err != nil {
			return rest
		}
	}
}

// replayConn is the accepted socket with the bytes read past the PROXY
// header put back in front of it.
type replayConn struct {
	net.Conn
	pending []byte
}

// Read returns the pending bytes first, then reads the socket.
func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(b)
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// errReplayPending: the socket cannot be read directly while bytes read
// from it earlier are still to be returned.
var errReplayPending = errors.New("bytes read past the PROXY header are pending")

// SyscallConn gives parking the socket, once the pending bytes are read
// (they are part of the client's first flight, read long before a relay
// parks); until then parking does without it.
func (c *replayConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok || len(c.pending) > 0 {
		return nil, errReplayPending
	}
	return sc.SyscallConn()
}

// sendProxyHeader begins an upstream connection with a PROXY header
// carrying the client's address, when upstream_proxy_protocol asks for one.
// ejabberd reads it on a listener with use_proxy_protocol: true, Prosody
// with mod_net_proxy.
func (s *Server) sendProxyHeader(ctx context.Context, conn net.Conn, client peerAddrs) error {
	var version byte
	switch s.cfg.UpstreamProxyProtocol {
	case ProxyProtocolV1:
		version = 1
	case ProxyProtocolV2:
		version = 2
	default:
		return nil
	}
	h := proxyproto.HeaderProxyFromAddrs(version, client.remote, client.local)
	deadline, _ := ctx.Deadline()
	_ = conn.SetWriteDeadline(deadline)
	if _, err := h.WriteTo(conn); err != nil {
		return fmt.Errorf("PROXY header: %w", err)
	}
	return nil
}
