package ptq

import (
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

func newBackend(t testing.TB) backends.Backend {
	return testbackend.Go(t)
}

// loadModel loads a model folder into a new context and reads its
// pixel_values.npy and input_ids.npy.
func loadModel(t testing.TB, dir string) (*clip.Checkpoint, *context.Context, Data) {
	t.Helper()
	ck, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := npy.ReadFile(filepath.Join(dir, "pixel_values.npy"))
	if err != nil {
		t.Fatal(err)
	}
	i, err := npy.ReadFile(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	d := Data{N: p.Shape[0], M: i.Shape[0], L: i.Shape[1]}
	if d.Pixels, err = p.Float32(); err != nil {
		t.Fatal(err)
	}
	if d.IDs, err = i.Int32(); err != nil {
		t.Fatal(err)
	}
	return ck, ctx, d
}

func embedAll(t testing.TB, b backends.Backend, ctx *context.Context, cfg clip.Config, hook layers.Hook, d Data) (img, txt []float32) {
	t.Helper()
	e, err := clip.NewEmbedder(b, ctx, cfg, hook)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = e.ImageFeatures(d.Pixels, d.N, 8); err != nil {
		t.Fatal(err)
	}
	if txt, err = e.TextFeatures(d.IDs, d.M, d.L, 8); err != nil {
		t.Fatal(err)
	}
	return img, txt
}

// minCosine returns the smallest cosine similarity of matching rows.
func minCosine(a, b []float32, d int) float64 {
	m := 1.0
	for i := 0; i < len(a)/d; i++ {
		var ab, aa, bb float64
		for j := range d {
			x, y := float64(a[i*d+j]), float64(b[i*d+j])
			ab, aa, bb = ab+x*y, aa+x*x, bb+y*y
		}
		m = min(m, ab/math.Sqrt(aa*bb))
	}
	return m
}

// TestPTQW8A8MinMax calibrates the shipped W8A8 min-max PTQ recipe on
// clip-tiny and checks every embedding keeps cosine >= 0.99 to float.
func TestPTQW8A8MinMax(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "clip-tiny")
	b := newBackend(t)
	ck, ctx, d := loadModel(t, dir)
	cfg := ck.Config
	fImg, fTxt := embedAll(t, b, ctx, cfg, nil, d)
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
	if err := Calibrate(ctx, e, d, 4, r.Quantization.Schedule.CalibrationBatches); err != nil {
		t.Fatal(err)
	}
	qImg, qTxt := embedAll(t, b, ctx, cfg, hook, d)
	ci, ct := minCosine(qImg, fImg, cfg.ProjectionDim), minCosine(qTxt, fTxt, cfg.ProjectionDim)
	t.Logf("W8A8 minmax PTQ on clip-tiny: min cosine to float: image %.5f, text %.5f", ci, ct)
	if ci < 0.99 || ct < 0.99 {
		t.Errorf("min cosine image %.5f, text %.5f; want >= 0.99", ci, ct)
	}
	if max(maxAbs(qImg, fImg), maxAbs(qTxt, fTxt)) == 0 {
		t.Error("quantized embeddings equal the float ones: nothing was quantized")
	}
}

func maxAbs(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestCalibrateErrors(t *testing.T) {
	if err := Calibrate(nil, nil, Data{}, 4, 1); err == nil {
		t.Error("no data: no error")
	}
	if err := Calibrate(nil, nil, Data{N: 1}, 0, 1); err == nil {
		t.Error("batch 0: no error")
	}
}

func TestTakeAndChunks(t *testing.T) {
	cases := []struct{ n, batch, batches, rows, size int }{
		{10, 4, 2, 8, 4}, {10, 4, 5, 10, 4}, {3, 8, 2, 3, 3}, {0, 4, 1, 0, 0},
	}
	for _, c := range cases {
		rows, size := take(c.n, c.batch, c.batches)
		if rows != c.rows || size != c.size {
			t.Errorf("take(%d, %d, %d) = %d, %d; want %d, %d", c.n, c.batch, c.batches, rows, size, c.rows, c.size)
		}
	}
	var calls [][3]int
	_ = chunks(10, 4, func(s, r, b int) error { calls = append(calls, [3]int{s, r, b}); return nil })
	if len(calls) != 2 || calls[0] != [3]int{0, 8, 4} || calls[1] != [3]int{8, 2, 2} {
		t.Errorf("chunks(10, 4) = %v", calls)
	}
}

// fixture returns the committed fixture model folder.
func fixture(t testing.TB) string {
	dir := filepath.Join(testutil.RepoRoot(t), "layers", "clip", "testdata", "hf-gelu-sharded")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
