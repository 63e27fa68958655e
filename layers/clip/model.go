package clip

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
	"github.com/qatclip/qatclip/layers"
)

// mustActivation parses an activation already checked by Config.Validate.
func mustActivation(name string) layers.Activation {
	act, err := layers.ParseActivation(name)
	if err != nil {
		panic(fmt.Sprintf("clip: %v (validate the config first)", err))
	}
	return act
}

// ImageFeatures returns HF's get_image_features for normalised pixels
// [N, C, H, W] (H = W = image_size): the projected, unnormalised pooled
// output of the vision tower, [N, projection_dim].
func ImageFeatures(ctx *context.Context, cfg Config, hook layers.Hook, pixels *graph.Node) *graph.Node {
	pooled := VisionPooled(ctx, cfg, hook, pixels)
	return layers.Linear(ctx, hook, "visual_projection", pooled, cfg.ProjectionDim, false)
}

// VisionPooled returns the vision tower's pooled output: the class token
// after post_layernorm, [N, hidden_size].
func VisionPooled(ctx *context.Context, cfg Config, hook layers.Hook, pixels *graph.Node) *graph.Node {
	g := pixels.Graph()
	v := cfg.Vision
	dims := pixels.Shape().Dimensions
	if len(dims) != 4 || dims[1] != v.NumChannels || dims[2] != v.ImageSize || dims[3] != v.ImageSize {
		panic(fmt.Errorf("clip: pixels have shape %v, want [N, %d, %d, %d]", dims, v.NumChannels, v.ImageSize, v.ImageSize))
	}
	n, grid, width := dims[0], v.ImageSize/v.PatchSize, v.HiddenSize
	x := layers.PatchEmbed(ctx, hook, "vision_model.embeddings.patch_embedding", pixels, v.PatchSize, width)

	cls := ctx.In("vision_model.embeddings").
		VariableWithShape("class_embedding", shapes.Make(x.DType(), width)).ValueGraph(g)
	cls = graph.BroadcastToDims(graph.Reshape(cls, 1, 1, width), n, 1, width)
	x = graph.Concatenate([]*graph.Node{cls, x}, 1)
	seq := grid*grid + 1
	pos := ctx.In("vision_model.embeddings.position_embedding").
		VariableWithShape("weight", shapes.Make(x.DType(), seq, width)).ValueGraph(g)
	x = graph.Add(x, graph.ExpandLeftToRank(pos, 3))

	x = layers.LayerNorm(ctx, "vision_model.pre_layrnorm", x, v.LayerNormEps)
	block := layers.EncoderLayerConfig{
		Heads: v.NumAttentionHeads, Intermediate: v.IntermediateSize,
		Act: mustActivation(v.HiddenAct), Eps: v.LayerNormEps,
	}
	for i := range v.NumHiddenLayers {
		x = layers.EncoderLayer(ctx, hook, fmt.Sprintf("vision_model.encoder.layers.%d", i), x, block)
	}
	// Select the class token with a one-hot contraction (Slice's gradient
	// needs Pad, which the pure-Go backend lacks).
	first := graph.OneHot(graph.Const(g, []int32{0}), seq, x.DType())
	pooled := graph.DotGeneral(x, []int{1}, nil, graph.Reshape(first, seq), []int{0}, nil)
	return layers.LayerNorm(ctx, "vision_model.post_layernorm", pooled, v.LayerNormEps)
}

// TextFeatures returns HF's get_text_features for token ids [M, L] (L <=
// max_position_embeddings, any integer dtype): the projected, unnormalised
// pooled output of the text tower, [M, projection_dim].
func TextFeatures(ctx *context.Context, cfg Config, hook layers.Hook, ids *graph.Node) *graph.Node {
	pooled := TextPooled(ctx, cfg, hook, ids)
	return layers.Linear(ctx, hook, "text_projection", pooled, cfg.ProjectionDim, false)
}

// TextPooled returns the text tower's pooled output, [M, hidden_size]: the
// final_layer_norm output at the end-of-text token (see [EOTPositions]).
func TextPooled(ctx *context.Context, cfg Config, hook layers.Hook, ids *graph.Node) *graph.Node {
	g := ids.Graph()
	t := cfg.Text
	if ids.Rank() != 2 || !ids.DType().IsInt() {
		panic(fmt.Errorf("clip: input ids have shape %s, want an integer [M, L]", ids.Shape()))
	}
	m, l := ids.Shape().Dim(0), ids.Shape().Dim(1)
	if l > t.MaxPositionEmbeddings {
		panic(fmt.Errorf("clip: input ids have length %d, longer than max_position_embeddings %d", l, t.MaxPositionEmbeddings))
	}
	ids = graph.ConvertDType(ids, dtypes.Int32)
	dtype := dtypes.Float32
	width := t.HiddenSize

	table := ctx.In("text_model.embeddings.token_embedding").
		VariableWithShape("weight", shapes.Make(dtype, t.VocabSize, width)).ValueGraph(g)
	x := graph.Gather(table, graph.Reshape(ids, m, l, 1))
	pos := ctx.In("text_model.embeddings.position_embedding").
		VariableWithShape("weight", shapes.Make(dtype, t.MaxPositionEmbeddings, width)).ValueGraph(g)
	if l < t.MaxPositionEmbeddings {
		pos = graph.Gather(pos, graph.Iota(g, shapes.Make(dtypes.Int32, l, 1), 0), true)
	}
	x = graph.Add(x, graph.ExpandLeftToRank(pos, 3))

	block := layers.EncoderLayerConfig{
		Heads: t.NumAttentionHeads, Intermediate: t.IntermediateSize,
		Act: mustActivation(t.HiddenAct), Eps: t.LayerNormEps, Causal: true,
	}
	for i := range t.NumHiddenLayers {
		x = layers.EncoderLayer(ctx, hook, fmt.Sprintf("text_model.encoder.layers.%d", i), x, block)
	}
	x = layers.LayerNorm(ctx, "text_model.final_layer_norm", x, t.LayerNormEps)
	sel := graph.OneHot(EOTPositions(cfg, ids), l, x.DType()) // [M, L]
	return graph.DotGeneral(x, []int{1}, []int{0}, sel, []int{1}, []int{0})
}

// EOTPositions returns, for ids [M, L], the position of each row's pooled
// token as HF's CLIPTextTransformer picks it: with the legacy
// eos_token_id == 2, the first position of the row's largest id
// (argmax(input_ids)); otherwise the first position holding eos_token_id,
// or 0 when the row has none. The result is int32 [M]. (When a row's
// largest id is the end-of-text id, both rules pick the same position.)
func EOTPositions(cfg Config, ids *graph.Node) *graph.Node {
	g := ids.Graph()
	ids = graph.ConvertDType(ids, dtypes.Int32)
	l := ids.Shape().Dim(1)
	var target *graph.Node
	if cfg.Text.EosTokenID == 2 {
		target = graph.ReduceAndKeep(ids, graph.ReduceMax, 1)
	} else {
		target = graph.Scalar(g, dtypes.Int32, cfg.Text.EosTokenID)
	}
	target = graph.BroadcastToDims(target, ids.Shape().Dimensions...)
	positions := graph.Iota(g, ids.Shape(), 1)
	none := graph.BroadcastToDims(graph.Scalar(g, dtypes.Int32, l), ids.Shape().Dimensions...)
	first := graph.ReduceMin(graph.Where(graph.Equal(ids, target), positions, none), 1)
	zero := graph.ZerosLike(first)
	return graph.Where(graph.Equal(first, graph.BroadcastToDims(graph.Scalar(g, dtypes.Int32, l), first.Shape().Dimensions...)), zero, first)
}

// LogitScale returns the model's logit_scale variable (a scalar in the root
// scope, initialised to cfg.LogitScaleInit) as a graph node.
func LogitScale(ctx *context.Context, cfg Config, g *graph.Graph) *graph.Node {
	return ctx.VariableWithValue("logit_scale", float32(cfg.LogitScaleInit)).ValueGraph(g)
}

// Logits returns logits_per_image [N, M] = exp(logit_scale) * normalize(img)
// @ normalize(txt)^T for image features [N, D] and text features [M, D],
// with L2 normalisation along D as HF computes it.
func Logits(logitScale, img, txt *graph.Node) *graph.Node {
	img = L2Normalize(img)
	txt = L2Normalize(txt)
	cos := graph.DotGeneral(img, []int{1}, nil, txt, []int{1}, nil)
	return graph.Mul(cos, graph.Exp(logitScale))
}

// L2Normalize divides each row of x [.., D] by its Euclidean norm.
func L2Normalize(x *graph.Node) *graph.Node {
	norm := graph.Sqrt(graph.ReduceAndKeep(graph.Square(x), graph.ReduceSum, -1))
	return graph.Div(x, norm)
}
