package proxy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"github.com/xmpp2proxy/xmpp2proxy/proxy/stream"
)

var wsTestLimits = stream.Limits{MaxBytes: 4096, MaxDepth: 8}

func TestWebSocketClientMessagesBecomeTheRFC6120Stream(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
		cond            string // the stream error, instead of want
	}{
		{name: "open becomes a stream header with its attributes (RFC 7395 3.4)",
			msg:  "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0' xml:lang='de'/>",
			want: "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='de'>"},
		{name: "open's attribute values stay escaped",
			msg:  `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="a&amp;b" version="1.0"/>`,
			want: "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&amp;b' version='1.0'>"},
		{name: "close becomes the stream close (RFC 7395 3.6)",
			msg: "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", want: "</stream:stream>"},
		{name: "a stanza passes byte for byte",
			msg:  "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>",
			want: "<message xmlns='jabber:client' to='bob@localhost'><body>hi</body></message>"},
		{name: "whitespace around the one element is dropped",
			msg: "\n <r xmlns='urn:xmpp:sm:3'/> \n", want: "<r xmlns='urn:xmpp:sm:3'/>"},
		{name: "a message of whitespace only is a keepalive", msg: "  ", want: " "},
		{name: "two elements in one message are refused (RFC 7395 3.3.3)",
			msg: "<r xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>", cond: stream.CondNotWellFormed},
		{name: "half an element is refused, not joined with the next message",
			msg: "<message xmlns='jabber:client'><body>", cond: stream.CondNotWellFormed},
		{name: "an empty message is refused", msg: "", cond: stream.CondNotWellFormed},
		{name: "a stream header is refused: streams are framed with open",
			msg: "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", cond: stream.CondNotWellFormed},
		{name: "a stream close tag is refused", msg: "</stream:stream>", cond: stream.CondNotWellFormed},
		{name: "text outside an element is refused", msg: "hello", cond: stream.CondNotWellFormed},
		{name: "another element of the framing namespace is refused",
			msg: "<reopen xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", cond: stream.CondNotWellFormed},
		{name: "a comment is refused as on TCP", msg: "<!-- x --><r xmlns='urn:xmpp:sm:3'/>", cond: stream.CondRestrictedXML},
		{name: "nesting beyond max_depth is refused as on TCP",
			msg: "<a><a><a><a><a><a><a><a><a></a></a></a></a></a></a></a></a></a>", cond: stream.CondPolicyViolation},
		{name: "an element beyond the byte limit is refused as on TCP",
			msg: "<message><body>" + strings.Repeat("x", 5000) + "</body></message>", cond: stream.CondPolicyViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newWSInbound(wsTestLimits)
			// A message before must leave nothing behind.
			if _, err := in.translate([]byte("<a/> ")); err != nil {
				t.Fatal(err)
			}
			got, err := in.translate([]byte(tc.msg))
			if tc.cond != "" {
				var se *stream.Error
				if !errors.As(err, &se) || se.Condition != tc.cond {
					t.Fatalf("translate = %q, %v; want stream error %s", got, err, tc.cond)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("translate = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// wsSplit runs writes through one splitter and returns the messages.
func wsSplit(t *testing.T, writes ...string) []string {
	t.Helper()
	o := newWSOutbound()
	var msgs []string
	for _, w := range writes {
		if err := o.split([]byte(w), func(m []byte) error { msgs = append(msgs, string(m)); return nil }); err != nil {
			t.Fatalf("split %q: %v", w, err)
		}
	}
	return msgs
}

const proxyHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='localhost' id='s1' xml:lang='en'>"

func TestProxyOutputBecomesOneStandaloneWebSocketMessagePerElement(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "the stream header becomes open (RFC 7395 3.4)",
			writes: []string{proxyHeader},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>"}},
		{name: "the stream close becomes close (RFC 7395 3.6)",
			writes: []string{proxyHeader, "</stream:stream>"},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", wsCloseMsg}},
		{name: "each element of one write is one message",
			writes: []string{proxyHeader, "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>"},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<r xmlns='urn:xmpp:sm:3'/>", "<a xmlns='urn:xmpp:sm:3' h='1'/>"}},
		{name: "a stanza without xmlns gets jabber:client (RFC 7395 3.3.3)",
			writes: []string{proxyHeader, "<message from='bob@localhost'><body>hi</body></message>"},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<message xmlns='jabber:client' from='bob@localhost'><body>hi</body></message>"}},
		{name: "stream:features gets the stream prefix declared",
			writes: []string{proxyHeader + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"}},
		{name: "a stream error is followed by close",
			writes: []string{proxyHeader, "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"},
			want: []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>",
				"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", wsCloseMsg}},
		{name: "a stanza that declares its namespace is kept byte for byte",
			writes: []string{proxyHeader, `<iq xmlns="jabber:client" type="result" id="x"/>`},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", `<iq xmlns="jabber:client" type="result" id="x"/>`}},
		{name: "an element cut between two writes is one message",
			writes: []string{proxyHeader, "<message><bo", "dy>hi</body></message>"},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<message xmlns='jabber:client'><body>hi</body></message>"}},
		{name: "whitespace keepalives are not sent",
			writes: []string{proxyHeader, " ", "\n<r xmlns='urn:xmpp:sm:3'/> "},
			want:   []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<r xmlns='urn:xmpp:sm:3'/>"}},
		{name: "the header of a restarted stream is open again",
			writes: []string{proxyHeader, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", proxyHeader + "<stream:features/>"},
			want: []string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
				"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>", "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := wsSplit(t, tc.writes...)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("messages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, m := range got {
				checkStandalone(t, m)
			}
		})
	}
}

// checkStandalone parses one message on its own, as a browser's
// DOMParser would, and checks that every element has a namespace.
func checkStandalone(t *testing.T, msg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(msg))
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("message %q does not parse on its own: %v", msg, err)
			}
			return
		}
		if se, ok := tok.(xml.StartElement); ok && (se.Name.Space == "" || se.Name.Space == "stream") {
			t.Fatalf("message %q: <%s> has no namespace on its own", msg, se.Name.Local)
		}
	}
}

func TestAStanzaSurvivesTheRoundTripThroughBothTranslations(t *testing.T) {
	stanza := "<message xmlns='jabber:client' to='bob@localhost' id='a&amp;b'><body>x &lt; y</body></message>"
	got, err := newWSInbound(wsTestLimits).translate([]byte(stanza))
	if err != nil {
		t.Fatal(err)
	}
	msgs := wsSplit(t, proxyHeader, string(got))
	if msgs[1] != stanza || !bytes.Equal(got, []byte(stanza)) {
		t.Fatalf("in %q, out %q; want %q both ways", got, msgs[1], stanza)
	}
}
