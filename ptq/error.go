package ptq

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
)

// errorHook wraps a quantization hook and accumulates, at each watched
// Linear input, sum((q(x) - x)^2) and sum(x^2).
type errorHook struct {
	inner layers.Hook
	watch map[string]bool
}

// Apply implements layers.Hook.
func (h errorHook) Apply(ctx *context.Context, module string, site layers.Site, x *graph.Node) *graph.Node {
	y := layers.ApplyHook(h.inner, ctx, module, site, x)
	if site != layers.SiteInput || !h.watch[module] {
		return y
	}
	g := x.Graph()
	sctx := ctx.In(statsScope).Checked(false)
	acc := func(name string, v *graph.Node) {
		vv := sctx.VariableWithValue(name, float64(0)).SetTrainable(false)
		vv.SetValueGraph(graph.Add(vv.ValueGraph(g), graph.ConvertDType(graph.ReduceAllSum(v), vv.Shape().DType)))
	}
	xs := graph.StopGradient(x)
	acc("err", graph.Square(graph.Sub(graph.StopGradient(y), xs)))
	acc("energy", graph.Square(xs))
	return y
}

// ActivationError runs the model in ctx, fake-quantized by hook (already
// calibrated), over the data and returns, for each listed Linear, the
// relative quantization error of its input activation,
// sum((q(x) - x)^2) / sum(x^2). The accumulators are removed from ctx.
func ActivationError(b backends.Backend, ctx *context.Context, cfg clip.Config, hook layers.Hook, modules []string, d Data, batch, batches int) (map[string]float64, error) {
	h := errorHook{inner: hook, watch: map[string]bool{}}
	for _, m := range modules {
		h.watch[m] = true
	}
	if err := run(b, ctx, cfg, h, d, batch, batches); err != nil {
		return nil, fmt.Errorf("activation error: %w", err)
	}
	out := map[string]float64{}
	for _, m := range modules {
		scope := ctx.In(m).In(statsScope).Scope()
		var vals [2]float64
		for i, name := range []string{"err", "energy"} {
			v := ctx.GetVariableByScopeAndName(scope, name)
			if v == nil {
				return nil, fmt.Errorf("activation error: %s saw no data", m)
			}
			t, err := v.Value()
			if err != nil {
				return nil, fmt.Errorf("activation error: %s: %w", m, err)
			}
			vals[i] = tensors.ToScalar[float64](t)
			if err := ctx.DeleteVariable(scope, name); err != nil {
				return nil, fmt.Errorf("activation error: %w", err)
			}
		}
		if vals[1] > 0 {
			out[m] = vals[0] / vals[1]
		}
	}
	return out, nil
}
