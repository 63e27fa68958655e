package ptq

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
)

// statsScope is the sub-scope where activation statistics are collected
// (and deleted afterwards).
const statsScope = "ptq_stats"

// minSmoothScale bounds SmoothQuant's per-channel factors from below.
const minSmoothScale = 1e-5

// SmoothGroup is one LayerNorm and the Linears reading its output, which
// SmoothQuant smooths together.
type SmoothGroup struct {
	// Norm is the LayerNorm module ("...layer_norm1").
	Norm string
	// Linears read the norm's output ("...q_proj", "...k_proj", "...v_proj").
	Linears []string
}

// SmoothGroups lists the groups SmoothQuant smooths in a CLIP model:
// layer_norm1 with q/k/v_proj and layer_norm2 with fc1, in every block of
// both towers.
func SmoothGroups(cfg clip.Config) []SmoothGroup {
	var out []SmoothGroup
	for _, tower := range []struct {
		prefix string
		n      int
	}{{"vision_model", cfg.Vision.NumHiddenLayers}, {"text_model", cfg.Text.NumHiddenLayers}} {
		for i := range tower.n {
			l := fmt.Sprintf("%s.encoder.layers.%d", tower.prefix, i)
			out = append(out,
				SmoothGroup{Norm: l + ".layer_norm1", Linears: []string{l + ".self_attn.q_proj", l + ".self_attn.k_proj", l + ".self_attn.v_proj"}},
				SmoothGroup{Norm: l + ".layer_norm2", Linears: []string{l + ".mlp.fc1"}})
		}
	}
	return out
}

// absMaxHook records, for the input of each watched Linear, the running
// per-channel max |x| in a variable of the module's statsScope.
type absMaxHook struct{ watch map[string]bool }

// Apply implements layers.Hook.
func (h absMaxHook) Apply(ctx *context.Context, module string, site layers.Site, x *graph.Node) *graph.Node {
	if site != layers.SiteInput || !h.watch[module] {
		return x
	}
	g := x.Graph()
	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	bm := graph.ReduceMax(graph.Abs(graph.StopGradient(x)), axes...)
	v := ctx.In(statsScope).Checked(false).
		VariableWithValue("absmax", tensors.FromScalarAndDimensions(float32(0), x.Shape().Dim(-1))).SetTrainable(false)
	v.SetValueGraph(graph.Max(v.ValueGraph(g), graph.ConvertDType(bm, v.Shape().DType)))
	return x
}

// ActivationAbsMax runs the float model in ctx over the calibration data
// and returns, for each listed Linear, the per-input-channel max |x| of its
// input. The statistics variables are removed from ctx afterwards.
func ActivationAbsMax(b backends.Backend, ctx *context.Context, cfg clip.Config, modules []string, d Data, batch, batches int) (map[string][]float32, error) {
	h := absMaxHook{watch: map[string]bool{}}
	for _, m := range modules {
		h.watch[m] = true
	}
	if err := run(b, ctx, cfg, h, d, batch, batches); err != nil {
		return nil, fmt.Errorf("smoothquant: activation statistics: %w", err)
	}
	out := map[string][]float32{}
	for _, m := range modules {
		scope := ctx.In(m).In(statsScope).Scope()
		data, _, err := readVar(ctx, scope, "absmax")
		if err != nil {
			return nil, fmt.Errorf("smoothquant: %s saw no data: %w", m, err)
		}
		out[m] = data
		if err := ctx.DeleteVariable(scope, "absmax"); err != nil {
			return nil, fmt.Errorf("smoothquant: %w", err)
		}
	}
	return out, nil
}

// SmoothFactors returns SmoothQuant's per-channel factors
// s_j = max|X_j|^alpha / max|W_j|^(1-alpha) for activation maxima xMax and
// weight column maxima wMax, at least 1e-5; a channel with no activation
// or no weight gets 1.
func SmoothFactors(xMax, wMax []float32, alpha float64) []float32 {
	s := make([]float32, len(xMax))
	for j := range s {
		x, w := float64(xMax[j]), float64(wMax[j])
		if x <= 0 || w <= 0 {
			s[j] = 1
			continue
		}
		s[j] = float32(max(math.Pow(x, alpha)/math.Pow(w, 1-alpha), minSmoothScale))
	}
	return s
}

// SmoothQuant applies SmoothQuant with migration strength alpha in [0, 1]
// to the float model in ctx: for every group of SmoothGroups it computes
// the factors s (SmoothFactors) from the activation maxima the model shows
// on the calibration data and the weights' input-column maxima, divides
// the LayerNorm's weight and bias by s and multiplies the Linears' weight
// columns by s. The float model computes the same function (up to float
// rounding) while its Linear inputs have flatter channel ranges. It
// returns the factors by LayerNorm.
func SmoothQuant(b backends.Backend, ctx *context.Context, cfg clip.Config, alpha float64, d Data, batch, batches int) (map[string][]float32, error) {
	if alpha < 0 || alpha > 1 || math.IsNaN(alpha) {
		return nil, fmt.Errorf("smoothquant: alpha %g is out of range [0, 1]", alpha)
	}
	groups := SmoothGroups(cfg)
	var first []string
	for _, g := range groups {
		first = append(first, g.Linears[0])
	}
	stats, err := ActivationAbsMax(b, ctx, cfg, first, d, batch, batches)
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	for _, g := range groups {
		xMax := stats[g.Linears[0]]
		in := len(xMax)
		wMax := make([]float32, in)
		weights := make([][]float32, len(g.Linears))
		dims := make([][]int, len(g.Linears))
		for i, m := range g.Linears {
			w, d, err := readVar(ctx, ctx.In(m).Scope(), "weight")
			if err != nil {
				return nil, fmt.Errorf("smoothquant: %w", err)
			}
			if len(d) != 2 || d[1] != in {
				return nil, fmt.Errorf("smoothquant: %s weight has shape %v, want [*, %d]", m, d, in)
			}
			for k, v := range w {
				wMax[k%in] = max(wMax[k%in], float32(math.Abs(float64(v))))
			}
			weights[i], dims[i] = w, d
		}
		s := SmoothFactors(xMax, wMax, alpha)
		for i, m := range g.Linears {
			w := weights[i]
			for k := range w {
				w[k] *= s[k%in]
			}
			if err := writeVar(ctx, ctx.In(m).Scope(), "weight", w, dims[i]); err != nil {
				return nil, fmt.Errorf("smoothquant: %s: %w", m, err)
			}
		}
		for _, name := range []string{"weight", "bias"} {
			v, d, err := readVar(ctx, ctx.In(g.Norm).Scope(), name)
			if err != nil {
				return nil, fmt.Errorf("smoothquant: %w", err)
			}
			if len(v) != in {
				return nil, fmt.Errorf("smoothquant: %s %s has %d values, want %d", g.Norm, name, len(v), in)
			}
			for j := range v {
				v[j] /= s[j]
			}
			if err := writeVar(ctx, ctx.In(g.Norm).Scope(), name, v, d); err != nil {
				return nil, fmt.Errorf("smoothquant: %s: %w", g.Norm, err)
			}
		}
		out[g.Norm] = s
	}
	return out, nil
}
