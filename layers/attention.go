package layers

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
)

// Attention is multi-head self-attention as HF's CLIPAttention computes it:
// q/k/v projections (Linears "<module>.q_proj", "<module>.k_proj",
// "<module>.v_proj" with bias), scores = (q * head_dim^-0.5) @ k^T, an
// optional causal mask, softmax, probs @ v, and the output Linear
// "<module>.out_proj".
//
// x is [batch, seq, width]; width must be a multiple of heads. Besides the
// Linears' own sites, the hook sees the scaled query at [SiteAttnQuery], the
// key at [SiteAttnKey], the softmax output at [SiteAttnProbs] and the value
// at [SiteAttnValue], each as [batch, seq, heads, head_dim] (probs as
// [batch, heads, seq, seq]), with the context ctx.In(module). Both
// attention products run in the context's matmul precision; the softmax
// stays in the input's type.
func Attention(ctx *context.Context, hook Hook, module string, x *graph.Node, heads int, causal bool) *graph.Node {
	g := x.Graph()
	batch, seq, width := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	headDim := width / heads
	mctx := ctx.In(module)
	split := func(y *graph.Node) *graph.Node { return graph.Reshape(y, batch, seq, heads, headDim) }
	q := split(Linear(ctx, hook, module+".q_proj", x, width, true))
	k := split(Linear(ctx, hook, module+".k_proj", x, width, true))
	v := split(Linear(ctx, hook, module+".v_proj", x, width, true))
	q = graph.MulScalar(q, math.Pow(float64(headDim), -0.5))
	q = ApplyHook(hook, mctx, module, SiteAttnQuery, q)
	k = ApplyHook(hook, mctx, module, SiteAttnKey, k)

	// scores[b, h, i, j] = sum_d q[b, i, h, d] k[b, j, h, d].
	scores := dotGeneral(ctx, q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2})
	if causal {
		// Keep j <= i; elsewhere the lowest finite value, as HF's causal mask does.
		rows := graph.Iota(g, shapes.Make(dtypes.Int32, seq, seq), 0)
		cols := graph.Iota(g, shapes.Make(dtypes.Int32, seq, seq), 1)
		keep := graph.ExpandLeftToRank(graph.GreaterOrEqual(rows, cols), 4)
		keep = graph.BroadcastToDims(keep, scores.Shape().Dimensions...)
		lowest := graph.BroadcastToDims(graph.Scalar(g, scores.DType(), -math.MaxFloat32), scores.Shape().Dimensions...)
		scores = graph.Where(keep, scores, lowest)
	}
	probs := graph.Softmax(scores, -1)
	probs = ApplyHook(hook, mctx, module, SiteAttnProbs, probs)
	v = ApplyHook(hook, mctx, module, SiteAttnValue, v)

	// out[b, h, i, d] = sum_j probs[b, h, i, j] v[b, j, h, d].
	out := dotGeneral(ctx, probs, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2})
	out = graph.TransposeAllDims(out, 0, 2, 1, 3) // [batch, seq, heads, head_dim]
	out = graph.Reshape(out, batch, seq, width)
	return Linear(ctx, hook, module+".out_proj", out, width, true)
}

// MLP is the transformer feed-forward block: Linear "<module>.fc1" to
// hidden features, the activation act, and Linear "<module>.fc2" back to the
// input width, both with bias.
func MLP(ctx *context.Context, hook Hook, module string, x *graph.Node, hidden int, act Activation) *graph.Node {
	width := x.Shape().Dim(-1)
	h := Linear(ctx, hook, module+".fc1", x, hidden, true)
	h = Activate(act, h)
	return Linear(ctx, hook, module+".fc2", h, width, true)
}

// EncoderLayerConfig sizes one pre-LN transformer block.
type EncoderLayerConfig struct {
	// Heads is the number of attention heads.
	Heads int
	// Intermediate is the MLP's hidden width.
	Intermediate int
	// Act is the MLP activation.
	Act Activation
	// Eps is the LayerNorm epsilon.
	Eps float64
	// Causal masks attention to earlier positions (text encoders).
	Causal bool
}

// EncoderLayer is HF's CLIPEncoderLayer: x + attn(ln1(x)), then
// h + mlp(ln2(h)), with submodules "<module>.layer_norm1",
// "<module>.self_attn", "<module>.layer_norm2" and "<module>.mlp".
func EncoderLayer(ctx *context.Context, hook Hook, module string, x *graph.Node, cfg EncoderLayerConfig) *graph.Node {
	h := LayerNorm(ctx, module+".layer_norm1", x, cfg.Eps)
	h = Attention(ctx, hook, module+".self_attn", h, cfg.Heads, cfg.Causal)
	x = graph.Add(x, h)
	h = LayerNorm(ctx, module+".layer_norm2", x, cfg.Eps)
	h = MLP(ctx, hook, module+".mlp", h, cfg.Intermediate, cfg.Act)
	return graph.Add(x, h)
}
