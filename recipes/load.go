package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the recipe file at path (or, when no such file exists, the
// recipe of that name shipped in the binary: see Open), applies the
// command-line overrides ("key.path=value", see Apply) and validates the
// result. Every mistake is returned as an *Error naming the file, line and
// key path.
func Load(path string, overrides ...string) (*Recipe, error) {
	name, data, err := Open(path)
	if err != nil {
		return nil, err
	}
	return Parse(name, data, overrides...)
}

// Parse parses recipe YAML read from name (used in error messages), applies
// the overrides and validates the result.
//
// The YAML is checked key by key against the schema first (unknown keys,
// duplicate keys, wrong types, with their lines), then decoded with viper
// onto Default, so a key left out keeps its default.
func Parse(name string, data []byte, overrides ...string) (*Recipe, error) {
	r := Default()
	r.source = name
	r.origins = map[string]string{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	nulls := map[string]bool{}
	if len(doc.Content) > 0 && !(doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
		c := &checker{where: func(n *yaml.Node) string { return fmt.Sprintf("%s:%d", name, n.Line) }, origins: r.origins, nulls: nulls}
		if err := c.check(doc.Content[0], recipeType, ""); err != nil {
			return nil, err
		}
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := v.UnmarshalExact(&r, decoderOptions); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	r.fillDefaults(strings.TrimSuffix(filepath.Base(name), filepath.Ext(name)), nulls)
	if err := r.Apply(overrides); err != nil {
		return nil, err
	}
	return &r, nil
}

// decoderOptions configures the mapstructure decoding of checked YAML
// values: numbers may fill string fields (logit_scale: 100), nothing else
// is converted, and a key with no field is an error.
func decoderOptions(dc *mapstructure.DecoderConfig) {
	dc.DecodeHook = nil
	dc.WeaklyTypedInput = true
	dc.ErrorUnused = true
}

// yamlLine finds "line N" in yaml.v3's messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a YAML syntax error into one line naming file and line.
func yamlError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return &Error{Where: name + ":" + m[1], Msg: "invalid YAML: " + msg[len(m[0]):]}
	}
	msg = strings.ReplaceAll(strings.TrimPrefix(msg, "yaml: "), "\n", "; ")
	return &Error{Where: name, Msg: "invalid YAML: " + msg}
}

// fillDefaults sets the defaults that depend on what the file gave: the
// name, list elements' defaults, and SmoothQuant's alpha. nulls holds the
// keys the file wrote as null.
func (r *Recipe) fillDefaults(base string, nulls map[string]bool) {
	if _, given := r.origins["name"]; !given {
		r.Name = base
	}
	r.fillListDefaults()
	if _, given := r.origins["smoothquant"]; given && !nulls["smoothquant"] && r.SmoothQuant == nil {
		r.SmoothQuant = &SmoothQuant{}
	}
	if r.SmoothQuant != nil {
		if _, given := r.origins["smoothquant.alpha"]; !given {
			r.SmoothQuant.Alpha = 0.5
		}
	}
}

// fillListDefaults sets the defaults of list elements whose keys neither
// the file nor a --set gave (each eval.ood entry's image_column).
func (r *Recipe) fillListDefaults() {
	for i := range r.Eval.OOD {
		if _, given := r.origins[fmt.Sprintf("eval.ood[%d].image_column", i)]; !given {
			r.Eval.OOD[i].ImageColumn = "image"
		}
	}
}

// Source returns where the recipe was read from: a file path, or
// "<embedded>/NAME.yaml" for a recipe shipped in the binary.
func (r *Recipe) Source() string { return r.source }

// Apply applies command-line overrides, each "key.path=value" with a dotted
// key path of the schema (e.g. "train.epochs=2", "model.source=DIR",
// "quantization.default.weights.bits=4") and a YAML value
// ("quantization.targets=[\"re:.*fc1$\"]"). A mapping value patches a
// section (only its keys change); any other value replaces the field; null
// unsets an optional field. List elements are replaced as whole lists.
// The recipe is validated again afterwards, and an error names the
// override it comes from.
func (r *Recipe) Apply(overrides []string) error {
	if r.origins == nil {
		r.origins = map[string]string{}
	}
	for _, o := range overrides {
		if err := r.applyOne(o); err != nil {
			return err
		}
	}
	r.fillListDefaults()
	for i := range r.Quantization.Overrides {
		o := &r.Quantization.Overrides[i]
		if o.Weights == nil {
			o.Weights = SchemePatch{}
		}
		if o.Activations == nil {
			o.Activations = SchemePatch{}
		}
	}
	return r.validate()
}

// applyOne applies one "key=value" override.
func (r *Recipe) applyOne(o string) error {
	where := "--set " + o
	key, value, ok := strings.Cut(o, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return &Error{Where: where, Msg: "expected key.path=value"}
	}
	// Find the field's type, then check the value, before changing r.
	t := recipeType
	path := ""
	var index []int
	for _, seg := range strings.Split(key, ".") {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == logitScaleType {
			return &Error{Where: where, Key: path, Msg: fmt.Sprintf("%s has no keys: set it whole", expected(t))}
		}
		path = joinKey(path, seg)
		f, found := lookupField(t, seg)
		if !found {
			return &Error{Where: where, Key: path, Msg: fmt.Sprintf("unknown key (known keys: %s)", keysOf(t))}
		}
		index = append(index, f.index)
		t = t.Field(f.index).Type
	}
	node, err := parseValue(value)
	if err != nil {
		return &Error{Where: where, Key: key, Msg: fmt.Sprintf("invalid YAML value: %v", err)}
	}
	c := &checker{where: func(*yaml.Node) string { return where }, origins: map[string]string{}, nulls: map[string]bool{}}
	if err := c.check(node, t, key); err != nil {
		return err
	}
	// Reach the field, allocating optional sections on the way.
	v := reflect.ValueOf(r).Elem()
	for _, i := range index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	var raw any
	if err := node.Decode(&raw); err != nil {
		return &Error{Where: where, Key: key, Msg: err.Error()}
	}
	if raw == nil || node.Kind != yaml.MappingNode {
		v.Set(reflect.Zero(v.Type()))
	}
	if raw != nil {
		if err := decodeInto(raw, v); err != nil {
			return &Error{Where: where, Key: key, Msg: err.Error()}
		}
	}
	// The override now owns the key and everything under it.
	for k := range r.origins {
		if k == key || strings.HasPrefix(k, key+".") || strings.HasPrefix(k, key+"[") {
			delete(r.origins, k)
		}
	}
	for k := range c.origins {
		r.origins[k] = where
	}
	for p := key; p != ""; p = parentKey(p) {
		if _, ok := r.origins[p]; !ok {
			r.origins[p] = where
		}
	}
	if strings.HasPrefix(key, "smoothquant") && r.SmoothQuant != nil && r.origins["smoothquant.alpha"] == "" {
		r.SmoothQuant.Alpha = 0.5
	}
	return nil
}

// parentKey drops the last segment of a key path.
func parentKey(k string) string {
	if i := strings.LastIndexAny(k, ".["); i >= 0 {
		return k[:i]
	}
	return ""
}

// parseValue parses an override value as a YAML node; an empty value is
// the empty string.
func parseValue(value string) (*yaml.Node, error) {
	if strings.TrimSpace(value) == "" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return doc.Content[0], nil
}

// decodeInto decodes a plain YAML value into the field v.
func decodeInto(raw any, v reflect.Value) error {
	dc := &mapstructure.DecoderConfig{Result: v.Addr().Interface()}
	decoderOptions(dc)
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return err
	}
	return dec.Decode(raw)
}

// where returns where the value at key path key was written: the nearest
// enclosing key the file or an override gave, or the recipe's source for a
// default.
func (r *Recipe) where(key string) string {
	for k := key; k != ""; k = parentKey(k) {
		if w, ok := r.origins[k]; ok {
			return w
		}
	}
	return r.source
}

// errorf builds an *Error for key path key.
func (r *Recipe) errorf(key, format string, args ...any) error {
	return &Error{Where: r.where(key), Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Given reports whether the recipe file or an override set the key path
// (e.g. "train.epochs"), as opposed to leaving the default.
func (r *Recipe) Given(key string) bool {
	_, ok := r.origins[key]
	return ok
}
