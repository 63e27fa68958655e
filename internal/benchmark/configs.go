package benchmark

import (
	"fmt"
	"strings"

	"github.com/qatclip/qatclip/layers/clip"
)

// ConfigNames lists the named model sizes ModelConfig accepts.
func ConfigNames() []string { return []string{"tiny", "small", "b32"} }

// ModelConfig returns the named model size, the same as bench.py's CONFIGS:
//
//	tiny   the sizes of shared/golden/clip-tiny: image 32, patch 8, vision
//	       width 128 (2 layers, 2 heads), text vocab 1000, context 16,
//	       width 64 (2 layers, 4 heads), projection 32
//	small  image 64, patch 8, width 256 and 4 layers in both towers
//	       (heads = width/64), vocab 49408, context 77, projection 256
//	b32    OpenAI ViT-B/32 (clip.DefaultConfig)
//
// Every tower uses quick_gelu, MLP ratio 4 and LayerNorm eps 1e-5; the
// end-of-text token is the largest id.
func ModelConfig(name string) (clip.Config, error) {
	cfg := clip.DefaultConfig()
	switch name {
	case "tiny":
		cfg.Vision = clip.VisionConfig{HiddenSize: 128, IntermediateSize: 512, NumAttentionHeads: 2, NumHiddenLayers: 2,
			ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
		cfg.Text = clip.TextConfig{VocabSize: 1000, HiddenSize: 64, IntermediateSize: 256, NumAttentionHeads: 4, NumHiddenLayers: 2,
			MaxPositionEmbeddings: 16, HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: 998, EosTokenID: 999, PadTokenID: 1}
		cfg.ProjectionDim = 32
	case "small":
		cfg.Vision = clip.VisionConfig{HiddenSize: 256, IntermediateSize: 1024, NumAttentionHeads: 4, NumHiddenLayers: 4,
			ImageSize: 64, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
		cfg.Text.HiddenSize, cfg.Text.IntermediateSize = 256, 1024
		cfg.Text.NumAttentionHeads, cfg.Text.NumHiddenLayers = 4, 4
		cfg.ProjectionDim = 256
	case "b32":
	default:
		return clip.Config{}, fmt.Errorf("unknown config %q: want one of %s", name, strings.Join(ConfigNames(), ", "))
	}
	return cfg, nil
}

// towerFLOPs returns the forward matmul FLOPs of layers transformer blocks
// of the given width and MLP width over batch sequences of seq tokens: the
// q/k/v/out projections, fc1 and fc2, and the two attention matmuls over
// the full seq x seq square (causal or not).
func towerFLOPs(batch, seq, width, mlpWidth, layers int) float64 {
	b, s, w := float64(batch), float64(seq), float64(width)
	proj := 4 * 2 * b * s * w * w
	mlp := 2 * 2 * b * s * w * float64(mlpWidth)
	attn := 2 * 2 * b * s * s * w
	return float64(layers) * (proj + mlp + attn)
}

// VisionForwardFLOPs returns the matmul FLOPs of the image tower's forward
// for batch images: the patch embedding, the blocks over the patches and
// the class token, and the projection of the class token.
func VisionForwardFLOPs(cfg clip.Config, batch int) float64 {
	v := cfg.Vision
	n := v.NumPatches()
	b, w := float64(batch), float64(v.HiddenSize)
	patch := 2 * b * float64(n) * float64(v.NumChannels*v.PatchSize*v.PatchSize) * w
	head := 2 * b * w * float64(cfg.ProjectionDim)
	return patch + towerFLOPs(batch, n+1, v.HiddenSize, v.IntermediateSize, v.NumHiddenLayers) + head
}

// ForwardFLOPs returns the matmul FLOPs of both towers' forward for batch
// image-text pairs and of the batch x batch similarity matrix.
func ForwardFLOPs(cfg clip.Config, batch int) float64 {
	t := cfg.Text
	b, p := float64(batch), float64(cfg.ProjectionDim)
	text := towerFLOPs(batch, t.MaxPositionEmbeddings, t.HiddenSize, t.IntermediateSize, t.NumHiddenLayers)
	text += 2 * b * float64(t.HiddenSize) * p
	return VisionForwardFLOPs(cfg, batch) + text + 2*b*b*p
}

// TrainFLOPs returns the model FLOPs of a training step, 3 x ForwardFLOPs
// (the backward pass counts twice the forward). As in bench.py, LayerNorm,
// softmax, activations, fake quantization and the optimizer are not
// counted, so the figure is comparable across implementations.
func TrainFLOPs(cfg clip.Config, batch int) float64 { return 3 * ForwardFLOPs(cfg, batch) }
