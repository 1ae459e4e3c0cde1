package proxy

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// Relaying classic SASL (RFC 6120 section 6) byte for byte, in lock step,
// and the stream restart after it.

// saslProfile is how one SASL profile (RFC 6120 or XEP-0388) frames the
// exchange for the client; the upstream always speaks RFC 6120.
type saslProfile struct {
	// failure renders a failure the proxy raises itself.
	failure func(condition, text string) []byte
	// challenge and upstreamFailure render the upstream's elements.
	challenge, upstreamFailure func(raw []byte) []byte
	// response relays the client's answer to a challenge.
	response func() error
}

// classicSASL relays RFC 6120 SASL byte for byte.
func (s *session) classicSASL() saslProfile {
	same := func(raw []byte) []byte { return raw }
	return saslProfile{failure: saslFailure1, challenge: same, upstreamFailure: same,
		response: func() error { return s.relaySASLResponse(s.up) }}
}

// relaySASL checks the policy, sends the client's <auth/> upstream and runs
// the challenge loop. It returns the upstream's <success/>, or nil after a
// failure the client was told about (it may try again).
func (s *session) relaySASL(p saslProfile, auth []byte, mechanism string, deadline time.Time) ([]byte, error) {
	if !s.secure && !s.srv.cfg.AllowPlaintext {
		return nil, s.writeClient(p.failure("encryption-required", "use STARTTLS before authenticating"))
	}
	up, err := s.upstream()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(up.mechanisms, mechanism) {
		return nil, s.writeClient(p.failure("invalid-mechanism", ""))
	}
	_ = up.conn.SetDeadline(deadline)
	if s.ctx.Err() != nil { // shut down before the deadline was set
		return nil, context.Cause(s.ctx)
	}
	account := saslAccount(auth, mechanism, s.domain)
	if err := writeDirect(up.conn, auth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	for {
		u, err := up.fr.Next()
		if err != nil || u.Kind != stream.UnitElement {
			return nil, fmt.Errorf("%w: during SASL: %v", ErrUpstream, err)
		}
		start, _ := stream.StartOf(u.Raw)
		if start.Name.Space == ns.Stream && start.Name.Local == "error" {
			_ = s.writeClient(append(bytes.Clone(u.Raw), stream.CloseTag...))
			return nil, errUpstreamError
		}
		if start.Name.Space != ns.SASL {
			return nil, fmt.Errorf("%w: unexpected %s during SASL", ErrUpstream, start.Name.Local)
		}
		switch start.Name.Local {
		case "success":
			s.account = account
			s.logAuth(mechanism, account, "")
			return bytes.Clone(u.Raw), nil
		case "failure":
			s.logAuth(mechanism, account, sasl2.Condition(u.Raw))
			return nil, s.writeClient(p.upstreamFailure(u.Raw))
		case "challenge":
			if err := s.writeClient(p.challenge(u.Raw)); err != nil {
				return nil, err
			}
			if err := p.response(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected SASL element %s", ErrUpstream, start.Name.Local)
		}
	}
}

// authenticate relays one classic SASL exchange. It reports whether it
// succeeded; a failure leaves the stream open for another attempt.
func (s *session) authenticate(auth []byte, mechanism string, deadline time.Time) (bool, error) {
	success, err := s.relaySASL(s.classicSASL(), auth, mechanism, deadline)
	if err != nil || success == nil {
		return false, err
	}
	return true, s.writeClient(success)
}

// relaySASLResponse forwards the client's <response/> or <abort/>.
func (s *session) relaySASLResponse(up *upstreamLeg) error {
	u, err := s.nextClientElement()
	if err != nil {
		return err
	}
	start, _ := stream.StartOf(u.Raw)
	if start.Name.Space != ns.SASL || (start.Name.Local != "response" && start.Name.Local != "abort") {
		return stream.NewError(stream.CondNotAuthorized, "expected a SASL response")
	}
	if err := writeDirect(up.conn, u.Raw); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	return nil
}

// saslFailure1 renders an RFC 6120 <failure/>.
func saslFailure1(condition, text string) []byte {
	b := []byte("<failure xmlns='" + ns.SASL + "'><" + condition + "/>")
	if text != "" {
		b = append(b, "<text xml:lang='en'>"...)
		b = stream.AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</failure>"...)
}

// restartAfterAuth restarts both streams (RFC 6120 6.4.6) and hands the
// client the upstream's post-auth features unchanged.
func (s *session) restartAfterAuth() error {
	up := s.up
	if err := writeDirect(up.conn, stream.AppendHeader(nil, s.domain, "", "", s.lang)); err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	s.fr.Reset(nil)
	if err := s.openClientStream(); err != nil {
		return err
	}
	up.fr.Reset(nil)
	features, id, err := up.readHeaderAndFeatures()
	if err != nil {
		return fmt.Errorf("%w: after auth: %w", ErrUpstream, err)
	}
	s.fr.SetLimits(stream.Limits{MaxBytes: s.srv.cfg.Limits.MaxStanzaBytes, MaxDepth: s.srv.cfg.Limits.MaxDepth})
	return s.writeClientHeader(id, features)
}
