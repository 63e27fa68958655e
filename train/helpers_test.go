package train

import (
	"bufio"
	"encoding/json"
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// tinyConfig is a small random CLIP for fast training tests.
func tinyConfig() clip.Config {
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 16, IntermediateSize: 24, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 8, PatchSize: 4, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: 50, HiddenSize: 16, IntermediateSize: 24, NumAttentionHeads: 2, NumHiddenLayers: 1,
		MaxPositionEmbeddings: 6, HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: 48, EosTokenID: 49}
	cfg.ProjectionDim = 8
	return cfg
}

// clipTinyConfig has the sizes of shared/golden/clip-tiny.
func clipTinyConfig() clip.Config {
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 128, IntermediateSize: 512, NumAttentionHeads: 2, NumHiddenLayers: 2,
		ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: 1000, HiddenSize: 64, IntermediateSize: 256, NumAttentionHeads: 4, NumHiddenLayers: 2,
		MaxPositionEmbeddings: 16, HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: 998, EosTokenID: 999, PadTokenID: 1}
	cfg.ProjectionDim = 32
	return cfg
}

// randomCheckpoint returns random weights for cfg.
func randomCheckpoint(cfg clip.Config, seed uint64) *clip.Checkpoint {
	return clip.NewRandomCheckpoint(cfg, seed)
}

// randomExamples returns n random images and token sequences for cfg
// (BOS, random tokens, EOS, padding) and labels in [0, classes).
func randomExamples(cfg clip.Config, n, classes int, seed uint64) (pixels []float32, ids []int32, labels []int32) {
	r := rand.New(rand.NewPCG(seed, 11))
	v, t := cfg.Vision, cfg.Text
	pixels = make([]float32, n*v.NumChannels*v.ImageSize*v.ImageSize)
	for i := range pixels {
		pixels[i] = float32(r.NormFloat64())
	}
	l := t.MaxPositionEmbeddings
	ids = make([]int32, n*l)
	for i := range n {
		row := ids[i*l : (i+1)*l]
		row[0] = int32(t.BosTokenID)
		k := 1 + r.IntN(l-2)
		for j := 1; j <= k; j++ {
			row[j] = int32(2 + r.IntN(t.VocabSize-4))
		}
		row[k+1] = int32(t.EosTokenID)
	}
	labels = make([]int32, n)
	for i := range labels {
		labels[i] = int32(r.IntN(max(classes, 1)))
	}
	return pixels, ids, labels
}

// memData wraps randomExamples in a MemoryData.
func memData(t testing.TB, cfg clip.Config, n, batch int, shuffle bool, seed uint64) *MemoryData {
	t.Helper()
	pixels, ids, labels := randomExamples(cfg, n, 4, seed)
	d, err := NewMemoryData(pixels, ids, labels, n, batch, seed, shuffle)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// randomHead returns a random row-normalised [classes, d] head.
func randomHead(classes, d int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 13))
	h := make([]float32, classes*d)
	for c := range classes {
		row := h[c*d : (c+1)*d]
		norm := 0.0
		for i := range row {
			x := r.NormFloat64()
			row[i] = float32(x)
			norm += x * x
		}
		for i := range row {
			row[i] /= float32(math.Sqrt(norm))
		}
	}
	return h
}

// goBackend opens the pure-Go backend.
func goBackend(t testing.TB) backends.Backend {
	return testbackend.Go(t)
}

// Recipe fragments for tests.
const (
	floatQuant = `quantization:
  default:
    weights: {method: none}
    activations: {method: none}
`
	lsqQuant = `quantization:
  default:
    weights: {method: lsq, bits: 8, symmetric: true, granularity: per-channel}
    activations: {method: lsq, bits: 8, symmetric: true, granularity: per-tensor}
  schedule: {calibration_batches: 1}
`
)

// parseRecipe parses recipe YAML with overrides.
func parseRecipe(t testing.TB, yaml string, overrides ...string) *recipes.Recipe {
	t.Helper()
	r, err := recipes.Parse("test.yaml", []byte(yaml), overrides...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readMetrics returns the step records of a run's metrics.jsonl as maps.
func readMetrics(t testing.TB, dir string) (steps, epochs []map[string]any) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", sc.Text(), err)
		}
		if _, ok := m["eval"]; ok {
			epochs = append(epochs, m)
		} else {
			steps = append(steps, m)
		}
	}
	return steps, epochs
}

// variableValues returns the float32 values of every variable of ctx under
// the given scopes, keyed by scope and name.
func variableValues(t testing.TB, ctx *context.Context, scopes ...string) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		ok := false
		for _, s := range scopes {
			p := context.RootScope + s
			if v.Scope() == p || strings.HasPrefix(v.Scope(), p+context.ScopeSeparator) {
				ok = true
			}
		}
		if !ok {
			continue
		}
		val, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](val)
	}
	return out
}

// newTrainer builds a trainer, failing the test on error.
func newTrainer(t testing.TB, opts Options) *Trainer {
	t.Helper()
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// sameVariables fails the test unless got and want (variableValues of a
// resumed and of a straight run) hold the same variables with bit-identical
// values.
func sameVariables(t *testing.T, got, want map[string][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d variables after resume, %d in the straight run", len(got), len(want))
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s differs after resume", name)
		}
	}
}
