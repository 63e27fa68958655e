package clip

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/recipes"
)

// embedWithRecipe embeds the pixels and ids of dir with the model at
// modelPath, fake-quantized by the shipped recipe (with overrides) after
// calibrating on the same inputs; recipe "" runs the float model.
func embedWithRecipe(t *testing.T, modelPath, dir, recipe string, sets ...string) (img, txt []float32, d int) {
	t.Helper()
	ck, err := Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	var hook layers.Hook
	if recipe != "" {
		r, err := recipes.Load(recipe, sets...)
		if err != nil {
			t.Fatal(err)
		}
		qh, _, err := QuantHook(r, ck.Config)
		if err != nil {
			t.Fatal(err)
		}
		hook = qh
	}
	e, err := NewEmbedder(newBackend(t), ctx, ck.Config, hook)
	if err != nil {
		t.Fatal(err)
	}
	pf, idv, n, m, l := readGoldenInputs(t, dir)
	if hook != nil {
		if err := e.Calibrate(pf, n, idv, m, l, 8); err != nil {
			t.Fatal(err)
		}
	}
	if img, err = e.ImageFeatures(pf, n, 8); err != nil {
		t.Fatal(err)
	}
	if txt, err = e.TextFeatures(idv, m, l, 8); err != nil {
		t.Fatal(err)
	}
	return img, txt, ck.Config.ProjectionDim
}

// minCosine returns the smallest cosine similarity between matching rows
// of a and b ([rows, d]).
func minCosine(a, b []float32, d int) float64 {
	lo := 1.0
	for r := 0; r < len(a)/d; r++ {
		var ab, aa, bb float64
		for i := r * d; i < (r+1)*d; i++ {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		lo = min(lo, ab/math.Sqrt(aa*bb))
	}
	return lo
}

// TestQuantizedFidelity checks that a W8A8 min-max fake-quantized CLIP keeps
// embeddings with cosine similarity >= 0.99 to the float model on both
// towers, and that W4A4 (the same recipe at 4 bits) is measurably worse.
func TestQuantizedFidelity(t *testing.T) {
	models := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"fixture-gelu", func(*testing.T) string { return filepath.Join("testdata", "hf-gelu-sharded") }},
		{"clip-tiny", func(t *testing.T) string { return testutil.SharedPath(t, "golden", "clip-tiny") }},
	}
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			mdl := struct{ model, dir string }{m.dir(t), ""}
			mdl.dir = mdl.model
			fImg, fTxt, d := embedWithRecipe(t, mdl.model, mdl.dir, "")
			w8Img, w8Txt, _ := embedWithRecipe(t, mdl.model, mdl.dir, "w8a8-minmax-ptq.yaml")
			w4Img, w4Txt, _ := embedWithRecipe(t, mdl.model, mdl.dir, "w8a8-minmax-ptq.yaml",
				"quantization.default.weights.bits=4", "quantization.default.activations.bits=4")
			w8 := min(minCosine(fImg, w8Img, d), minCosine(fTxt, w8Txt, d))
			w4 := min(minCosine(fImg, w4Img, d), minCosine(fTxt, w4Txt, d))
			t.Logf("min cosine to float: W8A8 %.5f, W4A4 %.5f", w8, w4)
			if w8 < 0.99 {
				t.Errorf("W8A8 min-max: min cosine to float %.5f < 0.99", w8)
			}
			if 1-w4 < 3*(1-w8) {
				t.Errorf("W4A4 (min cosine %.5f) is not measurably worse than W8A8 (%.5f)", w4, w8)
			}
		})
	}
}
