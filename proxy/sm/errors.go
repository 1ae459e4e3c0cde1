package sm

import (
	"errors"
	"strconv"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/ns"
)

// Errors reported by a [Machine]. *AckError and *OverflowError match the
// sentinels with errors.Is.
var (
	// ErrNotEnabled: the client has not enabled stream management, or the
	// upstream leg has none, so the element has no meaning here.
	ErrNotEnabled = errors.New("sm: stream management is not enabled")
	// ErrAlreadyEnabled: a second <enable/> (answer <failed/> with
	// <unexpected-request/>).
	ErrAlreadyEnabled = errors.New("sm: stream management is already enabled")
	// ErrNotResumable: resumption was not promised, so the session cannot
	// be held; the caller ends it.
	ErrNotResumable = errors.New("sm: the session was not promised resumption")
	// ErrNotDetached: a resumption of a session that is not waiting for one.
	ErrNotDetached = errors.New("sm: the session is not detached")
	// ErrUnknownUpstreamSeq: an upstream number that was never received, or
	// is already done. It is a bug in the caller.
	ErrUnknownUpstreamSeq = errors.New("sm: unknown or already done upstream stanza number")
	// ErrHandledCountTooHigh: an h that acks more stanzas than were sent.
	ErrHandledCountTooHigh = errors.New("sm: handled count too high")
	// ErrAckBackwards: an h below the previous valid one.
	ErrAckBackwards = errors.New("sm: handled count went backwards")
	// ErrOverflow: a cap overflowed; the session must end.
	ErrOverflow = errors.New("sm: overflow")
)

// AckError is an invalid h, from the client or from the upstream. For the
// client it is the stream error <undefined-condition/> with
// <handled-count-too-high/> (XEP-0198 section 4): see AppendStreamError.
type AckError struct {
	// Upstream is set when the upstream sent the h, not the client.
	Upstream bool
	// H is the h received.
	H uint32
	// Acked is the last valid h on that leg.
	Acked uint32
	// Sent is how many stanzas were sent on that leg (the send-count).
	Sent uint32
}

// Backwards reports whether H is below the last valid h rather than above
// what was sent. In serial arithmetic an h more than 2^31 ahead reads as
// behind; both are invalid.
func (e *AckError) Backwards() bool { return int32(e.H-e.Acked) < 0 }

// Error implements error.
func (e *AckError) Error() string {
	who := "client"
	if e.Upstream {
		who = "upstream"
	}
	if e.Backwards() {
		return "sm: " + who + " h=" + u32(e.H) + " is below its previous h=" + u32(e.Acked)
	}
	return "sm: " + who + " h=" + u32(e.H) + " acks more than the " + u32(e.Sent) + " stanzas sent"
}

// Is matches ErrHandledCountTooHigh or ErrAckBackwards.
func (e *AckError) Is(target error) bool {
	if e.Backwards() {
		return target == ErrAckBackwards
	}
	return target == ErrHandledCountTooHigh
}

// AppendStreamError appends the complete <stream:error/> to send the
// client before closing its stream: <undefined-condition/>, a <text/>, and
// for an h above the send count the <handled-count-too-high/> element.
// The application condition comes after <text/>, the order RFC 6120's
// schema gives.
func (e *AckError) AppendStreamError(b []byte) []byte {
	b = append(b, "<stream:error><undefined-condition xmlns='"+ns.Streams+"'/>"...)
	b = append(b, "<text xmlns='"+ns.Streams+"' xml:lang='en'>"...)
	if e.Backwards() {
		b = append(b, "You acknowledged "+u32(e.H)+" stanzas after acknowledging "+u32(e.Acked)...)
	} else {
		b = append(b, "You acknowledged "+u32(e.H)+" stanzas, but only "+u32(e.Sent)+" were sent"...)
	}
	b = append(b, "</text>"...)
	if !e.Backwards() {
		b = AppendHandledCountTooHigh(b, e.H, e.Sent)
	}
	return append(b, "</stream:error>"...)
}

// OverflowError reports the cap that overflowed. The machine is then in
// [StateFailed] and the caller ends the session (<policy-violation/> or
// <resource-constraint/> to the client, if it is still there).
type OverflowError struct {
	// List is "unacked stanzas", "unacked bytes" or "in-flight stanzas".
	List string
	// Cap is the configured limit.
	Cap int
}

// Error implements error.
func (e *OverflowError) Error() string {
	return "sm: too many " + e.List + " (cap " + strconv.Itoa(e.Cap) + ")"
}

// Is matches ErrOverflow.
func (e *OverflowError) Is(target error) bool { return target == ErrOverflow }

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
