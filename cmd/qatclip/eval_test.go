package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
)

// runEvalCmd runs `qatclip eval args...` on the pure-Go backend and
// returns its log and error.
func runEvalCmd(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newEvalCmd, args...)
}

// evalFixture writes a tiny random CLIP (32-pixel images, the fixture
// tokenizer's vocabulary) and the synthetic shapes DatasetDict; it returns
// the model folder, the data folder and the vocabulary file.
func evalFixture(t *testing.T) (model, shapes, vocab string) {
	t.Helper()
	dir := t.TempDir()
	vocab = filepath.Join(testutil.RepoRoot(t), "data", "tokenizer", "testdata", "fixture_merges.txt.gz")
	tok, err := tokenizer.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 32, IntermediateSize: 64, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumAttentionHeads: 2,
		NumHiddenLayers: 1, MaxPositionEmbeddings: 24, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
		BosTokenID: tok.StartID(), EosTokenID: tok.EndID()}
	cfg.ProjectionDim = 16
	ck := clip.NewRandomCheckpoint(cfg, 3)
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	model = filepath.Join(dir, "model")
	if err := clip.SaveHF(ctx, cfg, model); err != nil {
		t.Fatal(err)
	}
	shapes = filepath.Join(dir, "shapes")
	if _, err := data.SynthShapesDataset(shapes, data.SynthOptions{N: 16, TestN: 60, OODN: 40, Size: 32, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return model, shapes, vocab
}

// TestEvalCommand evaluates a W8A8 fake-quantized tiny model against its
// float baseline on the synthetic shapes, with both corruptions.
func TestEvalCommand(t *testing.T) {
	model, shapes, vocab := evalFixture(t)
	out := filepath.Join(t.TempDir(), "report")
	cache := t.TempDir()
	log, err := runEvalCmd(t, "--model", model, "--recipe", "w8a8-minmax-ptq.yaml", "--baseline", model,
		"--id", shapes, "--split", "test", "--ood", "ood-shapes="+shapes, "--ood-split", "ood-shapes=ood",
		"--vocab", vocab, "--templates", "simple", "--noise", "0.3", "--jpeg", "20", "--batch-size", "16",
		"--cache-dir", cache, "--out", out)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, log)
	}
	t.Logf("log:\n%s", log)
	for _, s := range []string{"backend: go", "calibrated on 60 ID images", "w8a8-minmax-ptq: acc1", "wrote " + out} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q", s)
		}
	}
	if !strings.HasPrefix(log, "backend:") {
		t.Errorf("the first log line does not name the backend")
	}
	for _, f := range []string{"report.json", "report.md", "reliability.png", "confidence_hist.png", "risk_coverage.png",
		"roc.png", "spectrum.png", "ood_hist_ood-shapes.png", "ood_hist_ood-shapes_float.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var rep struct {
		Settings struct {
			LogitScaleSource string `json:"logit_scale_source"`
		} `json:"settings"`
		Model struct {
			Label   string            `json:"label"`
			Spectra []json.RawMessage `json:"spectra"`
		} `json:"model"`
		Baseline *struct {
			Label string `json:"label"`
		} `json:"baseline"`
		Extra []struct {
			Label string `json:"label"`
		} `json:"extra"`
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Model.Label != "w8a8-minmax-ptq" || rep.Baseline == nil || rep.Baseline.Label != "float" || len(rep.Extra) != 4 || len(rep.Model.Spectra) != 2 {
		t.Errorf("report: model %q, baseline %+v, %d extra columns, %d spectra", rep.Model.Label, rep.Baseline, len(rep.Extra), len(rep.Model.Spectra))
	}
	if !strings.Contains(rep.Settings.LogitScaleSource, "model exp(logit_scale)") {
		t.Errorf("logit scale source %q", rep.Settings.LogitScaleSource)
	}
	// The float head is cached: a second run with a fixed scale reads it.
	log, err = runEvalCmd(t, "--model", model, "--id", shapes, "--split", "test", "--vocab", vocab, "--templates", "simple",
		"--logit-scale", "100", "--batch-size", "16", "--cache-dir", cache, "--out", out)
	if err != nil {
		t.Fatalf("second eval: %v\n%s", err, log)
	}
	if !strings.Contains(log, "read from cache") {
		t.Errorf("second run did not use the cached head:\n%s", log)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "Logit scale: 100 (fixed") {
		t.Errorf("report.md does not state the fixed logit scale:\n%s", md)
	}
}

// TestEvalRunDir trains a tiny run for one epoch and evaluates its newest
// checkpoint with the run's quantizers.
func TestEvalRunDir(t *testing.T) {
	model, shapes, vocab := evalFixture(t)
	dir := t.TempDir()
	// Training data: 8 random images and captions as .npy arrays.
	const n, l = 8, 24
	r := rand.New(rand.NewPCG(5, 6))
	pixels := make([]float32, n*3*32*32)
	for i := range pixels {
		pixels[i] = float32(r.NormFloat64())
	}
	tok, err := tokenizer.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tok.Tokenize([]string{"a red circle", "a blue square", "a green star", "a red triangle",
		"a blue heart", "a green circle", "a red square", "a blue star"}, tokenizer.Options{ContextLength: l})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 0, n*l)
	for _, row := range rows {
		for _, id := range row {
			ids = append(ids, int64(id))
		}
	}
	trainData := filepath.Join(dir, "data")
	os.MkdirAll(trainData, 0o755)
	for name, a := range map[string]npy.Array{
		"pixel_values.npy": {Shape: []int{n, 3, 32, 32}, Data: pixels},
		"input_ids.npy":    {Shape: []int{n, l}, Data: ids},
	} {
		if err := npy.WriteFile(filepath.Join(trainData, name), a); err != nil {
			t.Fatal(err)
		}
	}
	recipe := filepath.Join(dir, "recipe.yaml")
	yaml := "name: tiny-lsq\nmodel: {source: " + model + "}\n" + `quantization:
  default:
    weights: {method: lsq, bits: 8, symmetric: true, granularity: per-channel}
    activations: {method: lsq, bits: 8, symmetric: true}
  schedule: {calibration_batches: 1}
train:
  data: {path: ` + trainData + `}
  epochs: 1
  batch_size: 4
  optimizer: {lr: 1e-3}
  loss: {contrastive: 1.0}
eval:
  id: {path: ` + shapes + `, split: test, templates: simple}
  logit_scale: 100
`
	if err := os.WriteFile(recipe, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if log, err := runTrainCmd(t, "--recipe", recipe, "--out", run, "--backend", "go", "--no-eval"); err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	log, err := runEvalCmd(t, "--model", run, "--vocab", vocab, "--batch-size", "16", "--max-images", "30", "--fit-fraction", "0.2")
	if err != nil {
		t.Fatalf("eval run: %v\n%s", err, log)
	}
	if !strings.Contains(log, "tiny-lsq step 2: acc1") || strings.Contains(log, "calibrated") {
		t.Errorf("log:\n%s", log)
	}
	md, err := os.ReadFile(filepath.Join(run, "eval", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "fitted on 6 of 30 ID images") {
		t.Errorf("report.md:\n%s", md)
	}
	if _, err := os.Stat(filepath.Join(run, ".cache")); err != nil {
		t.Errorf("no head cache in the run folder: %v", err)
	}
}

// TestEvalBadInput checks that each mistake gives one clear line.
func TestEvalBadInput(t *testing.T) {
	model, shapes, vocab := evalFixture(t)
	missing := filepath.Join(t.TempDir(), "nope")
	base := []string{"--model", model, "--vocab", vocab, "--cache-dir", "off", "--out", t.TempDir()}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--id", shapes}, []string{"--model is required"}},
		{base, []string{"no ID set: give --id PATH"}},
		{append(base, "--id", missing), []string{"id set", missing + " does not exist"}},
		{append(base, "--id", shapes, "--split", "test", "--classnames", filepath.Join(missing, "classes.txt")),
			[]string{"class names", "classes.txt: no such file"}},
		{append(base, "--id", shapes, "--split", "test", "--ood", "textures="+missing), []string{`ood set "textures"`, missing + " does not exist"}},
		{append(base, "--id", shapes, "--ood", "textures"), []string{`--ood "textures": want NAME=PATH`}},
		{append(base, "--id", shapes, "--ood-split", "x=y"), []string{"--ood-split"}},
		{append(base, "--id", shapes, "--logit-scale", "big"), []string{`--logit-scale "big"`}},
		{append(base, "--id", shapes, "--split", "test", "--jpeg", "0"), []string{"JPEG quality in [1, 100]"}},
		{append(base, "--recipe", filepath.Join(missing, "r.yaml")), []string{"read recipe"}},
		{[]string{"--model", missing, "--id", shapes, "--vocab", vocab}, []string{"eval:", "nope"}},
	}
	for _, c := range cases {
		_, err := runEvalCmd(t, c.args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("%v: error spans lines: %q", c.args, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: error %q lacks %q", c.args, msg, w)
			}
		}
	}
}

// TestEvalPresetMissingData runs each shipped evaluation preset where its
// data is absent: one line saying what to download, before any model loads.
func TestEvalPresetMissingData(t *testing.T) {
	presets, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "recipes", "eval", "*.yaml"))
	if err != nil || len(presets) == 0 {
		t.Fatalf("no presets: %v", err)
	}
	t.Chdir(t.TempDir())
	for _, p := range presets {
		_, err := runEvalCmd(t, "--model", "no/such-model", "--recipe", p)
		if err == nil || !strings.Contains(err.Error(), "does not exist; download") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with the download hint", filepath.Base(p), err)
		}
	}
}
