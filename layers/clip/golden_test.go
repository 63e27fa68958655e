package clip

import (
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// newBackend returns the pure-Go backend for tests, running one op at a
// time as internal/backend configures it (the stock scheduler can deadlock
// when several DotGeneral ops run at once).
func newBackend(t testing.TB) backends.Backend {
	return testbackend.Go(t)
}

// readNpy reads a .npy file as float32 (or int32 for integer arrays).
func readNpy(t testing.TB, path string) npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// readGoldenInputs reads the model inputs of a golden folder: n images
// (pixel_values.npy) and m token sequences of l ids (input_ids.npy).
func readGoldenInputs(t testing.TB, dir string) (pixels []float32, ids []int32, n, m, l int) {
	t.Helper()
	pix := readNpy(t, filepath.Join(dir, "pixel_values.npy"))
	pixels, err := pix.Float32()
	if err != nil {
		t.Fatal(err)
	}
	tok := readNpy(t, filepath.Join(dir, "input_ids.npy"))
	if ids, err = tok.Int32(); err != nil {
		t.Fatal(err)
	}
	return pixels, ids, pix.Shape[0], tok.Shape[0], tok.Shape[1]
}

func maxAbsDiff(t testing.TB, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	m := 0.0
	for i := range got {
		m = max(m, math.Abs(float64(got[i])-float64(want[i])))
	}
	return m
}

// checkParity embeds the pixels and input ids of dir with the model in
// modelPath and compares with the reference features and logits.
func checkParity(t *testing.T, modelPath, dir string, tol float64, batch int) {
	ck, err := Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := NewEmbedder(newBackend(t), ctx, ck.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	pf, idv, n, m, l := readGoldenInputs(t, dir)
	img, err := e.ImageFeatures(pf, n, batch)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := e.TextFeatures(idv, m, l, batch)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.LogitsPerImage(img, n, txt, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		got  []float32
	}{{"image_features.npy", img}, {"text_features.npy", txt}, {"logits_per_image.npy", logits}} {
		want, err := readNpy(t, filepath.Join(dir, c.file)).Float32()
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(t, c.got, want); d > tol {
			t.Errorf("%s: max abs error %.3g > %.3g", c.file, d, tol)
		} else {
			t.Logf("%s: max abs error %.3g", c.file, d)
		}
	}
}

func TestGoldenClipTiny(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "clip-tiny")
	for _, batch := range []int{64, 2} {
		checkParity(t, dir, dir, 1e-4, batch)
	}
}

// TestFixtureParity checks the models of testdata (made by
// testdata/gen_fixtures.py with a torch reference written after
// openai/CLIP's model.py) against their reference outputs.
func TestFixtureParity(t *testing.T) {
	for _, c := range []struct {
		name, model, dir string
		layout           Layout
	}{
		{"hf-gelu-sharded", "testdata/hf-gelu-sharded", "testdata/hf-gelu-sharded", LayoutHF},
		{"hf-gelu-sharded/index", "testdata/hf-gelu-sharded/model.safetensors.index.json", "testdata/hf-gelu-sharded", LayoutHF},
		{"openai-f16", "testdata/openai-f16", "testdata/openai-f16", LayoutOpenAI},
		{"openai-f16/file", "testdata/openai-f16/model.safetensors", "testdata/openai-f16", LayoutOpenAI},
	} {
		t.Run(c.name, func(t *testing.T) {
			ck, err := Load(c.model)
			if err != nil {
				t.Fatal(err)
			}
			if ck.Layout != c.layout {
				t.Errorf("layout %q, want %q", ck.Layout, c.layout)
			}
			wantUnused := []string(nil)
			if c.layout == LayoutHF {
				wantUnused = []string{"text_model.embeddings.position_ids"}
			}
			if !slices.Equal(ck.Unused, wantUnused) {
				t.Errorf("unused tensors %v, want %v", ck.Unused, wantUnused)
			}
			checkParity(t, c.model, c.dir, 1e-4, 2)
		})
	}
}
