package rewrite

import (
	"bytes"
	"strings"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, tc := range leavingCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range enteringCases {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		"", "<message/>", "<message/>x", "<message to='a@b/c'><!-- c --></message>",
		"<message to='a@b/c' to='d'/>", "<a:message xmlns:a='jabber:client'/>",
	} {
		f.Add([]byte(s))
	}
}

// FuzzLeaving checks that Leaving never panics, accepts only well-formed
// input, keeps its output well-formed, adds exactly what the rules ask for
// and nothing else, and is idempotent.
func FuzzLeaving(f *testing.F) {
	addSeeds(f)
	f.Fuzz(checkLeaving)
}

func checkLeaving(t *testing.T, in []byte) {
	{
		orig := bytes.Clone(in)
		out, err := Leaving(in)
		if !bytes.Equal(in, orig) {
			t.Fatalf("Leaving modified its input")
		}
		if err != nil {
			return
		}
		if !wellFormed(in) {
			t.Fatalf("accepted input that is not well-formed: %q", in)
		}
		if !wellFormed(out) {
			t.Fatalf("output is not well-formed\n in: %q\nout: %q", in, out)
		}
		s, err := parse(in)
		if err != nil {
			t.Fatalf("parse after Leaving succeeded: %v", err)
		}
		o, err := parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\nout: %q", err, out)
		}
		if !s.message {
			if !bytes.Equal(in, out) {
				t.Fatalf("non-message changed\n in: %q\nout: %q", in, out)
			}
			return
		}
		if !o.message || !bytes.Equal(o.to, s.to) || !bytes.Equal(o.typ, s.typ) {
			t.Fatalf("message identity changed\n in: %q\nout: %q", in, out)
		}
		want := bit(kXMPP2)
		if isFullJID(s.to) {
			want |= bit(kPrivate) | bit(kNoCopy) | bit(kNoStore)
		}
		if o.has&want != want {
			t.Fatalf("missing marks: has %b, want %b\nout: %q", o.has, want, out)
		}
		if !s.selfClosing {
			// Everything of the input is kept; only elements were added
			// just before the end tag.
			if !bytes.HasPrefix(out, in[:s.closeStart]) || !bytes.HasSuffix(out, in[s.closeStart:]) {
				t.Fatalf("bytes not preserved\n in: %q\nout: %q", in, out)
			}
		}
		twice, err := Leaving(out)
		if err != nil {
			t.Fatalf("Leaving its own output: %v", err)
		}
		if !bytes.Equal(twice, out) {
			t.Fatalf("not idempotent\nonce:  %q\ntwice: %q", out, twice)
		}
	}
}

// FuzzEntering checks that Entering never panics, accepts only well-formed
// input, keeps its output well-formed and marked, and is idempotent.
func FuzzEntering(f *testing.F) {
	addSeeds(f)
	f.Fuzz(checkEntering)
}

func checkEntering(t *testing.T, in []byte) {
	{
		orig := bytes.Clone(in)
		out, route, err := Entering(in)
		if !bytes.Equal(in, orig) {
			t.Fatalf("Entering modified its input")
		}
		if err != nil {
			return
		}
		if !wellFormed(in) {
			t.Fatalf("accepted input that is not well-formed: %q", in)
		}
		if !wellFormed(out) {
			t.Fatalf("output is not well-formed\n in: %q\nout: %q", in, out)
		}
		s, _ := parse(in)
		o, err := parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\nout: %q", err, out)
		}
		if !s.message {
			if !bytes.Equal(in, out) || route != (Route{}) {
				t.Fatalf("non-message changed\n in: %q\nout: %q %+v", in, out, route)
			}
			return
		}
		if route.Scope == ScopeSession && !route.Transient {
			t.Fatalf("a single-session message is not transient: %q", in)
		}
		if !isFullJID(s.to) && !bytes.Equal(o.to, s.to) {
			t.Fatalf("a bare-JID to was rewritten: the proxy never locks onto a resource\n in: %q\nout: %q", in, out)
		}
		switch {
		case route.Marked2:
			if o.hasAny(removable) || !o.hasAny(bit(kXMPP2)) {
				t.Fatalf("2.0 message keeps a modifier or lost xmpp-2\nout: %q", out)
			}
		case !o.hasAny(bit(kXMPP1)):
			t.Fatalf("1.0 message not marked\nout: %q", out)
		}
		twice, route2, err := Entering(out)
		if err != nil {
			t.Fatalf("Entering its own output: %v", err)
		}
		if !bytes.Equal(twice, out) || route2 != route {
			t.Fatalf("not idempotent\nonce:  %q %+v\ntwice: %q %+v", out, route, twice, route2)
		}
	}
}

// FuzzScanAgreesWithDecode holds the scanner to its promise: whatever it
// accepts, encoding/xml accepts too, with the same shape.
func FuzzScanAgreesWithDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(checkScan)
}

func checkScan(t *testing.T, in []byte) {
	{
		fast, ok := scan(in)
		if !ok {
			return
		}
		ref, err := decode(in)
		if err != nil {
			t.Fatalf("scan accepted what decode refuses (%v): %q", err, in)
		}
		if d := diffStanza(fast, ref); d != "" {
			t.Fatalf("scan and decode disagree on %s: %q", d, in)
		}
	}
}

// FuzzGenerated runs the three checks on stanzas built from the fuzzer's
// bytes out of the pieces real traffic is made of, so that most inputs are
// well-formed and reach the rules, not only the error paths.
func FuzzGenerated(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x01\x02\x03\x04\x05\x06\x07", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, seed []byte) {
		in := generate(seed)
		checkScan(t, in)
		checkLeaving(t, in)
		checkEntering(t, in)
	})
}

// generate builds one stanza, choosing every piece with the next seed byte.
func generate(seed []byte) []byte {
	pick := func(choices ...string) string {
		if len(seed) == 0 {
			return choices[0]
		}
		c := choices[int(seed[0])%len(choices)]
		seed = seed[1:]
		return c
	}
	var b strings.Builder
	b.WriteString(pick("", " ", "\n", "\r\n\t"))
	root := pick("message", "message", "message", "c:message", "iq", "presence", "x:message", "message")
	b.WriteString("<" + root)
	attrs := []string{
		"to=Qalice@example.com/phoneQ", "to=Qalice@example.comQ", "to=QQ", "to=Qalice@example.com&#x2F;phoneQ",
		"to=Q/xQ", "to=Qa&amp;b@example.com/r/sQ", "type=QchatQ", "type=QnormalQ", "type=QgroupchatQ",
		"type=QheadlineQ", "type=QerrorQ", "type=QweirdQ", "xmlns=Qjabber:clientQ", "xmlns=Qurn:otherQ",
		"xmlns:c=Qjabber:clientQ", "xmlns:h=Qurn:xmpp:hintsQ", "xmlns:x=Qurn:xmpp:xmpp2:0Q", "id=Qa'b\"cQ",
		"xml:lang=QenQ", "from=Qbob@example.net/r\rQ",
	}
	for n := int(pick("0", "1", "2", "3", "4")[0] - '0'); n > 0; n-- {
		a := pick(attrs...)
		q := pick("'", "\"")
		a = strings.ReplaceAll(a, "Q", q)
		if q == "'" {
			a = strings.ReplaceAll(a, "a'b", "a&apos;b")
		} else {
			a = strings.ReplaceAll(a, "\"c", "&quot;c")
		}
		b.WriteString(pick(" ", "\n  ", "\t") + a + pick("", "", " "))
	}
	if pick("open", "open", "open", "self") == "self" {
		b.WriteString("/>")
		b.WriteString(pick("", "\n", "<a/>", "x"))
		return []byte(b.String())
	}
	b.WriteString(">")
	children := []string{
		"<body>hi</body>", "<body>caf\u00e9 &amp; &#x263A; ]] > \U0001F600</body>", "<subject/>",
		private, noCopy, noStore, noPerm, x2, x1, mucUser,
		"<h:no-copy/>", "<h:no-store></h:no-store>", "<x:xmpp-2/>", "<c:body>x</c:body>",
		"<n:private xmlns:n='urn:xmpp:carbons:2'/>", "<no-copy xmlns=''/>",
		"<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>" + private + noCopy + x2 + "<body>in</body></message></forwarded>",
		"<reactions xmlns='urn:xmpp:reactions:0' id='1'><reaction>+1</reaction></reactions>",
		"<store xmlns='urn:xmpp:hints'/>", "<x xmlns='jabber:x:oob'><url>http://e/</url></x>",
		"<a><b><c/></b></a>", "<body><![CDATA[<x>]]></body>", "<bödy/>", "<!-- c -->", "\n  ", "text",
		"<body>&nbsp;</body>", "</wrong>", "<body>a]]>b</body>", "<p a='1'b='2'/>",
	}
	for n := int(pick("0", "1", "2", "3", "4", "5", "6")[0] - '0'); n > 0; n-- {
		b.WriteString(pick(children...))
	}
	b.WriteString("</" + root + ">")
	b.WriteString(pick("", "", " \n", "<x/>"))
	return []byte(b.String())
}
