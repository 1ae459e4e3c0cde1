package stream

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

const testHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`

var testLimits = Limits{MaxBytes: 1024, MaxDepth: 8}

// frameAll reads units until EOF or an error and returns their kinds and bytes.
func frameAll(t *testing.T, r io.Reader, limits Limits) ([]Unit, error) {
	t.Helper()
	f := NewFramer(bufio.NewReaderSize(r, 16), limits)
	var units []Unit
	for {
		u, err := f.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return units, nil
			}
			return units, err
		}
		units = append(units, Unit{Kind: u.Kind, Raw: append([]byte(nil), u.Raw...)})
	}
}

func TestFramerSplitsTopLevelUnits(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
		kinds []UnitKind
	}{
		{
			name:  "stream header with XML declaration is one unit",
			input: testHeader,
			want:  []string{testHeader},
			kinds: []UnitKind{UnitStreamOpen},
		},
		{
			name:  "stanzas are split at their end tags",
			input: testHeader + `<message to='a@b'><body>hi &amp; bye</body></message><presence/>`,
			want:  []string{testHeader, `<message to='a@b'><body>hi &amp; bye</body></message>`, `<presence/>`},
			kinds: []UnitKind{UnitStreamOpen, UnitElement, UnitElement},
		},
		{
			name:  "whitespace keepalive between stanzas is its own unit",
			input: testHeader + " \n<r xmlns='urn:xmpp:sm:3'/>",
			want:  []string{testHeader, " \n", `<r xmlns='urn:xmpp:sm:3'/>`},
			kinds: []UnitKind{UnitStreamOpen, UnitWhitespace, UnitElement},
		},
		{
			name:  "attribute values may hold '>' and the other quote",
			input: testHeader + `<iq id="a>b'c" type='get'/>`,
			want:  []string{testHeader, `<iq id="a>b'c" type='get'/>`},
			kinds: []UnitKind{UnitStreamOpen, UnitElement},
		},
		{
			name:  "CDATA sections may hold markup",
			input: testHeader + `<message><body><![CDATA[<a></b>]]]></body></message>`,
			want:  []string{testHeader, `<message><body><![CDATA[<a></b>]]]></body></message>`},
			kinds: []UnitKind{UnitStreamOpen, UnitElement},
		},
		{
			name:  "stream close tag ends the stream",
			input: testHeader + `<presence/></stream:stream>`,
			want:  []string{testHeader, `<presence/>`, `</stream:stream>`},
			kinds: []UnitKind{UnitStreamOpen, UnitElement, UnitStreamClose},
		},
		{
			name:  "end tags may carry trailing whitespace",
			input: testHeader + `<a><b></b ></a >`,
			want:  []string{testHeader, `<a><b></b ></a >`},
			kinds: []UnitKind{UnitStreamOpen, UnitElement},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time proves no unit depends on chunk boundaries.
			units, err := frameAll(t, iotest.OneByteReader(strings.NewReader(tc.input)), testLimits)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			var got []string
			var kinds []UnitKind
			for _, u := range units {
				got = append(got, string(u.Raw))
				kinds = append(kinds, u.Kind)
			}
			// Whitespace may arrive split into several units when the reader
			// hands over one byte at a time; join neighbours to compare.
			got, kinds = joinWhitespace(got, kinds)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("units:\n got %q\nwant %q", got, tc.want)
			}
			for i := range kinds {
				if kinds[i] != tc.kinds[i] {
					t.Fatalf("unit %d kind = %d, want %d", i, kinds[i], tc.kinds[i])
				}
			}
		})
	}
}

func joinWhitespace(units []string, kinds []UnitKind) ([]string, []UnitKind) {
	var u []string
	var k []UnitKind
	for i := range units {
		if n := len(k); n > 0 && kinds[i] == UnitWhitespace && k[n-1] == UnitWhitespace {
			u[n-1] += units[i]
			continue
		}
		u = append(u, units[i])
		k = append(k, kinds[i])
	}
	return u, k
}

func TestFramerRejectsBadInput(t *testing.T) {
	tests := []struct {
		name  string
		input string
		limit Limits
		cond  string
	}{
		{"a stanza over the byte cap is a policy violation", testHeader + "<message><body>" + strings.Repeat("x", 2000) + "</body></message>", testLimits, CondPolicyViolation},
		{"an unterminated stanza over the byte cap fails before it ends", testHeader + "<message>" + strings.Repeat("x", 5000), testLimits, CondPolicyViolation},
		{"nesting deeper than the cap is a policy violation", testHeader + strings.Repeat("<a>", 9), testLimits, CondPolicyViolation},
		{"a comment is restricted XML", testHeader + "<message><!-- hi --></message>", testLimits, CondRestrictedXML},
		{"a processing instruction inside the stream is restricted XML", testHeader + "<?php echo 1; ?>", testLimits, CondRestrictedXML},
		{"a DOCTYPE is restricted XML", "<!DOCTYPE foo [<!ENTITY x 'y'>]>" + testHeader, testLimits, CondRestrictedXML},
		{"mismatched end tag is not well-formed", testHeader + "<message></iq>", testLimits, CondNotWellFormed},
		{"text between stanzas is not well-formed", testHeader + "hello<presence/>", testLimits, CondNotWellFormed},
		{"'<' inside an attribute value is not well-formed", testHeader + "<iq id='<'/>", testLimits, CondNotWellFormed},
		{"an attribute without a value is not well-formed", testHeader + "<iq id/>", testLimits, CondNotWellFormed},
		{"a control character is not well-formed", testHeader + "<message><body>a\x00b</body></message>", testLimits, CondNotWellFormed},
		{"U+FFFF is not an XML character", testHeader + "<message><body>\xef\xbf\xbf</body></message>", testLimits, CondNotWellFormed},
		{"invalid UTF-8 is an unsupported encoding", testHeader + "<message><body>\xff\xfe</body></message>", testLimits, CondUnsupportedEncoding},
		{"an empty stream header is not well-formed", "<stream:stream/>", testLimits, CondNotWellFormed},
		{"a stray close tag before the stream is not well-formed", "</stream:stream>", testLimits, CondNotWellFormed},
		{"a million nested elements fail at the depth cap", testHeader + strings.Repeat("<a>", 1_000_000), Limits{MaxBytes: 1 << 30, MaxDepth: 100}, CondPolicyViolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := frameAll(t, strings.NewReader(tc.input), tc.limit)
			se := AsError(err)
			if se == nil {
				t.Fatalf("error = %v, want stream error %s", err, tc.cond)
			}
			if se.Condition != tc.cond {
				t.Fatalf("condition = %s (%s), want %s", se.Condition, se.Text, tc.cond)
			}
		})
	}
}

func TestStreamErrorXML(t *testing.T) {
	got := string(NewError(CondPolicyViolation, "too <big>").AppendXML(nil))
	want := `<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>too &lt;big&gt;</text></stream:error>`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestFramerAllocations(t *testing.T) {
	stanza := "<message to='bob@localhost' type='chat' id='x1'><body>hello</body></message>"
	r := &repeatReader{data: []byte(stanza)}
	f := NewFramer(bufio.NewReader(r), Limits{MaxBytes: 1 << 16, MaxDepth: 16})
	f.inStream = true
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := f.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per stanza, want 0", allocs)
	}
}

func BenchmarkFramer(b *testing.B) {
	stanza := "<message to='bob@localhost' type='chat' id='x1'><body>hello there</body></message>"
	r := &repeatReader{data: []byte(stanza)}
	f := NewFramer(bufio.NewReader(r), Limits{MaxBytes: 1 << 16, MaxDepth: 16})
	f.inStream = true
	b.SetBytes(int64(len(stanza)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// repeatReader returns data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// chunkReader hands out its chunks one Read at a time.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func TestTryNextNeverWaitsAndResumesAPartialStanza(t *testing.T) {
	first := "<message id='1'><body>one</body></message>"
	second := "<message id='2'><body>two</body></message>"
	// The second stanza is split across two reads.
	r := &chunkReader{chunks: []string{testHeader + first + second[:10], second[10:]}}
	f := NewFramer(bufio.NewReaderSize(r, 4096), testLimits)
	if u, err := f.Next(); err != nil || u.Kind != UnitStreamOpen {
		t.Fatalf("header: %v %v", u.Kind, err)
	}
	u, ok, err := f.TryNext()
	if err != nil || !ok || string(u.Raw) != first {
		t.Fatalf("TryNext = %q %v %v, want the complete first stanza", u.Raw, ok, err)
	}
	if _, ok, err := f.TryNext(); ok || err != nil {
		t.Fatalf("TryNext on a partial stanza = %v %v, want not ok and no error", ok, err)
	}
	u, err = f.Next()
	if err != nil || string(u.Raw) != second {
		t.Fatalf("Next after a partial TryNext = %q %v, want %q", u.Raw, err, second)
	}
}

func TestFramerReleasesItsBufferOnlyWhenNothingIsPending(t *testing.T) {
	r := &chunkReader{chunks: []string{testHeader + "<presence/><presence", "/>"}}
	f := NewFramer(r, testLimits)
	for range 2 {
		if _, err := f.Next(); err != nil {
			t.Fatal(err)
		}
	}
	f.Release()
	if f.buf == nil {
		t.Fatal("Release dropped a partly read stanza")
	}
	if _, ok, _ := f.TryNext(); ok {
		t.Fatal("TryNext returned a stanza that is not complete")
	}
	f.Release()
	if f.buf == nil {
		t.Fatal("Release dropped the stanza TryNext is assembling")
	}
	if u, err := f.Next(); err != nil || string(u.Raw) != "<presence/>" {
		t.Fatalf("Next = %q %v", u.Raw, err)
	}
	f.Release()
	if f.buf != nil {
		t.Fatal("Release kept the buffer with nothing pending")
	}
}

func TestFramerResetKeepsWhatThePeerPipelined(t *testing.T) {
	// A client pipelines its new stream header right after its auth.
	r := &chunkReader{chunks: []string{testHeader + "<auth/>" + testHeader + "<iq/>"}}
	f := NewFramer(r, testLimits)
	for range 2 {
		if _, err := f.Next(); err != nil {
			t.Fatal(err)
		}
	}
	f.Reset(nil)
	if u, err := f.Next(); err != nil || u.Kind != UnitStreamOpen {
		t.Fatalf("after Reset: %v %q %v, want the pipelined stream header", u.Kind, u.Raw, err)
	}
	if u, err := f.Next(); err != nil || string(u.Raw) != "<iq/>" {
		t.Fatalf("after the header: %q %v", u.Raw, err)
	}
}

// timeoutReader fails its first read with a timeout, then reads from r.
type timeoutReader struct {
	r        io.Reader
	timedOut bool
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	if !t.timedOut {
		t.timedOut = true
		return 0, os.ErrDeadlineExceeded
	}
	return t.r.Read(p)
}

func TestFramerReportsATimeoutOnceAndReadsOnAfterIt(t *testing.T) {
	f := NewFramer(&timeoutReader{r: strings.NewReader(testHeader)}, testLimits)
	if _, err := f.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first Next = %v, want the timeout", err)
	}
	if u, err := f.Next(); err != nil || u.Kind != UnitStreamOpen {
		t.Fatalf("Next after the timeout = %v %v, want the stream header", u.Kind, err)
	}
}
