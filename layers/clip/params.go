package clip

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Param is one model parameter: its HF name, where it lives in the context,
// and its shapes.
type Param struct {
	// Name is the HF parameter name, e.g.
	// "vision_model.encoder.layers.0.mlp.fc1.weight".
	Name string
	// Module is the HF module name, the scope segment holding the variable
	// ("vision_model.encoder.layers.0.mlp.fc1"); empty for logit_scale,
	// which lives in the model's root scope.
	Module string
	// Var is the variable name inside the module's scope ("weight").
	Var string
	// Shape is the variable's shape in the context.
	Shape []int
	// HFShape is the shape in HF checkpoints. It differs from Shape only for
	// the patch embedding, stored as a conv weight [width, C, p, p] and held
	// as a Linear weight [width, C*p*p] with the same row-major data.
	HFShape []int
}

// Scope returns the variable's scope under a context whose scope is root
// (e.g. "/" for the root context).
func (p Param) Scope(root string) string {
	if p.Module == "" {
		return root
	}
	return context.JoinScope(root, p.Module)
}

// Size returns the number of elements of the parameter.
func (p Param) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// Params lists every parameter of a CLIP model with config cfg in a fixed
// order: vision tower, text tower, projections, logit_scale.
func Params(cfg Config) []Param {
	var ps []Param
	add := func(module, v string, shape ...int) {
		name := v
		if module != "" {
			name = module + "." + v
		}
		ps = append(ps, Param{Name: name, Module: module, Var: v, Shape: shape, HFShape: shape})
	}
	linear := func(module string, out, in int, bias bool) {
		add(module, "weight", out, in)
		if bias {
			add(module, "bias", out)
		}
	}
	norm := func(module string, dim int) {
		add(module, "weight", dim)
		add(module, "bias", dim)
	}
	encoder := func(prefix string, n, width, inter int) {
		for i := range n {
			m := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
			for _, p := range []string{"k_proj", "v_proj", "q_proj", "out_proj"} {
				linear(m+".self_attn."+p, width, width, true)
			}
			norm(m+".layer_norm1", width)
			linear(m+".mlp.fc1", inter, width, true)
			linear(m+".mlp.fc2", width, inter, true)
			norm(m+".layer_norm2", width)
		}
	}
	v, t := cfg.Vision, cfg.Text
	add("vision_model.embeddings", "class_embedding", v.HiddenSize)
	linear("vision_model.embeddings.patch_embedding", v.HiddenSize, v.NumChannels*v.PatchSize*v.PatchSize, false)
	ps[len(ps)-1].HFShape = []int{v.HiddenSize, v.NumChannels, v.PatchSize, v.PatchSize}
	add("vision_model.embeddings.position_embedding", "weight", v.NumPatches()+1, v.HiddenSize)
	norm("vision_model.pre_layrnorm", v.HiddenSize)
	encoder("vision_model", v.NumHiddenLayers, v.HiddenSize, v.IntermediateSize)
	norm("vision_model.post_layernorm", v.HiddenSize)

	add("text_model.embeddings.token_embedding", "weight", t.VocabSize, t.HiddenSize)
	add("text_model.embeddings.position_embedding", "weight", t.MaxPositionEmbeddings, t.HiddenSize)
	encoder("text_model", t.NumHiddenLayers, t.HiddenSize, t.IntermediateSize)
	norm("text_model.final_layer_norm", t.HiddenSize)

	linear("visual_projection", cfg.ProjectionDim, v.HiddenSize, false)
	linear("text_projection", cfg.ProjectionDim, t.HiddenSize, false)
	ps = append(ps, Param{Name: "logit_scale", Var: "logit_scale", Shape: []int{}, HFShape: []int{}})
	return ps
}

// LinearModules lists the HF module names of every Linear of the model (the
// layers a recipe can quantize), the patch embedding and projections
// included, in the order of [Params].
func LinearModules(cfg Config) []string {
	var mods []string
	for _, p := range Params(cfg) {
		if p.Var == "weight" && len(p.Shape) == 2 && !isEmbeddingTable(p.Module) {
			mods = append(mods, p.Module)
		}
	}
	return mods
}

// isEmbeddingTable reports whether module is a lookup table rather than a Linear.
func isEmbeddingTable(module string) bool {
	switch module {
	case "vision_model.embeddings.position_embedding",
		"text_model.embeddings.token_embedding",
		"text_model.embeddings.position_embedding":
		return true
	}
	return false
}

// ParamByName returns the parameter with HF name name.
func ParamByName(cfg Config, name string) (Param, bool) {
	for _, p := range Params(cfg) {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}
