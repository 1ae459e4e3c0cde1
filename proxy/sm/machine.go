package sm

// Defaults for the zero fields of a [Config].
const (
	// DefaultRequestEvery is how many stanzas go out, on either leg,
	// without an ack or a request covering them before the proxy asks.
	DefaultRequestEvery = 16
	// DefaultMaxUnacked caps the stanzas kept for the client (the
	// proxy's limits.max_unacked default).
	DefaultMaxUnacked = 10000
	// DefaultMaxUnackedBytes caps their bytes.
	DefaultMaxUnackedBytes = 16 << 20
	// DefaultMaxInFlight caps the client stanzas waiting for the
	// upstream's ack.
	DefaultMaxInFlight = 10000
)

// Config sets up a [Machine]. Zero fields take the defaults above.
type Config struct {
	// UpstreamSM says the upstream leg has stream management enabled.
	// Without it client stanzas are handled as soon as they are counted,
	// and there is no h to give the upstream.
	UpstreamSM bool
	// UpstreamReceived and UpstreamSent are the upstream leg's counters
	// when the machine takes over after setup. The stanzas received during
	// setup count as done; those sent are the proxy's own.
	UpstreamReceived, UpstreamSent uint32
	// UpstreamAcked is the upstream's last h during setup, if any.
	UpstreamAcked uint32

	// RequestEvery is how many stanzas may go out on a leg, not covered
	// by an ack or an earlier request, before the proxy asks that leg for
	// an ack (<r/>).
	RequestEvery int
	// MaxUnacked caps the stanzas kept for the client until it acks them.
	MaxUnacked int
	// MaxUnackedBytes caps their bytes. It must exceed the largest stanza
	// the client may get, or that stanza alone overflows it.
	MaxUnackedBytes int
	// MaxInFlight caps the client stanzas waiting for the upstream's ack.
	MaxInFlight int

	// clientStart is where the client leg's counters start on Enable:
	// 0 by XEP-0198; tests start near 2^32 to cross the wrap.
	clientStart uint32
}

// State is where a [Machine] stands on the client leg.
type State uint8

const (
	// StateOff: the client has not enabled stream management; nothing is
	// counted or kept on the client leg.
	StateOff State = iota
	// StateLive: enabled, and the client is connected.
	StateLive
	// StateDetached: the client is gone and the session is held for
	// resumption; queued stanzas are kept but not written.
	StateDetached
	// StateResuming: a resumption waits for the upstream to ack the
	// client's stanzas still in flight; see [Machine.Resume].
	StateResuming
	// StateFailed: a cap overflowed; the session must end.
	StateFailed
)

// String names the state for logs.
func (s State) String() string {
	return [...]string{"off", "live", "detached", "resuming", "failed"}[s]
}

// Machine is the stream-management state of one 2.0 session. The zero
// value is not usable: call [New].
type Machine struct {
	cfg       Config
	state     State
	resumable bool
	failure   error // the overflow that moved the machine to StateFailed

	// Client leg, proxy to client.
	sent         uint32   // number of the last stanza queued for the client
	acked        uint32   // the client's last valid h
	requested    uint32   // sent when the client was last asked; never behind acked
	unacked      []Stanza // numbered acked+1 ... sent, oldest first
	unackedBytes int

	// Client leg, client to proxy.
	received      uint32     // client stanzas counted
	handled       uint32     // the h the proxy gives the client
	inFlight      []inFlight // client stanzas handled+1 ... received
	clientWaiting bool       // a client <r/> waits for the upstream's <a/>

	// Upstream leg.
	upReceived  uint32
	upPending   []uint32 // upstream numbers received and not done, ascending
	upSent      uint32
	upAcked     uint32
	upRequested uint32 // upSent when the upstream was last asked; never behind upAcked
}

// inFlight is a client stanza not handled yet: forwarded upstream as
// number up, or answered by the proxy.
type inFlight struct {
	up        uint32
	forwarded bool
}

// Stanza is a stanza kept for the client until it acks it.
type Stanza struct {
	// Seq is its number on the client leg.
	Seq uint32
	// UpstreamSeq is its number on the upstream leg, when FromUpstream.
	UpstreamSeq uint32
	// FromUpstream: it came from this session's upstream leg, which has
	// stream management, and is done there once the client acks it.
	FromUpstream bool
	// Raw is the machine's copy of its bytes; do not modify it.
	Raw []byte
}

// New returns a machine in [StateOff] for a session whose upstream leg is
// as cfg says.
func New(cfg Config) *Machine {
	if cfg.RequestEvery <= 0 {
		cfg.RequestEvery = DefaultRequestEvery
	}
	if cfg.MaxUnacked <= 0 {
		cfg.MaxUnacked = DefaultMaxUnacked
	}
	if cfg.MaxUnackedBytes <= 0 {
		cfg.MaxUnackedBytes = DefaultMaxUnackedBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	return &Machine{
		cfg:         cfg,
		upReceived:  cfg.UpstreamReceived,
		upSent:      cfg.UpstreamSent,
		upAcked:     cfg.UpstreamAcked,
		upRequested: cfg.UpstreamAcked,
	}
}

// Enable turns stream management on for the client leg (<enable/>, or the
// <enable/> inside a Bind2 request) and reports whether to promise
// resumption (resume='true' in <enabled/>). It promises only what the
// client asked for (wantResume) and the caller can keep (canHold: there is
// room for a detached session, for this account too). A second Enable is
// ErrAlreadyEnabled.
func (m *Machine) Enable(wantResume, canHold bool) (resume bool, err error) {
	if m.state != StateOff {
		return false, ErrAlreadyEnabled
	}
	m.state = StateLive
	m.resumable = wantResume && canHold
	s := m.cfg.clientStart
	m.sent, m.acked, m.requested, m.received, m.handled = s, s, s, s, s
	return m.resumable, nil
}

// State reports where the machine stands.
func (m *Machine) State() State { return m.state }

// Resumable reports whether resumption was promised.
func (m *Machine) Resumable() bool { return m.resumable }

// Counts is a snapshot of a machine's counters, for logs and tests.
type Counts struct {
	// Sent is the number of the last stanza queued for the client; Acked
	// is the client's last valid h.
	Sent, Acked uint32
	// Received counts the client's stanzas; Handled is the h the proxy
	// gives the client.
	Received, Handled uint32
	// Unacked and UnackedBytes measure the stanzas kept for the client.
	Unacked, UnackedBytes int
	// InFlight is the client stanzas not handled yet.
	InFlight int
	// UpstreamReceived counts the upstream's stanzas; UpstreamDone is the
	// h the proxy gives the upstream.
	UpstreamReceived, UpstreamDone uint32
	// UpstreamSent counts the stanzas sent upstream; UpstreamAcked is the
	// upstream's last valid h.
	UpstreamSent, UpstreamAcked uint32
	// UpstreamPending is the upstream stanzas not done yet: queued and
	// unacked, or still in the caller's hands.
	UpstreamPending int
}

// Counts returns the machine's counters.
func (m *Machine) Counts() Counts {
	return Counts{
		Sent: m.sent, Acked: m.acked, Received: m.received, Handled: m.handled,
		Unacked: len(m.unacked), UnackedBytes: m.unackedBytes, InFlight: len(m.inFlight),
		UpstreamReceived: m.upReceived, UpstreamDone: m.upDone(),
		UpstreamSent: m.upSent, UpstreamAcked: m.upAcked, UpstreamPending: len(m.upPending),
	}
}

// fail moves the machine to StateFailed for good.
func (m *Machine) fail(err error) error {
	m.state, m.failure = StateFailed, err
	return err
}

// after reports whether a comes after b in serial arithmetic.
func after(a, b uint32) bool { return int32(a-b) > 0 }

// checkAck validates h against the last valid h and the send count.
func checkAck(h, acked, sent uint32, upstream bool) error {
	if int32(h-acked) < 0 || h-acked > sent-acked {
		return &AckError{Upstream: upstream, H: h, Acked: acked, Sent: sent}
	}
	return nil
}
