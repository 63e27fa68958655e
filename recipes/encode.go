package recipes

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Marshal writes the recipe as YAML with every key, defaults included, in
// schema order, so a run folder can keep the fully resolved recipe; Parse
// reads it back to an equal recipe.
func (r *Recipe) Marshal() ([]byte, error) {
	n, err := encodeNode(reflect.ValueOf(*r))
	if err != nil {
		return nil, fmt.Errorf("marshal recipe %s: %w", r.Name, err)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("marshal recipe %s: %w", r.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal recipe %s: %w", r.Name, err)
	}
	return b.Bytes(), nil
}

// encodeNode builds the YAML node of a schema value.
func encodeNode(v reflect.Value) (*yaml.Node, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == schemePatchType:
		return encodePatch(v.Interface().(SchemePatch))
	case v.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(v.Type()) {
			val, err := encodeNode(v.Field(f.index))
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.key}, val)
		}
		return m, nil
	case v.Kind() == reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{}}
		flow := true
		for i := range v.Len() {
			e, err := encodeNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			flow = flow && e.Kind == yaml.ScalarNode
			s.Content = append(s.Content, e)
		}
		if flow {
			s.Style = yaml.FlowStyle
		}
		return s, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return nil, err
	}
	return n, nil
}

// encodePatch writes a SchemePatch with its keys in quantizers.Config order.
func encodePatch(p SchemePatch) (*yaml.Node, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	var order []string
	for _, f := range fieldsOf(configType) {
		order = append(order, f.key)
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	for _, k := range keys {
		val := &yaml.Node{}
		if err := val.Encode(p[k]); err != nil {
			return nil, err
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, val)
	}
	return m, nil
}
