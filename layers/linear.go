package layers

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// Linear returns x @ W^T + b, the PyTorch nn.Linear.
//
// The module's variables live in ctx.In(module), the scope named by the full
// HF module name (one scope segment, e.g.
// "vision_model.encoder.layers.0.mlp.fc1"): "weight" with PyTorch's [out, in]
// layout, and "bias" [out] when bias is true. x has shape [..., in].
//
// Linear is the single place where quantizers act on weights and input
// activations: it passes W through hook at [SiteWeight] and x at
// [SiteInput], with the module's context and name. The product runs in
// the context's matmul precision (see [ParamMatMulPrecision]).
func Linear(ctx *context.Context, hook Hook, module string, x *graph.Node, outFeatures int, bias bool) *graph.Node {
	g := x.Graph()
	mctx := ctx.In(module)
	inFeatures := x.Shape().Dim(-1)
	w := mctx.VariableWithShape("weight", shapes.Make(x.DType(), outFeatures, inFeatures)).ValueGraph(g)
	w = ApplyHook(hook, mctx, module, SiteWeight, w)
	x = ApplyHook(hook, mctx, module, SiteInput, x)
	y := dotGeneral(ctx, x, []int{-1}, nil, w, []int{1}, nil)
	if bias {
		b := mctx.WithInitializer(initializers.Zero).
			VariableWithShape("bias", shapes.Make(x.DType(), outFeatures)).ValueGraph(g)
		y = graph.Add(y, graph.ExpandLeftToRank(b, y.Rank()))
	}
	return y
}

// LayerNorm normalises x over its last axis and applies the affine
// parameters "weight" and "bias" (each [dim]) of ctx.In(module), as PyTorch's
// nn.LayerNorm does: (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance.
func LayerNorm(ctx *context.Context, module string, x *graph.Node, eps float64) *graph.Node {
	g := x.Graph()
	mctx := ctx.In(module)
	dim := x.Shape().Dim(-1)
	gamma := mctx.WithInitializer(initializers.One).
		VariableWithShape("weight", shapes.Make(x.DType(), dim)).ValueGraph(g)
	beta := mctx.WithInitializer(initializers.Zero).
		VariableWithShape("bias", shapes.Make(x.DType(), dim)).ValueGraph(g)
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, -1)
	centred := graph.Sub(x, mean)
	variance := graph.ReduceAndKeep(graph.Square(centred), graph.ReduceMean, -1)
	// Div by Sqrt rather than Mul by Rsqrt: Rsqrt has no gradient in GoMLX.
	y := graph.Div(centred, graph.Sqrt(graph.AddScalar(variance, eps)))
	y = graph.Mul(y, graph.ExpandLeftToRank(gamma, y.Rank()))
	return graph.Add(y, graph.ExpandLeftToRank(beta, y.Rank()))
}

// PatchEmbed cuts images [N, C, H, W] into non-overlapping patch x patch
// squares and projects each with a Linear without bias: the result is
// [N, (H/patch)*(W/patch), width], patches in row-major order. The Linear's
// weight [width, C*patch*patch] holds the data of a PyTorch Conv2d weight
// [width, C, patch, patch] (stride patch, no bias) unchanged, since each
// patch is flattened in (channel, row, column) order.
func PatchEmbed(ctx *context.Context, hook Hook, module string, images *graph.Node, patch, width int) *graph.Node {
	dims := images.Shape().Dimensions
	n, c, gh, gw := dims[0], dims[1], dims[2]/patch, dims[3]/patch
	x := graph.Reshape(images, n, c, gh, patch, gw, patch)
	x = graph.TransposeAllDims(x, 0, 2, 4, 1, 3, 5)
	x = graph.Reshape(x, n, gh*gw, c*patch*patch)
	return Linear(ctx, hook, module, x, width, false)
}
