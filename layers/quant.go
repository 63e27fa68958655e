package layers

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/quantizers"
	"github.com/qatclip/qatclip/recipes"
)

// siteKey identifies one quantization site of one module.
type siteKey struct {
	module string
	site   Site
}

// QuantHook is the Hook of a resolved recipe plan: every site the plan
// quantizes gets its own Quantizer, built once from the plan's scheme, and
// keeps its state in the module's scope under "<site>_quant" (e.g.
// "vision_model.encoder.layers.0.mlp.fc1/weight_quant/scale"). Sites the
// plan leaves in float pass through unchanged.
type QuantHook struct {
	sites map[siteKey]quantizers.Quantizer
}

// NewQuantHook builds the quantizers of plan with the methods of reg
// (quantizers.DefaultRegistry() when nil). Linear modules get SiteWeight and
// SiteInput quantizers from their weight and activation schemes; attention
// modules with quantized matmuls get the four attention sites.
func NewQuantHook(plan *recipes.Plan, reg *quantizers.Registry) (*QuantHook, error) {
	if reg == nil {
		reg = quantizers.DefaultRegistry()
	}
	h := &QuantHook{sites: map[siteKey]quantizers.Quantizer{}}
	add := func(module string, site Site, cfg *quantizers.Config) error {
		if cfg == nil {
			return nil
		}
		q, err := reg.New(*cfg)
		if err != nil {
			return fmt.Errorf("%s %s quantizer: %w", module, site, err)
		}
		h.sites[siteKey{module, site}] = q
		return nil
	}
	for _, l := range plan.Layers {
		if err := add(l.Module, SiteWeight, l.Weights); err != nil {
			return nil, err
		}
		if err := add(l.Module, SiteInput, l.Activations); err != nil {
			return nil, err
		}
	}
	for _, a := range plan.Attention {
		for _, s := range []Site{SiteAttnQuery, SiteAttnKey, SiteAttnProbs, SiteAttnValue} {
			if err := add(a.Module, s, a.Activations); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// Apply implements Hook.
func (h *QuantHook) Apply(ctx *context.Context, module string, site Site, x *graph.Node) *graph.Node {
	q, ok := h.sites[siteKey{module, site}]
	if !ok {
		return x
	}
	return q.Quantize(ctx.In(quantizers.ScopeName(site.String())), x)
}

// Quantizer returns the quantizer of a site, if the plan quantizes it.
func (h *QuantHook) Quantizer(module string, site Site) (quantizers.Quantizer, bool) {
	q, ok := h.sites[siteKey{module, site}]
	return q, ok
}

// NumSites returns how many sites the hook quantizes.
func (h *QuantHook) NumSites() int { return len(h.sites) }
