package harness

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// DocExample is one wire example of a Markdown document: a fenced ```xml
// block directly preceded by the line <!-- example: NAME -->. Client
// requests are sent through a running proxy and the proxy's answers are
// matched against what it sent (integration/protocol_doc_test.go), so a
// document that drifts from the code fails a test.
type DocExample struct {
	Name string
	// Line is the line of the opening fence, for messages.
	Line int
	// XML is the block's content.
	XML string
}

var exampleMarker = regexp.MustCompile(`^<!-- example: ([a-z0-9-]+) -->$`)

// ReadDocExamples returns the marked examples of a Markdown file, in
// order. An ```xml block without a marker, a marker not followed by one,
// an unclosed block or a name used twice is an error: every XML block of
// the document is an example a test checks.
func ReadDocExamples(path string) ([]DocExample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseDocExamples(f, path)
}

func parseDocExamples(r io.Reader, path string) ([]DocExample, error) {
	var (
		out     []DocExample
		pending string // the name of a marker waiting for its block
		cur     *DocExample
		body    strings.Builder
		seen    = map[string]int{}
		n       int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && trimmed == "```":
			cur.XML = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		case trimmed == "```xml":
			if pending == "" {
				return nil, fmt.Errorf("%s:%d: an xml block without a <!-- example: NAME --> line before it", path, n)
			}
			if first, dup := seen[pending]; dup {
				return nil, fmt.Errorf("%s:%d: example %q already used at line %d", path, n, pending, first)
			}
			seen[pending] = n
			cur = &DocExample{Name: pending, Line: n}
			body.Reset()
			pending = ""
		case pending != "":
			return nil, fmt.Errorf("%s:%d: example %q is not followed by an xml block", path, n, pending)
		default:
			if m := exampleMarker.FindStringSubmatch(trimmed); m != nil {
				pending = m[1]
			}
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: example %q is not closed", path, cur.Line, cur.Name)
	}
	if pending != "" {
		return nil, fmt.Errorf("%s: example %q at the end is not followed by an xml block", path, pending)
	}
	return out, sc.Err()
}

// Stream prefixes the examples and the proxy use without declaring them:
// a stanza or nonza is read as it appears inside a client stream.
const (
	docRootOpen  = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	docRootClose = "</stream:stream>"
	nsXMLPrefix  = "http://www.w3.org/XML/1998/namespace"
)

// WireNode is one element of an example or of what the proxy sent: its
// name, attributes and text, namespaces resolved.
type WireNode struct {
	Name     xml.Name
	Attrs    []xml.Attr
	Text     string
	Children []*WireNode
	// More: the example's "{more}" after this element stands for any
	// number of further siblings like it (a list of mechanisms).
	More bool
	// AnyContent: the example's text "{any}" stands for any text and any
	// children after those the example lists (server content the proxy
	// relays as it came).
	AnyContent bool
}

// Placeholders in examples. Anything else in braces names a value the test
// knows (an archive id, an SM id).
const (
	anyValue = "{any}"
	moreMark = "{more}"
)

// ParseWire parses a sequence of top-level elements (an example, or
// elements the proxy wrote) as they appear in a client stream. A leading
// stream header (<?xml ...?><stream:stream ...>) is parsed as an element.
func ParseWire(s string) ([]*WireNode, error) {
	s = strings.TrimSpace(s)
	doc := docRootOpen + s + docRootClose
	if strings.HasPrefix(s, "<?xml") || strings.HasPrefix(s, "<stream:stream") {
		// A stream header opens, and the document closes, the stream.
		_, rest, _ := strings.Cut(s, "?>")
		if !strings.HasPrefix(s, "<?xml") {
			rest = s
		}
		doc = strings.TrimSpace(rest) + docRootClose
	}
	d := xml.NewDecoder(strings.NewReader(doc))
	var (
		stack []*WireNode
		top   []*WireNode
		root  = true
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root {
				root = false
				if !strings.HasPrefix(s, "<?xml") && !strings.HasPrefix(s, "<stream:stream") {
					continue // the synthetic stream around the elements
				}
			}
			n := &WireNode{Name: tok.Name}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue // namespaces are compared resolved
				}
				if a.Name.Space == "xml" {
					a.Name.Space = nsXMLPrefix
				}
				n.Attrs = append(n.Attrs, a)
			}
			if len(stack) == 0 {
				top = append(top, n)
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) == 0 {
				continue
			}
			p, text := stack[len(stack)-1], string(tok)
			if strings.Contains(text, moreMark) && len(p.Children) > 0 {
				// "{more}" belongs to the child right before it.
				p.Children[len(p.Children)-1].More = true
				text = strings.ReplaceAll(text, moreMark, "")
			}
			p.Text += text
		}
	}
	for _, n := range top {
		n.normalise()
	}
	return top, nil
}

// normalise trims text and turns "{any}" standing for content into a
// flag.
func (n *WireNode) normalise() {
	for _, c := range n.Children {
		c.normalise()
	}
	n.Text = strings.TrimSpace(n.Text)
	if n.Text == anyValue {
		n.AnyContent, n.Text = true, ""
	}
}

// MatchWire reports how got differs from the example want: the same
// element names and namespaces in the same order, every attribute of the
// example present with a matching value (others may be added), the same
// text. In the example, "{any}" matches any value or text, and "{NAME}"
// the value vars gives NAME.
func MatchWire(want, got *WireNode, vars map[string]string) error {
	return matchNode(want, got, vars, want.Name.Local)
}

func matchNode(want, got *WireNode, vars map[string]string, path string) error {
	if want.Name != got.Name {
		return fmt.Errorf("%s: want <%s xmlns='%s'>, got <%s xmlns='%s'>", path, want.Name.Local, want.Name.Space, got.Name.Local, got.Name.Space)
	}
	for _, wa := range want.Attrs {
		v, ok := attrOf(got, wa.Name)
		if !ok {
			return fmt.Errorf("%s: attribute %s missing", path, wa.Name.Local)
		}
		if err := matchValue(wa.Value, v, vars); err != nil {
			return fmt.Errorf("%s/@%s: %w", path, wa.Name.Local, err)
		}
	}
	if want.AnyContent {
		if len(got.Children) < len(want.Children) {
			return fmt.Errorf("%s: want at least %d children, got %d", path, len(want.Children), len(got.Children))
		}
	} else if err := matchValue(want.Text, strings.TrimSpace(got.Text), vars); err != nil {
		return fmt.Errorf("%s text: %w", path, err)
	}
	return matchChildren(want, got, vars, path)
}

func matchChildren(want, got *WireNode, vars map[string]string, path string) error {
	i := 0
	for _, w := range want.Children {
		if i >= len(got.Children) {
			return fmt.Errorf("%s: child <%s> missing", path, w.Name.Local)
		}
		if err := matchNode(w, got.Children[i], vars, path+"/"+w.Name.Local); err != nil {
			return err
		}
		i++
		for w.More && i < len(got.Children) && got.Children[i].Name == w.Name {
			if err := matchNode(w, got.Children[i], vars, path+"/"+w.Name.Local); err != nil {
				return err
			}
			i++
		}
	}
	if i < len(got.Children) && !want.AnyContent {
		extra := got.Children[i].Name
		return fmt.Errorf("%s: unexpected child <%s xmlns='%s'>", path, extra.Local, extra.Space)
	}
	return nil
}

func attrOf(n *WireNode, name xml.Name) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

var placeholder = regexp.MustCompile(`\{[a-z0-9-]+\}`)

// matchValue matches a value or text against the example's, which may
// hold placeholders.
func matchValue(want, got string, vars map[string]string) error {
	var re strings.Builder
	re.WriteString(`(?s)^`)
	last := 0
	for _, loc := range placeholder.FindAllStringIndex(want, -1) {
		re.WriteString(regexp.QuoteMeta(want[last:loc[0]]))
		name := want[loc[0]:loc[1]]
		switch v, ok := vars[strings.Trim(name, "{}")]; {
		case name == anyValue:
			re.WriteString(`.*`)
		case ok:
			re.WriteString(regexp.QuoteMeta(v))
		default:
			return fmt.Errorf("placeholder %s has no value", name)
		}
		last = loc[1]
	}
	re.WriteString(regexp.QuoteMeta(want[last:]) + `$`)
	if !regexp.MustCompile(re.String()).MatchString(got) {
		return fmt.Errorf("want %q, got %q", want, got)
	}
	return nil
}

// FillExample replaces each "{NAME}" of a client request example with the
// value vars gives it; a placeholder without a value is an error.
func FillExample(example string, vars map[string]string) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(example, func(p string) string {
		v, ok := vars[strings.Trim(p, "{}")]
		if !ok {
			missing = append(missing, p)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for %s", strings.Join(missing, ", "))
	}
	return compactXML(out), nil
}

// compactXML drops the indentation between elements that examples carry
// for reading, so what is sent is what a client would send.
func compactXML(s string) string {
	var b bytes.Buffer
	for _, line := range strings.Split(s, "\n") {
		b.WriteString(strings.TrimSpace(line))
	}
	return b.String()
}
