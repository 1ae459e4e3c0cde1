package stream

import (
	"bytes"
	"encoding/xml"
	"errors"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// Error is an unrecoverable error on one leg of a session (RFC 6120
// section 4.9). The proxy sends it to the peer that caused it and closes that
// stream.
type Error struct {
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
func (e *Error) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// Is reports whether target is a *Error with the same condition, so
// callers can write errors.Is(err, &Error{Condition: CondPolicyViolation}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Condition == e.Condition
}

// AppendXML appends the <stream:error/> element. The stream prefix matches
// the headers the proxy writes on both legs.
func (e *Error) AppendXML(b []byte) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+ns.Streams+"'/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+ns.Streams+"' xml:lang='en'>"...)
		b = AppendEscaped(b, e.Text)
		b = append(b, "</text>"...)
	}
	b = append(b, e.App...)
	return append(b, "</stream:error>"...)
}

// NewError returns a stream error with the defined condition cond (one of
// the Cond constants) and the human-readable text, which may be empty.
func NewError(cond, text string) *Error {
	return &Error{Condition: cond, Text: text}
}

// AsError returns err as a *Error, or nil when it is another kind.
func AsError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// AppendEscaped appends s escaped as XML character data, fit for an
// attribute value in either quote or for element text: &, <, >, ' and "
// become references, and so do tab, CR and LF, which an attribute value
// would otherwise normalise away.
func AppendEscaped(b []byte, s string) []byte {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	return append(b, buf.Bytes()...)
}
