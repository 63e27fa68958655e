package recipes

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/qatclip/qatclip/quantizers"
	"go.yaml.in/yaml/v3"
)

// Error is a recipe mistake: where it was written, which key, and what is
// wrong with the value. It prints as one line,
// "recipes/w4a8.yaml:12: quantization.default.weights.bits: 9 is outside 2-8".
type Error struct {
	// Where is "file:line", "file" (a default or a value with no line), or
	// "--set key=value" (a command-line override).
	Where string
	// Key is the key path, e.g. "quantization.overrides[1].weights.bits";
	// empty for errors about the whole file.
	Key string
	// Msg says what is wrong, quoting the value.
	Msg string
}

// Error formats the error as one line.
func (e *Error) Error() string {
	s := e.Where + ": " + e.Msg
	if e.Key != "" {
		s = e.Where + ": " + e.Key + ": " + e.Msg
	}
	// Keys and values are quoted from the file, which may put line breaks
	// in them ("a\nb": 1, or !!int "1\n2"); escape those so the message
	// stays on one line (caught by FuzzParse; regression seeds in
	// testdata/fuzz/FuzzParse).
	return oneLine.Replace(s)
}

// oneLine escapes line breaks.
var oneLine = strings.NewReplacer("\n", `\n`, "\r", `\r`)

var (
	schemePatchType = reflect.TypeFor[SchemePatch]()
	logitScaleType  = reflect.TypeFor[LogitScale]()
	configType      = reflect.TypeFor[quantizers.Config]()
	recipeType      = reflect.TypeFor[Recipe]()
)

// field is one YAML-visible struct field.
type field struct {
	key   string
	index int
}

// fieldsOf lists the fields of struct type t that carry a mapstructure tag,
// in declaration order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		fs = append(fs, field{key: tag, index: i})
	}
	return fs
}

// keysOf returns the YAML keys of struct type t, comma separated.
func keysOf(t reflect.Type) string {
	var ks []string
	for _, f := range fieldsOf(t) {
		ks = append(ks, f.key)
	}
	return strings.Join(ks, ", ")
}

// lookupField returns the field of struct type t with YAML key key.
func lookupField(t reflect.Type, key string) (field, bool) {
	for _, f := range fieldsOf(t) {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// checker validates a YAML node tree against the schema types: unknown
// keys, duplicate keys and wrong types, each reported with its line.
type checker struct {
	// where formats the location of a node.
	where func(n *yaml.Node) string
	// origins records where each key path was written.
	origins map[string]string
	// nulls records the key paths written as null.
	nulls map[string]bool
}

// joinKey appends key to the key path prefix.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// describeNode names a YAML value for error messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// check validates n against type t at key path key.
func (c *checker) check(n *yaml.Node, t reflect.Type, key string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if key != "" {
		c.origins[key] = c.where(n)
	}
	fail := func(format string, args ...any) error {
		return &Error{Where: c.where(n), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if t.Kind() == reflect.Pointer {
			c.nulls[key] = true
			return nil
		}
		return fail("expected %s, got null", expected(t))
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == schemePatchType:
		return c.check(n, configType, key)
	case t == logitScaleType:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
			return fail("expected \"model\" or a number, got %s", describeNode(n))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fail("expected a mapping with keys %s, got %s", keysOf(t), describeNode(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := joinKey(key, k.Value)
			if k.Kind != yaml.ScalarNode {
				return &Error{Where: c.where(k), Key: key, Msg: "keys must be plain names"}
			}
			if seen[k.Value] {
				return &Error{Where: c.where(k), Key: sub, Msg: "key given twice"}
			}
			seen[k.Value] = true
			f, ok := lookupField(t, k.Value)
			if !ok {
				return &Error{Where: c.where(k), Key: sub, Msg: fmt.Sprintf("unknown key (known keys: %s)", keysOf(t))}
			}
			c.origins[sub] = c.where(k)
			if err := c.check(v, t.Field(f.index).Type, sub); err != nil {
				return err
			}
			c.origins[sub] = c.where(k)
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fail("expected %s, got %s", expected(t), describeNode(n))
		}
		for i, e := range n.Content {
			if err := c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fail("expected %s, got %s", expected(t), describeNode(n))
	}
	ok := false
	switch t.Kind() {
	case reflect.String:
		ok = n.Tag == "!!str"
	case reflect.Bool:
		ok = n.Tag == "!!bool"
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Tag == "!!int" {
			_, err := strconv.ParseInt(n.Value, 0, 64)
			ok = err == nil
		} else if n.Tag == "!!float" {
			f, err := strconv.ParseFloat(n.Value, 64)
			ok = err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53
		}
	case reflect.Float64, reflect.Float32:
		ok = n.Tag == "!!int" || n.Tag == "!!float"
	default:
		return fail("internal error: no rule for type %s", t)
	}
	if !ok {
		return fail("expected %s, got %s", expected(t), describeNode(n))
	}
	return nil
}

// expected names what a value of type t looks like in YAML.
func expected(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		return expected(t.Elem()) + " or null"
	}
	switch {
	case t == schemePatchType:
		return "a mapping"
	case t == logitScaleType:
		return "\"model\" or a number"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(expected(t.Elem()))
	case reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// plural turns "a string" into "strings" for list descriptions.
func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "an "), "a ")
	if strings.HasSuffix(s, "mapping") || strings.HasSuffix(s, "string") || strings.HasSuffix(s, "number") || strings.HasSuffix(s, "integer") {
		return s + "s"
	}
	return s
}

// keyPaths lists every key path of schema type t (list elements as "[]"),
// sorted; docs tests use it to check docs/RECIPES.md lists every key.
func keyPaths(t reflect.Type, prefix string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch {
	case t == schemePatchType:
		return keyPaths(configType, prefix)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return keyPaths(t.Elem(), prefix+"[]")
	case t.Kind() != reflect.Struct || t == logitScaleType:
		return nil
	}
	for _, f := range fieldsOf(t) {
		k := joinKey(prefix, f.key)
		out = append(out, k)
		out = append(out, keyPaths(t.Field(f.index).Type, k)...)
	}
	sort.Strings(out)
	return out
}
