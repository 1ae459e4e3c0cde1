package sm

import "testing"

var withUpstreamSM = Config{UpstreamSM: true}

func TestStanzasToTheClient(t *testing.T) {
	runRules(t, []rule{
		{"a bounce written by the proxy is counted", withUpstreamSM, steps(
			enable(true, true).is("resume"),
			fromUp().is("up#1"),
			relay("<chat1/>", 1).is("#1 write"),
			queue("<bounce/>").is("#2 write"),
			ack(2).is("a h=1 up"),
			kept().is("[]"),
		)},
		{"sequence numbers follow queue order, whatever the origin", withUpstreamSM, steps(
			enable(true, true),
			queue("<catchup/>").is("#1 write"),
			fromUp(), relay("<relayed/>", 1).is("#2 write"),
			queue("<from-sibling/>").is("#3 write"),
			queue("<bounce/>").is("#4 write"),
			kept().is("[1 2 3 4]"),
		)},
		{"a client ack drops exactly the stanzas it covers", Config{}, steps(
			enable(false, false),
			times(5, queue("<m/>")),
			ack(3).is("-"),
			kept().is("[4 5]"),
			ack(3).is("-"), // the same h again is fine
			kept().is("[4 5]"),
		)},
		{"h above what was sent is handled-count-too-high", Config{}, steps(
			enable(true, true),
			queue("<m/>"), queue("<m/>"),
			ack(3).is("handled-count-too-high h=3 send-count=2"),
			kept().is("[1 2]"),
			ack(2).is("-"),
		)},
		{"h below the last one is refused and changes nothing", Config{}, steps(
			enable(true, true),
			times(3, queue("<m/>")),
			ack(2),
			ack(1).is("backwards h=1 after 2"),
			kept().is("[3]"),
		)},
		{"counters wrap at 2^32", Config{clientStart: 0xFFFFFFFE}, steps(
			enable(true, true),
			queue("<m/>").is("#4294967295 write"),
			queue("<m/>").is("#0 write"),
			queue("<m/>").is("#1 write"),
			ack(0).is("-"),
			kept().is("[1]"),
			ack(0xFFFFFFFF).is("backwards h=4294967295 after 0"),
			ack(2).is("handled-count-too-high h=2 send-count=1"),
			ack(1).is("-"),
		)},
		{"the client is asked for an ack after every 16 stanzas", Config{}, steps(
			enable(true, true),
			times(15, queue("<m/>")),
			queue("<m/>").is("#16 write, r"),
			times(15, queue("<m/>")),
			queue("<m/>").is("#32 write, r"),
			ack(32),
			times(15, queue("<m/>")),
			queue("<m/>").is("#48 write, r"),
		)},
		{"an ack from the client releases stanzas from the count before asking again", Config{RequestEvery: 4}, steps(
			enable(true, true),
			times(3, queue("<m/>")),
			ack(3),
			times(3, queue("<m/>")),
			queue("<m/>").is("#7 write, r"),
		)},
		{"without stream management nothing is counted", withUpstreamSM, steps(
			queue("<m/>").is("write, uncounted (#0)"),
			ack(0).is("stream management is not enabled"),
			req().is("stream management is not enabled"),
			detach().is("stream management is not enabled"),
		)},
		{"a second enable is refused", Config{}, steps(
			enable(true, true).is("resume"),
			enable(true, true).is("stream management is already enabled"),
		)},
		{"queueing past the count cap overflows and the machine refuses everything after", Config{MaxUnacked: 2}, steps(
			enable(true, true),
			queue("<m/>"), queue("<m/>"),
			queue("<m/>").is("overflow: unacked stanzas"),
			state().is("failed"),
			kept().is("[1 2]"),
			ack(2).is("-"),
			queue("<m/>").is("overflow: unacked stanzas"),
			detach().is("overflow: unacked stanzas"),
		)},
		{"queueing past the byte cap overflows", Config{MaxUnackedBytes: 10}, steps(
			enable(true, true),
			queue("<12345/>").is("#1 write"),
			queue("<m/>").is("overflow: unacked bytes"),
		)},
	})
}

func TestUpstreamDone(t *testing.T) {
	runRules(t, []rule{
		{"the upstream's h counts the stanzas the client acked", withUpstreamSM, steps(
			enable(true, true),
			fromUp().is("up#1"), relay("<a/>", 1).is("#1 write"),
			fromUp().is("up#2"), relay("<b/>", 2).is("#2 write"),
			upReq().is("a h=0"),
			ack(1).is("a h=1 up"),
			upReq().is("a h=1"),
		)},
		{"an upstream stanza that never reaches the client is done at once", withUpstreamSM, steps(
			enable(true, true),
			fromUp(), upHandled(1).is("ok"),
			upReq().is("a h=1"),
			upHandled(1).is("unknown or already done upstream stanza number"),
		)},
		{"one upstream stanza the client has not acked holds back those after it", withUpstreamSM, steps(
			enable(true, true),
			fromUp(), relay("<a/>", 1),
			fromUp(), upHandled(2),
			upReq().is("a h=0"),
			ack(1).is("a h=2 up"),
		)},
		{"a held upstream stanza is done only once delivered and acked", withUpstreamSM, steps(
			enable(true, true),
			fromUp(), // held by the caller during the catch-up
			fromUp(), relay("<live/>", 2).is("#1 write"),
			ack(1).is("-"),
			upReq().is("a h=0"),
			relay("<held/>", 1).is("#2 write"),
			ack(2).is("a h=2 up"),
		)},
		{"without client stream management upstream stanzas are done when written", withUpstreamSM, steps(
			fromUp(), relay("<a/>", 1).is("write, uncounted (#0)"),
			upReq().is("a h=1"),
		)},
		{"upstream stanza 0 after the wrap is tracked like any other", Config{UpstreamSM: true, UpstreamReceived: 0xFFFFFFFF}, steps(
			enable(true, true),
			fromUp().is("up#0"),
			relay("<a/>", 0).is("#1 write"),
			upReq().is("a h=4294967295"),
			ack(1).is("a h=0 up"),
		)},
		{"an upstream number never received is refused", withUpstreamSM, steps(
			enable(true, true),
			relay("<a/>", 5).is("unknown or already done upstream stanza number: 5"),
			kept().is("[]"),
		)},
		{"stanzas received during setup are done from the start", Config{UpstreamSM: true, UpstreamReceived: 7}, steps(
			upReq().is("a h=7"),
			fromUp().is("up#8"),
		)},
		{"without upstream stream management the client's acks owe the upstream nothing", Config{}, steps(
			enable(true, true),
			fromUp().is("up#1"), relay("<a/>", 1).is("#1 write"),
			ack(1).is("-"),
			upHandled(9).is("ok"),
		)},
	})
}
