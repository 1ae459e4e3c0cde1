package sm

import (
	"encoding/xml"
	"errors"
	"strconv"
	"testing"
)

func TestWireElements(t *testing.T) {
	tooHigh := &AckError{H: 10, Acked: 2, Sent: 8}
	backwards := &AckError{H: 1, Acked: 2, Sent: 8}
	for _, c := range []struct{ name, got, want string }{
		{"an ack carries h", string(AppendAck(nil, 4294967295)), "<a xmlns='urn:xmpp:sm:3' h='4294967295'/>"},
		{"a request", string(AppendRequest([]byte("x"))), "x<r xmlns='urn:xmpp:sm:3'/>"},
		{"enabled promises resumption only when told", string(AppendEnabled(nil, "id1", false)), "<enabled xmlns='urn:xmpp:sm:3' id='id1'/>"},
		{"enabled with resumption", string(AppendEnabled(nil, "a'b<&", true)), "<enabled xmlns='urn:xmpp:sm:3' id='a&apos;b&lt;&amp;' resume='true'/>"},
		{"resumed carries previd and h", string(AppendResumed(nil, "p\"1", 7)), "<resumed xmlns='urn:xmpp:sm:3' previd='p&quot;1' h='7'/>"},
		{"failed carries a stanza error condition", string(AppendFailed(nil, "item-not-found")),
			"<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"},
		{"handled-count-too-high names h and the send count", string(AppendHandledCountTooHigh(nil, 10, 8)),
			"<handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' send-count='8'/>"},
		{"h above what was sent is the undefined-condition stream error", string(tooHigh.AppendStreamError(nil)),
			"<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>You acknowledged 10 stanzas, but only 8 were sent</text>" +
				"<handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' send-count='8'/></stream:error>"},
		{"an h going backwards is undefined-condition without the element", string(backwards.AppendStreamError(nil)),
			"<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>You acknowledged 1 stanzas after acknowledging 2</text></stream:error>"},
		{"errors say what was wrong", tooHigh.Error() + " / " + backwards.Error(),
			"sm: client h=10 acks more than the 8 stanzas sent / sm: client h=1 is below its previous h=2"},
		{"overflow names its list", (&OverflowError{List: "unacked bytes", Cap: 5}).Error(), "sm: too many unacked bytes (cap 5)"},
		{"states have names", StateResuming.String(), "resuming"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Fatalf("got  %s\nwant %s", c.got, c.want)
			}
		})
	}
}

func TestStreamErrorIsWellFormed(t *testing.T) {
	b := []byte("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")
	b = (&AckError{H: 10, Sent: 8}).AppendStreamError(b)
	b = append(b, "</stream:stream>"...)
	var v struct {
		Error struct {
			TooHigh struct {
				H         uint32 `xml:"h,attr"`
				SendCount uint32 `xml:"send-count,attr"`
			} `xml:"urn:xmpp:sm:3 handled-count-too-high"`
		} `xml:"http://etherx.jabber.org/streams error"`
	}
	if err := xml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Error.TooHigh.H != 10 || v.Error.TooHigh.SendCount != 8 {
		t.Fatalf("parsed %+v", v)
	}
}

func TestAckErrorMatchesItsSentinel(t *testing.T) {
	var err error = &AckError{H: 10, Acked: 2, Sent: 8}
	if !errors.Is(err, ErrHandledCountTooHigh) || errors.Is(err, ErrAckBackwards) {
		t.Fatal("too high")
	}
	err = &AckError{H: 1, Acked: 2, Sent: 8}
	if !errors.Is(err, ErrAckBackwards) || errors.Is(err, ErrHandledCountTooHigh) {
		t.Fatal("backwards")
	}
	if !errors.Is(&OverflowError{}, ErrOverflow) {
		t.Fatal("overflow")
	}
}

func TestParseH(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"0", 0, true},
		{"4294967295", 4294967295, true},
		{"4294967296", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"0x10", 0, false},
		{"1_0", 0, false},
	} {
		h, err := ParseH([]byte(c.in))
		if (err == nil) != c.ok || (c.ok && h != c.want) {
			t.Errorf("ParseH(%q) = %d, %v", c.in, h, err)
		}
	}
}

func FuzzParseH(f *testing.F) {
	for _, s := range []string{"0", "17", "4294967295", "4294967296", "-0", "00012"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseH(in)
		if err != nil {
			return
		}
		// Whatever it accepts is a decimal that names h.
		v, err := strconv.ParseUint(string(in), 10, 64)
		if err != nil || v != uint64(h) {
			t.Fatalf("ParseH(%q) = %d, but it reads as %d (%v)", in, h, v, err)
		}
		if back, _ := ParseH(strconv.AppendUint(nil, uint64(h), 10)); back != h {
			t.Fatalf("round trip of %d gave %d", h, back)
		}
	})
}
