package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/export"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
)

// runQatclip runs one subcommand (ptq, export or embed) with args on the
// pure-Go backend and returns its combined output and error.
func runQatclip(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newRootCmd, args...)
}

// fixtureModel is the small HF model committed with layers/clip.
func fixtureModel(t *testing.T) string {
	return filepath.Join(testutil.RepoRoot(t), "layers", "clip", "testdata", "hf-gelu-sharded")
}

// TestPtqExportEmbed runs ptq, export (both formats, packed too) and embed
// on the run and on each export: the embeddings agree.
func TestPtqExportEmbed(t *testing.T) {
	model := fixtureModel(t)
	tmp := t.TempDir()
	run := filepath.Join(tmp, "run")
	pix, ids := filepath.Join(model, "pixel_values.npy"), filepath.Join(model, "input_ids.npy")
	log, err := runQatclip(t, "ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", run,
		"--calib-pixels", pix, "--calib-input-ids", ids, "--batch-size", "4", "--set", "smoothquant.alpha=0.5")
	if err != nil {
		t.Fatalf("ptq: %v\n%s", err, log)
	}
	for _, want := range []string{"smoothquant: alpha 0.5", "fidelity: image embeddings mean cosine", "wrote run"} {
		if !strings.Contains(log, want) {
			t.Errorf("ptq log lacks %q:\n%s", want, log)
		}
	}
	exports := map[string][]string{
		"ct": nil,
		"fq": {"--format", "fake-quant-f32"},
		"pk": {"--pack-int4"},
	}
	for name, extra := range exports {
		out, err := runQatclip(t, append([]string{"export", "--run", run, "--out", filepath.Join(tmp, name)}, extra...)...)
		if err != nil {
			t.Fatalf("export %s: %v\n%s", name, err, out)
		}
		if !strings.Contains(out, "total") || !strings.Contains(out, "vision") {
			t.Errorf("export %s: no size report:\n%s", name, out)
		}
	}
	embedOut := func(model string) string {
		t.Helper()
		dir := filepath.Join(tmp, "emb-"+filepath.Base(model))
		if log, err := runQatclip(t, "embed", "--model", model, "--pixels", pix, "--input-ids", ids, "--out", dir); err != nil {
			t.Fatalf("embed %s: %v\n%s", model, err, log)
		}
		return dir
	}
	ref := embedOut(run)
	for name := range exports {
		got := embedOut(filepath.Join(tmp, name))
		for _, f := range []string{"image_features.npy", "text_features.npy", "logits_per_image.npy"} {
			compareNpy(t, filepath.Join(got, f), filepath.Join(ref, f), 1e-5)
		}
	}
	// The float model differs: the comparison can fail.
	float := embedOut(model)
	if d := npyMaxDiff(t, filepath.Join(float, "image_features.npy"), filepath.Join(ref, "image_features.npy")); d <= 1e-5 {
		t.Errorf("the quantized run's image features equal the float model's (diff %g)", d)
	}
}

// readNpyFloat reads a float .npy file.
func readNpyFloat(t *testing.T, path string) []float32 {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// npyMaxDiff returns the max abs difference of two float .npy files.
func npyMaxDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	x := readNpyFloat(t, a)
	y := readNpyFloat(t, b)
	m := 0.0
	for i := range x {
		d := float64(x[i] - y[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// TestPtqDataset calibrates the vision tower on an Arrow dataset (--calib).
func TestPtqDataset(t *testing.T) {
	model := fixtureModel(t)
	ds := filepath.Join(testutil.RepoRoot(t), "data", "testdata", "datasets", "shapes-tiny.feather")
	run := filepath.Join(t.TempDir(), "run")
	log, err := runQatclip(t, "ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", run,
		"--calib", ds, "--calib-batches", "2", "--batch-size", "4",
		"--set", `quantization.targets=['re:^vision_model\..*', 'visual_projection']`)
	if err != nil {
		t.Fatalf("ptq --calib: %v\n%s", err, log)
	}
	if !strings.Contains(log, "calibration: 5 images") {
		t.Errorf("log:\n%s", log)
	}
	if _, err := export.LoadRun(run); err != nil {
		t.Fatal(err)
	}
}

// TestPtqExportErrors checks the one-line errors of bad ptq and export
// invocations.
func TestPtqExportErrors(t *testing.T) {
	model := fixtureModel(t)
	tmp := t.TempDir()
	pix := filepath.Join(model, "pixel_values.npy")
	ids := filepath.Join(model, "input_ids.npy")
	run := filepath.Join(tmp, "run")
	if log, err := runQatclip(t, "ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", run,
		"--calib-pixels", pix, "--calib-input-ids", ids, "--batch-size", "4"); err != nil {
		t.Fatalf("ptq: %v\n%s", err, log)
	}
	floatRun := filepath.Join(tmp, "float-run")
	existing := t.TempDir()
	// A run folder whose recipe quantizes nothing (as a float fine-tune
	// would leave).
	noQuant := filepath.Join(tmp, "no-quant-run")
	{
		ck, err := clip.Load(model)
		if err != nil {
			t.Fatal(err)
		}
		root := context.New()
		if err := ck.SetVariables(root.In(export.ModelScope)); err != nil {
			t.Fatal(err)
		}
		r, err := recipes.Load("w8a8-minmax-ptq", "model.source="+model,
			"quantization.default.weights.method=none", "quantization.default.activations.method=none")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := export.WriteRun(noQuant, r, ck.Config, root, train.Manifest{}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"ptq no data", []string{"ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", filepath.Join(tmp, "x")}, "no calibration data"},
		{"ptq no texts", []string{"ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", filepath.Join(tmp, "y"), "--calib-pixels", pix}, "no calibration texts"},
		{"ptq existing", []string{"ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", run, "--calib-pixels", pix}, "already exists"},
		{"ptq nothing quantized", []string{"ptq", "--recipe", "w8a8-minmax-ptq", "--model", model, "--out", floatRun, "--calib-pixels", pix,
			"--set", "quantization.default.weights.method=none", "--set", "quantization.default.activations.method=none"}, "quantizes no layer"},
		{"export unknown format", []string{"export", "--run", run, "--out", filepath.Join(tmp, "e1"), "--format", "gguf"}, `unknown --format "gguf"`},
		{"export existing", []string{"export", "--run", run, "--out", existing}, "already exists (pass --force"},
		{"export not a run", []string{"export", "--run", model, "--out", filepath.Join(tmp, "e2")}, "no valid checkpoint"},
		{"export run without quantizers", []string{"export", "--run", noQuant, "--out", filepath.Join(tmp, "e4")}, "has no quantizers"},
		{"export no run", []string{"export", "--out", filepath.Join(tmp, "e3")}, "--run is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log, err := runQatclip(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q\n%s", err, c.want, log)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}
	if _, err := os.Stat(floatRun); err == nil {
		t.Errorf("a failed ptq left %s behind", floatRun)
	}
}
