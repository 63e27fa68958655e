// Package layers holds the quantization-aware building blocks of qatclip's
// models: Linear (the one place weights and input activations are
// fake-quantized), attention and MLP blocks.
//
// Layers know nothing about quantization methods: at every quantization
// site they call a [Hook], which a resolved recipe plan implements. A nil
// Hook leaves the model in float.
package layers

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Site names a point in a layer where a quantizer may be inserted.
type Site int

const (
	// SiteWeight is the weight of a Linear, stored [out, in] as in PyTorch.
	SiteWeight Site = iota
	// SiteInput is the input activation of a Linear.
	SiteInput
	// SiteAttnQuery is the query tensor entering the attention score matmul.
	SiteAttnQuery
	// SiteAttnKey is the key tensor entering the attention score matmul.
	SiteAttnKey
	// SiteAttnProbs is the softmax output entering the attention-value matmul.
	SiteAttnProbs
	// SiteAttnValue is the value tensor entering the attention-value matmul.
	SiteAttnValue
)

// String returns the site's name as used in variable scopes and reports
// ("weight", "input", "attn_query", ...).
func (s Site) String() string {
	switch s {
	case SiteWeight:
		return "weight"
	case SiteInput:
		return "input"
	case SiteAttnQuery:
		return "attn_query"
	case SiteAttnKey:
		return "attn_key"
	case SiteAttnProbs:
		return "attn_probs"
	case SiteAttnValue:
		return "attn_value"
	}
	return "unknown"
}

// Hook transforms a tensor at a quantization site. ctx is the module's
// context (its scope is the HF module name, e.g.
// "vision_model.encoder.layers.0.mlp.fc1"), so a quantizer keeps its state
// in variables under it (e.g. ".../weight_quant/scale"). module is the HF
// module name. Implementations return x unchanged for sites they do not
// quantize.
type Hook interface {
	Apply(ctx *context.Context, module string, site Site, x *graph.Node) *graph.Node
}

// ApplyHook calls hook.Apply, or returns x when hook is nil.
func ApplyHook(hook Hook, ctx *context.Context, module string, site Site, x *graph.Node) *graph.Node {
	if hook == nil {
		return x
	}
	return hook.Apply(ctx, module, site, x)
}
