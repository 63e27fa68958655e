package recipes_test

import (
	"fmt"
	"os"

	"github.com/qatclip/qatclip/recipes"
)

// ExampleResolve parses a recipe, resolves it against a model's modules and
// prints the per-layer plan.
func ExampleResolve() {
	src := []byte(`
quantization:
  default:
    weights:     {method: lsq, bits: 4}
    activations: {method: lsq, bits: 8}
  targets: ["re:.*mlp\\.fc[12]$", "re:.*_proj$"]
  ignore:  [visual_projection]
  overrides:
    - {match: "*.fc2", activations: {bits: 6}}
`)
	r, err := recipes.Parse("example.yaml", src, "quantization.default.weights.granularity=per-group", "quantization.default.weights.group_size=64")
	if err != nil {
		fmt.Println(err)
		return
	}
	modules := recipes.ModulesOf([]string{
		"vision_model.encoder.layers.0.self_attn.q_proj",
		"vision_model.encoder.layers.0.mlp.fc1",
		"vision_model.encoder.layers.0.mlp.fc2",
		"visual_projection",
	}, func(string) (in, out int) { return 128, 128 })
	plan, err := recipes.Resolve(r, modules)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan.WriteTable(os.Stdout)
	// Output:
	// LAYER                                           WEIGHTS                                ACTIVATIONS
	// vision_model.encoder.layers.0.self_attn.q_proj  lsq int4 sym per-group(64)             lsq uint8 asym per-tensor
	// vision_model.encoder.layers.0.mlp.fc1           lsq int4 sym per-group(64)             lsq uint8 asym per-tensor
	// vision_model.encoder.layers.0.mlp.fc2           lsq int4 sym per-group(64)             lsq uint6 asym per-tensor
	// visual_projection                               float: ignored by "visual_projection"  -
	// 3 of 4 Linear layers quantized
}

// ExampleParse shows the one-line error of a malformed recipe.
func ExampleParse() {
	_, err := recipes.Parse("mine.yaml", []byte("quantization:\n  default:\n    weights: {bitz: 4}\n"))
	fmt.Println(err)
	// Output:
	// mine.yaml:3: quantization.default.weights.bitz: unknown key (known keys: method, bits, symmetric, signed, narrow_range, granularity, axis, group_size, momentum, percentile, init, alpha_l2, dynamic)
}
