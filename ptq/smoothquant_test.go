package ptq

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// plantOutliers scales channels of every LayerNorm feeding q/k/v and fc1
// by k and the matching weight columns by 1/k: the float model computes the
// same function, but those Linears' inputs get outlier channels, as large
// CLIPs have.
func plantOutliers(t *testing.T, ctx *context.Context, cfg clip.Config, channels []int, k float32) {
	t.Helper()
	for _, g := range SmoothGroups(cfg) {
		for _, name := range []string{"weight", "bias"} {
			v, d, err := readVar(ctx, ctx.In(g.Norm).Scope(), name)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range channels {
				v[c] *= k
			}
			if err := writeVar(ctx, ctx.In(g.Norm).Scope(), name, v, d); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range g.Linears {
			w, d, err := readVar(ctx, ctx.In(m).Scope(), "weight")
			if err != nil {
				t.Fatal(err)
			}
			for r := range d[0] {
				for _, c := range channels {
					w[r*d[1]+c] /= k
				}
			}
			if err := writeVar(ctx, ctx.In(m).Scope(), "weight", w, d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// smoothedInputs lists the Linears whose inputs SmoothQuant changes.
func smoothedInputs(cfg clip.Config) []string {
	var out []string
	for _, g := range SmoothGroups(cfg) {
		out = append(out, g.Linears[0])
	}
	return out
}

// quantError calibrates W8A8 min-max on ctx and returns the mean relative
// activation quantization error at the smoothed Linears' inputs and the
// embeddings.
func quantError(t *testing.T, b backends.Backend, ctx *context.Context, cfg clip.Config, d Data) (float64, []float32, []float32) {
	t.Helper()
	r, err := recipes.Load("w8a8-minmax-ptq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hook, _, err := clip.QuantHook(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := clip.NewEmbedder(b, ctx, cfg, hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := Calibrate(ctx, e, d, 8, 4); err != nil {
		t.Fatal(err)
	}
	mods := smoothedInputs(cfg)
	errs, err := ActivationError(b, ctx, cfg, hook, mods, d, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, m := range mods {
		sum += errs[m]
	}
	img, txt := embedAll(t, b, ctx, cfg, hook, d)
	return sum / float64(len(mods)), img, txt
}

// TestSmoothQuantPlantedOutliers checks that SmoothQuant leaves the float
// model's function unchanged and measurably lowers the activation
// quantization error of a model with planted activation outliers.
func TestSmoothQuantPlantedOutliers(t *testing.T) {
	b := newBackend(t)
	dir := fixture(t)
	channels := []int{1, 6}
	const k = 50

	ck, plain, d := loadModel(t, dir)
	cfg := ck.Config
	plantOutliers(t, plain, cfg, channels, k)
	floatImg, floatTxt := embedAll(t, b, plain, cfg, nil, d)

	_, smooth, _ := loadModel(t, dir)
	plantOutliers(t, smooth, cfg, channels, k)
	factors, err := SmoothQuant(b, smooth, cfg, 0.5, d, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(factors) != len(SmoothGroups(cfg)) {
		t.Fatalf("%d groups smoothed, want %d", len(factors), len(SmoothGroups(cfg)))
	}
	for v := range smooth.IterVariables() {
		if v.Name() == "absmax" {
			t.Fatalf("statistics variable %s left in the context", v.ScopeAndName())
		}
	}
	// The float function is unchanged (up to float rounding).
	sImg, sTxt := embedAll(t, b, smooth, cfg, nil, d)
	scale := 0.0
	for _, v := range append(append([]float32(nil), floatImg...), floatTxt...) {
		scale = max(scale, math.Abs(float64(v)))
	}
	if diff := max(maxAbs(sImg, floatImg), maxAbs(sTxt, floatTxt)); diff > 1e-4*scale {
		t.Errorf("smoothing changed the float model's embeddings by %g (scale %g)", diff, scale)
	}

	before, qImg0, qTxt0 := quantError(t, b, plain, cfg, d)
	after, qImg1, qTxt1 := quantError(t, b, smooth, cfg, d)
	t.Logf("mean relative activation quantization error at q_proj/fc1 inputs: %.3g without SmoothQuant, %.3g with (%.1fx lower)", before, after, before/after)
	t.Logf("min cosine to float: image %.5f -> %.5f, text %.5f -> %.5f",
		minCosine(qImg0, floatImg, cfg.ProjectionDim), minCosine(qImg1, floatImg, cfg.ProjectionDim),
		minCosine(qTxt0, floatTxt, cfg.ProjectionDim), minCosine(qTxt1, floatTxt, cfg.ProjectionDim))
	if !(after < before/2) {
		t.Errorf("SmoothQuant error %.3g, without %.3g: want at least 2x lower", after, before)
	}
}

func TestSmoothFactors(t *testing.T) {
	s := SmoothFactors([]float32{4, 0, 9, 1}, []float32{1, 2, 0, 1e-12}, 0.5)
	want := []float32{2, 1, 1, 1e6}
	for i := range s {
		if math.Abs(float64(s[i]-want[i])) > 1e-3*float64(want[i]) {
			t.Errorf("s[%d] = %g, want %g", i, s[i], want[i])
		}
	}
	if s := SmoothFactors([]float32{1e-12}, []float32{1e6}, 0.5); s[0] != minSmoothScale {
		t.Errorf("tiny factor %g, want the floor %g", s[0], minSmoothScale)
	}
	if _, err := SmoothQuant(nil, nil, clip.Config{}, 1.5, Data{}, 1, 1); err == nil {
		t.Error("alpha 1.5: no error")
	}
}
