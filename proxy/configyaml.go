package proxy

import (
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The configuration is decoded by walking goccy/go-yaml's syntax tree
// rather than with its decoder: the decoder stops at the first mismatch,
// names Go types ("cannot unmarshal string into Go struct field
// Config.Limits of type int") and gives no line for a value that is
// valid YAML but out of range. The walk knows every key's line, so each
// problem names the key the operator must edit and where it is.

// ParseConfig decodes YAML over the defaults. An empty or comment-only
// document means all defaults. The error, a *ConfigError, lists every
// unknown key and every value of the wrong type; the returned Config keeps
// the default for each of them, and remembers them, so that Validate and
// Check do not report the same key again.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	cfg.src = &configSource{origins: map[string]string{}, broken: map[string]bool{}}
	d := &yamlDecoder{src: cfg.src}
	d.document(data, &cfg)
	if len(d.problems) > 0 {
		return cfg, &ConfigError{Problems: d.problems}
	}
	return cfg, nil
}

// configSource records where each key was set, so that a problem with it
// names the line (or flag) to change, and which keys the file got wrong,
// so that a wrong value is reported once, not again by every check that
// would then see the default in its place.
type configSource struct {
	origins map[string]string // key -> "line 3" or "flag --listen"
	broken  map[string]bool
	// fatal: the file could not be parsed at all; nothing in it counts,
	// so the checks would only report what is missing because of that.
	fatal bool
}

type yamlDecoder struct {
	src      *configSource
	anchors  map[string]ast.Node
	problems []ConfigProblem
}

func (d *yamlDecoder) bad(key string, line int, format string, args ...any) {
	d.problems = append(d.problems, ConfigProblem{Key: key, Where: lineOf(line), Msg: fmt.Sprintf(format, args...)})
	if key != "" {
		d.src.broken[key] = true
	}
}

func lineOf(line int) string {
	if line <= 0 {
		return ""
	}
	return "line " + strconv.Itoa(line)
}

func (d *yamlDecoder) document(data []byte, cfg *Config) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		// A syntax error: goccy's message with the offending line shown.
		d.problems = append(d.problems, ConfigProblem{Msg: yaml.FormatError(err, false, true)})
		d.src.fatal = true
		return
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return // empty or only comments: all defaults
	}
	if len(docs) > 1 {
		d.bad("", docs[1].Body.GetToken().Position.Line, "a second YAML document (after ---); put every key in one")
		d.src.fatal = true
		return
	}
	d.anchors = map[string]ast.Node{}
	ast.Walk(anchorCollector(d.anchors), docs[0].Body)
	d.decode(docs[0].Body, reflect.ValueOf(cfg).Elem(), "", 0)
}

// anchorCollector records every &anchor, so that *alias values resolve.
type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.String()] = an.Value
	}
	return a
}

// resolve looks through tags, anchors and aliases to the value itself.
func (d *yamlDecoder) resolve(n ast.Node) ast.Node {
	for range 16 { // an alias cycle must not loop forever
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.anchors[v.Value.String()]
			if !ok {
				return v
			}
			n = target
		default:
			return n
		}
	}
	return n
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	levelType    = reflect.TypeFor[slog.Level]()
)

// decode sets v from n. key is the YAML path ("limits.max_depth") and line
// the key's line, which every problem names.
func (d *yamlDecoder) decode(n ast.Node, v reflect.Value, key string, line int) {
	n = d.resolve(n)
	if line == 0 && n != nil {
		line = n.GetToken().Position.Line
	}
	if _, isNull := n.(*ast.NullNode); n == nil || isNull {
		d.null(v, key, line)
		return
	}
	switch {
	case v.Type() == durationType:
		d.duration(n, v, key, line)
	case v.Type() == levelType:
		d.level(n, v, key, line)
	case v.Kind() == reflect.Struct:
		d.mapping(n, v, key, line)
	case v.Kind() == reflect.String:
		if s, ok := scalarText(n); ok {
			v.SetString(s)
		} else {
			d.bad(key, line, "%s is not a string", describe(n))
		}
	case v.Kind() == reflect.Bool:
		if b, ok := n.(*ast.BoolNode); ok {
			v.SetBool(b.Value)
		} else {
			d.bad(key, line, "%s is not true or false", describe(n))
		}
	case v.Kind() == reflect.Int:
		d.integer(n, v, key, line)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		d.stringList(n, v, key, line)
	default:
		panic("proxy: no YAML decoding for config field " + key + " of type " + v.Type().String())
	}
}

// null is a key written without a value. For a mapping (limits:, with
// every key below commented out) it keeps the defaults; for text and lists
// it is the empty value, which turns an optional address off; for numbers,
// switches and durations there is no empty value, so it is a mistake.
func (d *yamlDecoder) null(v reflect.Value, key string, line int) {
	switch {
	case v.Type() == levelType: // slog.LevelInfo is the zero Level
		v.SetZero()
	case v.Type() == durationType || v.Kind() == reflect.Int || v.Kind() == reflect.Bool:
		d.bad(key, line, "has no value")
	case v.Kind() == reflect.String || v.Kind() == reflect.Slice:
		v.SetZero()
	}
}

func (d *yamlDecoder) mapping(n ast.Node, v reflect.Value, key string, line int) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if key == "" {
			d.bad("", line, "the file must be a mapping of keys (key: value), not %s", describe(n))
			d.src.fatal = true
			return
		}
		d.bad(key, line, "%s is not a mapping; put its keys on the lines below it, indented", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	for _, mv := range m.Values {
		name := mv.Key.GetToken().Value
		kline := mv.Key.GetToken().Position.Line
		path := joinKey(key, name)
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			d.bad(path, kline, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		idx, ok := fields[name]
		if !ok {
			d.bad(path, kline, "unknown key%s", suggest(name, fields, key))
			continue
		}
		d.src.origins[path] = lineOf(kline)
		d.decode(mv.Value, v.Field(idx), path, kline)
	}
}

func (d *yamlDecoder) integer(n ast.Node, v reflect.Value, key string, line int) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.bad(key, line, "%s is not a whole number", describe(n))
		return
	}
	var i int64
	switch x := in.Value.(type) {
	case int64:
		i = x
	case uint64:
		if x > math.MaxInt64 {
			d.bad(key, line, "%s is too large", in.Token.Value)
			return
		}
		i = int64(x)
	}
	v.SetInt(i)
}

// duration reads a timeout with the YAML library's own time.Duration
// decoding ("30s", "5m"); 0 needs no unit. What it refuses is described
// in the file's terms: a number without a unit, or not a duration.
func (d *yamlDecoder) duration(n ast.Node, v reflect.Value, key string, line int) {
	var dur time.Duration
	if err := yaml.NodeToValue(n, &dur); err == nil {
		v.SetInt(int64(dur))
		return
	}
	s, _ := scalarText(n)
	switch _, numErr := strconv.ParseFloat(s, 64); {
	case s == "0":
		v.SetInt(0)
	case numErr == nil:
		d.bad(key, line, "%s has no unit; write it like %ss or %sm", describe(n), s, s)
	default:
		d.bad(key, line, "%s is not a duration (like 30s, 5m or 1h)", describe(n))
	}
}

// level reads a log level with slog.Level's own text decoding, which
// takes debug, info, warn and error in any case (and offsets such as
// debug-4); empty text, like no value, is the default, info.
func (d *yamlDecoder) level(n ast.Node, v reflect.Value, key string, line int) {
	s, ok := scalarText(n)
	var lvl slog.Level
	if ok && s != "" {
		ok = lvl.UnmarshalText([]byte(s)) == nil
	}
	if !ok {
		d.bad(key, line, "%s is not one of debug, info, warn, error", describe(n))
		return
	}
	v.Set(reflect.ValueOf(lvl))
}

func (d *yamlDecoder) stringList(n ast.Node, v reflect.Value, key string, line int) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		if s, scalar := scalarText(n); scalar {
			d.bad(key, line, "%q is not a list; write [%s], or one \"- %s\" per line below", s, s, s)
		} else {
			d.bad(key, line, "%s is not a list", describe(n))
		}
		return
	}
	out := make([]string, 0, len(seq.Values))
	for i, item := range seq.Values {
		item = d.resolve(item)
		iline := item.GetToken().Position.Line
		s, ok := scalarText(item)
		if !ok {
			d.bad(key, iline, "item %d: %s is not a string", i+1, describe(item))
			return
		}
		d.src.origins[fmt.Sprintf("%s[%d]", key, i)] = lineOf(iline)
		out = append(out, s)
	}
	v.Set(reflect.ValueOf(out))
}

// scalarText returns a scalar's text as written (unquoted). Numbers and
// booleans count as text where text is expected: "secret: 1234" means the
// string 1234.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// describe names a value the way the file shows it.
func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an alias to no anchor"
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(n)
		return strconv.Quote(s)
	}
	if s, ok := scalarText(n); ok {
		return s
	}
	return n.Type().String()
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// yamlFields maps a struct's YAML keys to its field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		m[name] = i
	}
	return m
}

// suggest names the known key an unknown one is most likely a typo of.
func suggest(name string, fields map[string]int, parent string) string {
	best, bestDist := "", 3 // more than two edits away is not a typo
	for k := range fields {
		if dist := editDistance(name, k); dist < bestDist || dist == bestDist && k < best {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + joinKey(parent, best) + "?)"
}

// editDistance is the Levenshtein distance, with a transposition counted
// as one edit ("drian" is one edit from "drain").
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
