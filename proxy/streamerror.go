package proxy

import (
	"bytes"
	"encoding/xml"
	"errors"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// StreamError is an unrecoverable error on one leg of a session (RFC 6120
// section 4.9). The proxy sends it to the peer that caused it and closes that
// stream.
type StreamError struct {
	// Condition is the defined condition, for example "not-well-formed".
	Condition string
	// Text is a human-readable explanation sent in the <text/> child.
	Text string
	// App is an application-specific condition element, written after
	// <text/> (RFC 6120 section 4.9.4), or nil.
	App []byte
}

// Stream error conditions the proxy raises itself (RFC 6120 section 4.9.3).
const (
	CondBadFormat              = "bad-format"
	CondConflict               = "conflict"
	CondConnectionTimeout      = "connection-timeout"
	CondHostUnknown            = "host-unknown"
	CondInternalServerError    = "internal-server-error"
	CondInvalidNamespace       = "invalid-namespace"
	CondNotAuthorized          = "not-authorized"
	CondNotWellFormed          = "not-well-formed"
	CondPolicyViolation        = "policy-violation"
	CondRemoteConnectionFailed = "remote-connection-failed"
	CondResourceConstraint     = "resource-constraint"
	CondRestrictedXML          = "restricted-xml"
	CondSystemShutdown         = "system-shutdown"
	CondUnsupportedEncoding    = "unsupported-encoding"
	CondUndefinedCondition     = "undefined-condition"
	CondUnsupportedVersion     = "unsupported-version"
)

// Error implements error.
func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// Is reports whether target is a *StreamError with the same condition, so
// callers can write errors.Is(err, &StreamError{Condition: CondPolicyViolation}).
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	return ok && t.Condition == e.Condition
}

// AppendXML appends the <stream:error/> element. The stream prefix matches
// the headers the proxy writes on both legs.
func (e *StreamError) AppendXML(b []byte) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+ns.Streams+"'/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+ns.Streams+"' xml:lang='en'>"...)
		b = appendEscaped(b, e.Text)
		b = append(b, "</text>"...)
	}
	b = append(b, e.App...)
	return append(b, "</stream:error>"...)
}

func streamErr(cond, text string) *StreamError {
	return &StreamError{Condition: cond, Text: text}
}

// asStreamError returns err as a *StreamError, or nil when it is another kind.
func asStreamError(err error) *StreamError {
	var se *StreamError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func appendEscaped(b []byte, s string) []byte {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	return append(b, buf.Bytes()...)
}
