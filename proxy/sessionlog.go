package proxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/sasl2"
	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

// What a session logs for its operator: one line when it starts, one when
// it ends, and one per authentication. Their messages are fixed ("session
// started", "session ended", "authenticated", "authentication failed") so
// that log filters (fail2ban, alerting) can match them; nothing a client
// sends as a credential or as stanza content is ever logged, at any
// level: only the SASL username, which the server logs too.

// Session kinds, as the log names them.
const (
	kindNone    = "none"    // never tried to authenticate
	kindClassic = "classic" // RFC 6120 SASL, then relayed unchanged
	kind2       = "2.0"     // SASL2 + Bind2
)

// maxLoggedAccount bounds the username a log line repeats: it comes from
// the client before authentication.
const maxLoggedAccount = 256

// sessionStats counts the XML bytes of a session's client leg, each way.
// The client leg's framer adds what it reads and the writers what they
// write, one atomic add per read or write and nothing per stanza; only the
// end line reads them.
type sessionStats struct {
	fromClient atomic.Int64
	toClient   atomic.Int64
}

// wrote counts n bytes written to a relay leg's peer; only the client leg
// is counted.
func (st *sessionStats) wrote(leg legSide, n int) {
	if leg == clientSide {
		st.toClient.Add(int64(n))
	}
}

// listenerName names the listener a session came in on.
func (s *session) listenerName() string {
	if s.ws {
		return "websocket"
	}
	if s.directTLS {
		return "direct_tls"
	}
	return "starttls"
}

func (s *session) logStart() {
	s.log.Info("session started", "listener", s.listenerName())
	s.srv.metrics.sessionStarted(s.listenerName())
}

// endedWith records the stream error that ends the session; the first
// one is the cause.
func (s *session) endedWith(se *stream.Error) {
	if se != nil && s.endErr.CompareAndSwap(nil, se) {
		s.srv.metrics.streamError(se.Condition)
	}
}

// logEnd writes the session's end line. It runs once, from finish.
func (s *session) logEnd() {
	kind := s.kind
	if kind == "" {
		kind = kindNone
	}
	// The JID the server bound is the account for sure; the SASL
	// username stands in when no bind was seen.
	account := accountOf(s.fullJID())
	if account == "" {
		account = s.account
	}
	label, outcome := s.outcome()
	s.srv.metrics.sessionEnded(s.openKind, kind, s.listenerName(), label)
	s.log.Info("session ended",
		"listener", s.listenerName(),
		"kind", kind,
		"account", account,
		"duration", time.Since(s.start).Round(time.Microsecond),
		"outcome", outcome,
		"bytes_in", s.stats.fromClient.Load(),
		"bytes_out", s.stats.toClient.Load())
}

// outcome says why the session ended, from what the session recorded:
// the stream error that ended it, the error that ended its negotiation,
// or, for a relay, which side closed its stream. label is the same as a
// metric label, from a fixed list; text is for the log line.
func (s *session) outcome() (label, text string) {
	if se := s.endErr.Load(); se != nil {
		return "stream_error", "stream error: " + se.Condition
	}
	if err := s.handshakeErr; err != nil {
		switch {
		case errors.Is(err, errHandedOff):
			return "resumed_an_earlier_session", "resumed an earlier session"
		case errors.Is(err, errClientClosed), errors.Is(err, io.EOF):
			return "client_closed", "client closed"
		case errors.Is(err, errUpstreamError):
			return "upstream_stream_error", "upstream stream error"
		}
		return "failed", "failed: " + err.Error()
	}
	switch cause := context.Cause(s.ctx); {
	case errors.Is(cause, context.DeadlineExceeded):
		return "dropped_at_shutdown", "dropped at the shutdown deadline"
	case cause != nil && !errors.Is(cause, context.Canceled):
		return "write_failed", "write failed: " + cause.Error()
	}
	s.mu.Lock()
	r := s.relay
	s.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		client, upstream := r.closedIn[clientSide], r.closedIn[upstreamSide]
		r.mu.Unlock()
		switch {
		case client && upstream:
			return "closed", "closed"
		case client:
			return "client_closed", "client closed"
		case upstream:
			return "upstream_closed", "upstream closed"
		case r.detached():
			return "not_resumed_in_time", "not resumed in time"
		}
	}
	return "client_vanished", "client vanished"
}

// logAuth logs one authentication's outcome, at info: fail2ban bans on
// the failures, and audits read both. condition is the SASL failure
// condition, empty on success.
func (s *session) logAuth(mechanism, account, condition string) {
	s.srv.metrics.authenticated(s.kind, condition == "")
	if condition == "" {
		s.log.Info("authenticated", "kind", s.kind, "mechanism", mechanism, "account", account)
		return
	}
	s.log.Info("authentication failed", "kind", s.kind, "mechanism", mechanism, "account", account, "condition", condition)
}

// saslAccount returns the account an RFC 6120 <auth/> authenticates as:
// the SASL username of a PLAIN or SCRAM initial response, as a bare JID
// in domain. It is "" when there is none to read (no initial response,
// another mechanism): the password in it is never kept.
func saslAccount(auth []byte, mechanism, domain string) string {
	ir := sasl2.InnerText(auth)
	if ir == "" || ir == "=" {
		return ""
	}
	user := (&sasl2.Authenticate{Mechanism: mechanism, InitialResponse: &ir}).Username()
	if user == "" {
		return ""
	}
	if !strings.Contains(user, "@") {
		user += "@" + domain
	}
	if len(user) > maxLoggedAccount {
		user = user[:maxLoggedAccount] + "..."
	}
	return user
}
