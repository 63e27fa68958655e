package export

import (
	"fmt"
	"strings"

	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/recipes"
)

// modelCard returns the README.md of an export: what the folder holds, the
// per-layer quantization, the recipe, the last evaluation and the sizes.
func modelCard(b *builder, plan *recipes.Plan, eval map[string]float64) ([]byte, error) {
	var w strings.Builder
	name := b.qf.Recipe
	if name == "" {
		name = "quantized"
	}
	fmt.Fprintf(&w, "---\nlibrary_name: transformers\ntags: [clip, quantized, qatclip, %s]\n---\n\n", b.format)
	fmt.Fprintf(&w, "# CLIP quantized with qatclip (recipe %s)\n\n", name)
	switch {
	case b.format == FormatFakeQuantF32:
		fmt.Fprintf(&w, "Format: **fake-quant-f32**. A plain Hugging Face `CLIPModel` folder whose weights are the\n"+
			"fake-quantized (quantize-dequantize) float32 values. Activation quantizer parameters are extra\n"+
			"`<module>.input_scale` / `input_zero_point` tensors that CLIP loaders ignore.\n\n")
	case b.packed:
		fmt.Fprintf(&w, "Format: **compressed-tensors, pack-quantized**. Quantized weights are packed into int32\n"+
			"(`<module>.weight_packed`, `<module>.weight_shape`) with `weight_scale` (and `weight_zero_point`).\n\n")
	default:
		fmt.Fprintf(&w, "Format: **compressed-tensors, int-quantized**. Quantized weights are int8 `<module>.weight`\n"+
			"with `weight_scale` (and `weight_zero_point`); dequantize as `(q - zero_point) * scale`.\n\n")
	}
	fmt.Fprintf(&w, "`%s` describes every quantized site exactly; `qatclip embed --model THIS_FOLDER` reloads\n"+
		"the model and reproduces the fake-quantized model's embeddings.\n\n", QuantFileName)

	fmt.Fprintf(&w, "## Quantized sites\n\n| module | site | scheme | stored |\n|---|---|---|---|\n")
	for _, s := range b.qf.Sites {
		c := s.Config
		stored := "dynamic (no stored parameters)"
		if s.Scale != "" {
			stored = "`" + s.Scale + "`"
			if s.ZeroPoint != "" {
				stored += ", `" + s.ZeroPoint + "`"
			}
		} else if s.Site == layers.SiteWeight.String() {
			stored = "dequantized float32"
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s |\n", s.Module, s.Site, recipes.Describe(&c), stored)
	}
	fmt.Fprintln(&w)

	if len(eval) > 0 {
		fmt.Fprintf(&w, "## Reliability (last evaluation of the run)\n\n| metric | value |\n|---|---|\n")
		for _, k := range sortedKeys(eval) {
			fmt.Fprintf(&w, "| %s | %.4f |\n", k, eval[k])
		}
		fmt.Fprintln(&w)
	}

	fmt.Fprintf(&w, "## Size\n\n| tower | float32 bytes | export bytes | ratio |\n|---|---|---|---|\n")
	for _, t := range b.report.Towers {
		ratio := 0.0
		if t.ExportBytes > 0 {
			ratio = float64(t.FloatBytes) / float64(t.ExportBytes)
		}
		fmt.Fprintf(&w, "| %s | %d | %d | %.2fx |\n", t.Tower, t.FloatBytes, t.ExportBytes, ratio)
	}
	fmt.Fprintln(&w)

	if plan != nil && plan.Recipe != nil {
		y, err := plan.Recipe.Marshal()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&w, "## Recipe\n\n```yaml\n%s```\n", y)
	}
	return []byte(w.String()), nil
}
