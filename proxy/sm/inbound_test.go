package sm

import "testing"

func TestStanzasFromTheClient(t *testing.T) {
	runRules(t, []rule{
		{"a forwarded stanza is handled once the upstream acks it", withUpstreamSM, steps(
			enable(true, true),
			fwd().is("-"),
			req().is("wait, r up"),
			upAck(1).is("a h=1"),
			req().is("a h=1"),
		)},
		{"a stanza the proxy answered waits for the forwarded one before it", withUpstreamSM, steps(
			enable(true, true),
			fwd(), answered(),
			req().is("wait, r up"),
			upAck(1).is("a h=2"),
		)},
		{"a stanza the proxy answered with nothing in flight is handled at once", withUpstreamSM, steps(
			enable(true, true),
			answered(),
			req().is("a h=1"),
		)},
		{"without upstream stream management client stanzas are handled at once", Config{}, steps(
			enable(true, true),
			fwd(), answered(),
			req().is("a h=2"),
			upAck(0).is("stream management is not enabled"),
		)},
		{"a waiting <r/> does not ask the upstream twice", withUpstreamSM, steps(
			enable(true, true),
			fwd(),
			req().is("wait, r up"),
			req().is("wait"),
			fwd(),
			req().is("wait, r up"),
			upAck(1).is("a h=1"),
			upAck(2).is("-"),
			req().is("a h=2"),
		)},
		{"the upstream is asked for an ack after every 16 forwarded stanzas", withUpstreamSM, steps(
			enable(true, true),
			times(15, fwd()),
			fwd().is("r up"),
			times(15, answered()),
			times(15, fwd()),
			fwd().is("r up"),
		)},
		{"an upstream ack releases the count before asking again", Config{UpstreamSM: true, RequestEvery: 4}, steps(
			enable(true, true),
			times(3, fwd()),
			upAck(3),
			times(3, fwd()),
			fwd().is("r up"),
		)},
		{"the proxy's own stanzas upstream count on the upstream leg only", withUpstreamSM, steps(
			enable(true, true),
			toUp().is("up#1"),
			fwd(),
			req().is("wait, r up"),
			upAck(1).is("a h=0"), // the first <a/> answers, with what it settles
			upAck(2).is("-"),
			req().is("a h=1"),
		)},
		{"client stanzas before enable count upstream only", withUpstreamSM, steps(
			fwd().is("-"),
			enable(true, true),
			fwd(),
			upAck(1).is("-"),
			req().is("wait, r up"),
			upAck(2).is("a h=1"),
		)},
		{"an upstream h above what the proxy sent is refused", withUpstreamSM, steps(
			enable(true, true),
			fwd(),
			upAck(2).is("upstream handled-count-too-high h=2 send-count=1"),
			upAck(1).is("-"),
			upAck(0).is("upstream backwards h=0 after 1"),
		)},
		{"upstream counters wrap at 2^32", Config{UpstreamSM: true, UpstreamSent: 0xFFFFFFFF, UpstreamAcked: 0xFFFFFFFF}, steps(
			enable(true, true),
			fwd(), fwd(),
			req().is("wait, r up"),
			upAck(0).is("a h=1"),
			upAck(1).is("-"),
			req().is("a h=2"),
		)},
		{"the in-flight list overflows at its cap", Config{UpstreamSM: true, MaxInFlight: 2}, steps(
			enable(true, true),
			fwd(), answered(),
			fwd().is("overflow: in-flight stanzas"),
			queue("<m/>").is("overflow: in-flight stanzas"),
		)},
		{"client stanza numbers wrap at 2^32", Config{UpstreamSM: true, clientStart: 0xFFFFFFFF}, steps(
			enable(true, true),
			answered(),
			req().is("a h=0"),
		)},
	})
}
