package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Stream negotiation with the client (RFC 6120 sections 4.3 to 5): its
// stream header, the pre-auth features, STARTTLS, and the upstream dialed
// alongside.

// handshake negotiates the client stream and relays SASL. It returns once
// both legs have restarted their streams after a successful authentication.
func (s *session) handshake() error {
	deadline := time.Now().Add(s.srv.cfg.Timeouts.Handshake)
	s.handshakeDeadline = deadline
	_ = s.conn.SetDeadline(deadline)
	if s.ctx.Err() != nil { // shut down before the deadline was set
		return context.Cause(s.ctx)
	}
	if s.directTLS {
		s.dialEarly()
		if err := s.upgradeClientTLS(); err != nil {
			return err
		}
	}
	for {
		if err := s.openClientStream(); err != nil {
			return err
		}
		features, err := s.preAuthFeatures()
		if err != nil {
			return err
		}
		if err := s.writeClientHeader(newStreamID(), features); err != nil {
			return err
		}
		restart, err := s.preAuthElements(deadline)
		if err != nil {
			return err
		}
		if !restart {
			if s.v2 != nil {
				return nil // SASL2: no stream restart, already online
			}
			return s.restartAfterAuth()
		}
	}
}

// preAuthElements handles the client's elements on one pre-auth stream. It
// returns restart=true after STARTTLS, false after a successful SASL.
func (s *session) preAuthElements(deadline time.Time) (restart bool, err error) {
	for {
		u, err := s.nextClientElement()
		if err != nil {
			return false, err
		}
		start, err := stream.StartOf(u.Raw)
		if err != nil {
			return false, stream.NewError(stream.CondNotWellFormed, err.Error())
		}
		switch {
		case start.Name.Space == ns.TLS && start.Name.Local == "starttls":
			if s.secure || s.srv.tls == nil || s.ws {
				_ = s.writeClient([]byte("<failure xmlns='" + ns.TLS + "'/>" + stream.CloseTag))
				return false, errClientClosed
			}
			if err := s.writeClient([]byte("<proceed xmlns='" + ns.TLS + "'/>")); err != nil {
				return false, err
			}
			return true, s.upgradeClientTLS()
		case start.Name.Space == ns.SASL && start.Name.Local == "auth":
			s.kind = kindClassic
			ok, err := s.authenticate(u.Raw, stream.StartAttr(start, "mechanism"), deadline)
			if err != nil || ok {
				return false, err
			}
		case start.Name.Space == ns.SASL2 && start.Name.Local == "authenticate":
			if s.configVersion != "" && configVersionMismatch(u.Raw, s.configVersion) {
				// Refused before anything goes upstream (XEP-0509).
				if err := s.writeClient(configVersionFailure()); err != nil {
					return false, err
				}
				continue
			}
			s.kind = kind2
			ok, err := s.authenticate2(u.Raw, deadline)
			if err != nil || ok {
				return false, err
			}
		default:
			return false, stream.NewError(stream.CondNotAuthorized, "authenticate before sending "+start.Name.Local)
		}
	}
}

// nextClientElement skips whitespace and reports a closed stream as
// errClientClosed.
func (s *session) nextClientElement() (stream.Unit, error) {
	for {
		u, err := s.fr.Next()
		if err != nil {
			return u, err
		}
		switch u.Kind {
		case stream.UnitElement:
			return u, nil
		case stream.UnitStreamClose:
			_ = s.writeClient([]byte(stream.CloseTag))
			return u, errClientClosed
		}
	}
}

// openClientStream reads and checks the client's stream header.
func (s *session) openClientStream() error {
	s.headerSent = false
	u, err := s.fr.Next()
	if err != nil {
		return err
	}
	if u.Kind != stream.UnitStreamOpen {
		return stream.NewError(stream.CondNotWellFormed, "expected a stream header")
	}
	h, err := stream.ParseHeader(u.Raw)
	if err != nil {
		return err
	}
	domain := strings.ToLower(h.To)
	if domain == "" {
		domain = s.srv.cfg.Domains[0]
	}
	if !s.srv.domains[domain] {
		return stream.NewError(stream.CondHostUnknown, "this proxy does not serve "+h.To)
	}
	if s.domain != "" && domain != s.domain {
		return stream.NewError(stream.CondHostUnknown, "the domain changed on stream restart")
	}
	s.domain, s.lang = domain, h.Lang
	// One upstream connection per session: the restarts after STARTTLS
	// and SASL keep the one already dialed.
	if s.upCh == nil && s.up == nil {
		s.startDial(domain, h.Lang)
	}
	return nil
}

// dialEarly starts the upstream dial of a direct TLS connection before its
// handshake, when the proxy serves a single domain: the client's stream
// header can name no other, and the dial then runs while the TLS handshake
// crosses the network instead of after it. The client's xml:lang is not
// known yet; it reaches the upstream with the header after authentication.
func (s *session) dialEarly() {
	if len(s.srv.cfg.Domains) == 1 && s.upCh == nil && s.up == nil {
		s.startDial(strings.ToLower(s.srv.cfg.Domains[0]), "")
	}
}

// startDial dials the upstream in the background; upstream collects it.
func (s *session) startDial(domain, lang string) {
	s.upCh = make(chan upstreamResult, 1)
	// The dial gets its own copies: the stream fields are rewritten on
	// every restart while it runs.
	go func(ctx context.Context, ch chan<- upstreamResult) {
		up, err := s.srv.dialUpstream(ctx, domain, lang, s.peer)
		ch <- upstreamResult{up, err}
	}(s.ctx, s.upCh)
}

// upstream waits for the upstream leg started by openClientStream.
func (s *session) upstream() (*upstreamLeg, error) {
	if s.up != nil {
		return s.up, nil
	}
	r := <-s.upCh
	s.upCh = nil
	if r.err != nil {
		return nil, r.err
	}
	s.mu.Lock()
	s.up = r.up
	s.mu.Unlock()
	return r.up, nil
}

// preAuthFeatures renders the features of a pre-auth stream. Where SASL2
// is offered, the XEP-0509 <config-version/> comes last, its token taken
// over everything before it.
func (s *session) preAuthFeatures() ([]byte, error) {
	s.configVersion = ""
	b := []byte("<stream:features>")
	if !s.secure && s.srv.tls != nil && !s.ws {
		b = append(b, "<starttls xmlns='"+ns.TLS+"'>"...)
		if !s.srv.cfg.AllowPlaintext {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
	}
	if s.secure || s.srv.cfg.AllowPlaintext {
		up, err := s.upstream()
		if err != nil {
			return nil, err
		}
		b = append(b, "<mechanisms xmlns='"+ns.SASL+"'>"...)
		for _, m := range up.mechanisms {
			b = append(b, "<mechanism>"...)
			b = stream.AppendEscaped(b, m)
			b = append(b, "</mechanism>"...)
		}
		b = append(b, "</mechanisms>"...)
		b = append(b, sasl2.Advertisement(up.mechanisms)...)
		s.configVersion = configVersion(b)
		b = appendConfigVersion(b, s.configVersion)
	}
	return append(b, "</stream:features>"...), nil
}

func (s *session) upgradeClientTLS() error {
	if s.fr.Buffered() > 0 {
		// Anything sent in the clear after <starttls/> could be an injection.
		return stream.NewError(stream.CondPolicyViolation, "data after <starttls/> before the TLS handshake")
	}
	rec := stream.NewRecordConn(s.conn)
	tc := tls.Server(rec, s.srv.tls)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return fmt.Errorf("client tls: %w", err)
	}
	s.conn, s.rec = tc, rec
	s.secure = true
	s.fr.Reset(tc)
	return nil
}
