package clip

import (
	"math"
	"math/rand/v2"
	"strings"
)

// NewRandomCheckpoint returns a checkpoint of randomly initialised weights
// for cfg, the starting point of a model trained from scratch (the demo,
// tests, benchmarks): LayerNorm weights near 1 and biases near 0, Linear
// and projection weights and the patch convolution normal with std
// 1/sqrt(fan_in) (fan_in = the product of all but the first dimension),
// token/position/class embeddings normal with std 0.2, logit_scale at
// cfg.LogitScaleInit. The same seed gives the
// same weights.
func NewRandomCheckpoint(cfg Config, seed uint64) *Checkpoint {
	r := rand.New(rand.NewPCG(seed, 7))
	ck := &Checkpoint{Config: cfg, Path: "random", Weights: map[string][]float32{}}
	for _, p := range Params(cfg) {
		data := make([]float32, p.Size())
		switch {
		case p.Name == "logit_scale":
			data[0] = float32(cfg.LogitScaleInit)
		case strings.Contains(p.Name, "norm") && p.Var == "weight":
			for i := range data {
				data[i] = 1 + 0.1*float32(r.NormFloat64())
			}
		default:
			std := 0.2
			if len(p.Shape) >= 2 && (!strings.Contains(p.Name, "embedding") || strings.Contains(p.Name, "patch_embedding")) {
				fanIn := 1
				for _, d := range p.Shape[1:] {
					fanIn *= d
				}
				std = 1 / math.Sqrt(float64(fanIn))
			}
			for i := range data {
				data[i] = float32(std * r.NormFloat64())
			}
		}
		ck.Weights[p.Name] = data
	}
	return ck
}
