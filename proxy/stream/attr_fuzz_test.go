package stream

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzAttr holds the attribute reads routing takes (ElementName, AttrBytes,
// HasAttr, AttrEqualFold) to encoding/xml: for every input whose start tag
// encoding/xml accepts, each gives what encoding/xml reports for the
// element, unescaped, and finds no attribute encoding/xml does not report.
// rewrite's FuzzAttr holds the scanner underneath to the same oracle
// attribute by attribute; this one covers the proxy's side of it.
func FuzzAttr(f *testing.F) {
	for _, s := range []string{
		`<message id="x to='bob@localhost/gone'" to='bob@localhost/sn' type='chat'><body>hi</body></message>`,
		`<message id="x to='bob@localhost/sn'" to='bob@localhost/gone'/>`,
		`<message id='a>b' to='bob@localhost/gone'/>`,
		`<presence id="type='unavailable'"><show>away</show></presence>`,
		`<a data="x xmlns='urn:xmpp:sm:3'" h='1'/>`,
		`<a xmlns:sm='urn:xmpp:sm:3' xmlns='urn:xmpp:sm&#58;3' h='1&#48;'/>`,
		`<message xml:lang='en' lang='fr' to='Alice@LocalHost'/>`,
		`<message id='a&amp;b&lt;c&gt;d&apos;e&quot;f' from="it's"/>`,
		"<message to='bob&#64;localhost&#x2F;sn'\r\nid='a\r\nb'/>",
		`<message to='a' to='b'/>`,
		`<message id='&bogus;' to='c'/>`,
		`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		name, xmlns := ElementName(in)
		probes := [...]string{"to", "id", "type", "from", "h", "xmlns", "lang", "xml:lang"}
		var got [len(probes)][]byte
		var has [len(probes)]bool
		for i, p := range probes {
			got[i], has[i] = AttrBytes(in, p), HasAttr(in, p)
		}

		d := xml.NewDecoder(bytes.NewReader(in))
		tok, err := d.RawToken()
		if cd, ok := tok.(xml.CharData); err == nil && ok && len(bytes.Trim(cd, " \t\r\n")) == 0 {
			tok, err = d.RawToken()
		}
		start, ok := tok.(xml.StartElement)
		if err != nil || !ok {
			return // not a start tag to encoding/xml: nothing to agree on
		}
		want := func(qname string) (string, bool) {
			for _, a := range start.Attr {
				if a.Name.Space == "" && a.Name.Local == qname || a.Name.Space+":"+a.Name.Local == qname {
					return a.Value, true // the first counts
				}
			}
			return "", false
		}
		if q := qualifiedName(start.Name); string(name) != q {
			t.Fatalf("element name %q, encoding/xml says %q: %q", name, q, in)
		}
		if w, ok := want("xmlns"); string(xmlns) != w || ok != (xmlns != nil) {
			t.Fatalf("xmlns %q, encoding/xml says %q (%v): %q", xmlns, w, ok, in)
		}
		for i, p := range probes {
			w, ok := want(p)
			if has[i] != ok || string(got[i]) != w {
				t.Fatalf("%s: %q (%v), encoding/xml says %q (%v): %q", p, got[i], has[i], w, ok, in)
			}
			for _, s := range []string{w, strings.ToUpper(w), w + "/x"} {
				if AttrEqualFold(in, p, s) != (ok && strings.EqualFold(w, s)) {
					t.Fatalf("attrEqualFold(%s, %q) disagrees with encoding/xml's %q: %q", p, s, w, in)
				}
			}
		}
	})
}

// qualifiedName puts back together the name encoding/xml split at its
// colon.
func qualifiedName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
