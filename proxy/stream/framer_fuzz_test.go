package stream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"testing"
)

// FuzzFramer feeds arbitrary bytes after a stream header. The framer must
// never panic, never return a unit over the byte cap, and every element it
// accepts must be well-formed XML to encoding/xml (the decoders that run
// after it may rely on that).
func FuzzFramer(f *testing.F) {
	for _, seed := range []string{
		"<message to='a@b'><body>hi &amp; bye</body></message>",
		"<iq id=\"a>b\" type='get'/> \n<presence/>",
		"<message><body><![CDATA[<a></b>]]]></body></message>",
		"<a><b></b ></a ></stream:stream>",
		"<message><!-- x --></message>",
		"<?pi x?><a/>",
		"<a b='<'/>",
		"<a><b></a></b>",
	} {
		f.Add([]byte(seed))
	}
	limits := Limits{MaxBytes: 512, MaxDepth: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFramer(bufio.NewReaderSize(bytes.NewReader(append([]byte(testHeader), data...)), 16), limits)
		for {
			u, err := fr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && AsError(err) == nil {
					t.Fatalf("error is neither EOF nor a stream error: %v", err)
				}
				return
			}
			if len(u.Raw) > limits.MaxBytes {
				t.Fatalf("unit of %d bytes passed a %d byte cap", len(u.Raw), limits.MaxBytes)
			}
			if u.Kind == UnitElement {
				assertWellFormed(t, u.Raw)
			}
		}
	})
}

// assertWellFormed decodes one element. Prefixes are declared on the
// stream header, so encoding/xml sees them as undeclared and maps them to
// themselves: that is fine. Entity references are the framer's blind spot
// by design (the relay never decodes them), so an unknown entity is
// tolerated here.
func assertWellFormed(t *testing.T, raw []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if depth != 0 {
				t.Fatalf("unbalanced element accepted: %q", raw)
			}
			return
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) && bytes.Contains([]byte(se.Msg), []byte("entity")) {
				return
			}
			t.Fatalf("framer accepted %q, encoding/xml says %v", raw, err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
}
