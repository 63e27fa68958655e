package clip

import (
	"math"
	"testing"
)

// TestNewRandomCheckpointScales checks the initial scales: fan-in scaling
// for Linear weights and the 4-D patch convolution, 0.2 for embeddings,
// LayerNorm weights near 1, and determinism per seed.
func TestNewRandomCheckpointScales(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Vision.HiddenSize, cfg.Vision.IntermediateSize, cfg.Vision.NumHiddenLayers = 64, 128, 1
	cfg.Vision.ImageSize, cfg.Vision.PatchSize = 32, 8
	cfg.Text.HiddenSize, cfg.Text.IntermediateSize, cfg.Text.NumHiddenLayers, cfg.Text.VocabSize = 64, 128, 1, 300
	ck := NewRandomCheckpoint(cfg, 1)
	rms := func(name string) float64 {
		w := ck.Weights[name]
		var ss float64
		for _, x := range w {
			ss += float64(x) * float64(x)
		}
		return math.Sqrt(ss / float64(len(w)))
	}
	cases := []struct {
		name string
		want float64
	}{
		{"vision_model.embeddings.patch_embedding.weight", 1 / math.Sqrt(3*8*8)},
		{"vision_model.encoder.layers.0.mlp.fc1.weight", 1 / math.Sqrt(64)},
		{"vision_model.encoder.layers.0.mlp.fc2.weight", 1 / math.Sqrt(128)},
		{"text_model.embeddings.token_embedding.weight", 0.2},
		{"vision_model.post_layernorm.weight", math.Sqrt(1 + 0.01)},
	}
	for _, c := range cases {
		if got := rms(c.name); math.Abs(got-c.want) > 0.1*c.want {
			t.Errorf("%s: rms %.4f, want about %.4f", c.name, got, c.want)
		}
	}
	again := NewRandomCheckpoint(cfg, 1)
	for name, w := range ck.Weights {
		for i := range w {
			if again.Weights[name][i] != w[i] {
				t.Fatalf("%s differs between two calls with the same seed", name)
			}
		}
	}
}
