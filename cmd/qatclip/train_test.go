package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/train"
)

// trainFixture writes a tiny random CLIP model folder, a folder of .npy
// training data and a recipe using both; it returns the recipe path.
func trainFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 16, IntermediateSize: 24, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 8, PatchSize: 4, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: 50, HiddenSize: 16, IntermediateSize: 24, NumAttentionHeads: 2, NumHiddenLayers: 1,
		MaxPositionEmbeddings: 6, HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: 48, EosTokenID: 49}
	cfg.ProjectionDim = 8
	ck := clip.NewRandomCheckpoint(cfg, 1)
	r := rand.New(rand.NewPCG(1, 2))
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model")
	if err := clip.SaveHF(ctx, cfg, model); err != nil {
		t.Fatal(err)
	}
	const n = 16
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	pixels := make([]float32, n*3*8*8)
	for i := range pixels {
		pixels[i] = float32(r.NormFloat64())
	}
	ids := make([]int64, n*6)
	labels := make([]int64, n)
	for i := range n {
		ids[i*6], ids[i*6+1], ids[i*6+2], ids[i*6+3] = 48, int64(2+r.IntN(40)), int64(2+r.IntN(40)), 49
		labels[i] = int64(i % 3)
	}
	for name, a := range map[string]npy.Array{
		"pixel_values.npy": {Shape: []int{n, 3, 8, 8}, Data: pixels},
		"input_ids.npy":    {Shape: []int{n, 6}, Data: ids},
		"labels.npy":       {Shape: []int{n}, Data: labels},
	} {
		if err := npy.WriteFile(filepath.Join(data, name), a); err != nil {
			t.Fatal(err)
		}
	}
	recipe := filepath.Join(dir, "recipe.yaml")
	yaml := `name: tiny-lsq
model: {source: ` + model + `}
quantization:
  default:
    weights: {method: lsq, bits: 8, symmetric: true, granularity: per-channel}
    activations: {method: lsq, bits: 8, symmetric: true}
  schedule: {calibration_batches: 1}
train:
  data: {path: ` + data + `}
  epochs: 2
  batch_size: 4
  optimizer: {lr: 1e-3}
  loss: {contrastive: 1.0, distill: {weight: 1.0}}
  checkpoint: {every_steps: 2, keep: 2}
`
	if err := os.WriteFile(recipe, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return recipe
}

// runTrainCmd runs `qatclip train args...` and returns its log and error.
func runTrainCmd(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newTrainCmd, args...)
}

func TestTrainCommand(t *testing.T) {
	recipe := trainFixture(t)
	run := filepath.Join(t.TempDir(), "run")
	log, err := runTrainCmd(t, "--recipe", recipe, "--out", run, "--backend", "go", "--log-every", "1", "--max-steps", "3")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	if !strings.HasPrefix(log, "backend: go") || !strings.Contains(log, "stopped after step 3") {
		t.Errorf("log:\n%s", log)
	}
	// Without --resume the run folder is refused.
	if _, err := runTrainCmd(t, "--recipe", recipe, "--out", run, "--backend", "go"); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run without --resume: %v", err)
	}
	log, err = runTrainCmd(t, "--recipe", recipe, "--out", run, "--backend", "go", "--resume", "--set", "train.epochs=2")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	t.Logf("resume log:\n%s", log)
	if !strings.Contains(log, "resuming from "+filepath.Join(run, "checkpoints", "step-00000002")) || !strings.Contains(log, "done: 8 steps, 2 epochs") {
		t.Errorf("resume log:\n%s", log)
	}
	for _, f := range []string{"recipe.yaml", "metrics.jsonl", "model/config.json", "model/model.safetensors", "checkpoints/step-00000008/manifest.json"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("run folder lacks %s: %v", f, err)
		}
	}
	// The saved model loads, with quantizer state beside the weights.
	ck, err := clip.Load(filepath.Join(run, "model"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(ck.Unused, " "), "text_projection.weight_quant.scale") {
		t.Errorf("saved model lacks quantizer state; extra tensors: %v", ck.Unused)
	}
	if _, err := os.Stat(filepath.Join(run, train.LockFile)); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

func TestTrainCommandErrors(t *testing.T) {
	recipe := trainFixture(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--out", "x"}, "--recipe is required"},
		{[]string{"--recipe", recipe}, "--out is required"},
		{[]string{"--recipe", recipe, "--out", t.TempDir(), "--set", "train.data.path="}, "train.data.path is empty"},
		{[]string{"--recipe", recipe, "--out", t.TempDir(), "--set", "train.data.path=" + t.TempDir()}, "no pixel_values.npy"},
		{[]string{"--recipe", recipe, "--out", t.TempDir(), "--set", "train.batch_size=64"}, "larger than the 16 examples"},
		{[]string{"--recipe", recipe, "--out", t.TempDir(), "--set", "train.loss.classification=1"}, "class_embeddings.npy"},
	}
	for _, c := range cases {
		_, err := runTrainCmd(t, append(c.args, "--backend", "go")...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	// A run folder locked by another trainer is refused.
	run := t.TempDir()
	lock, err := train.LockRun(run)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := runTrainCmd(t, "--recipe", recipe, "--out", run, "--backend", "go"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("locked run folder: %v", err)
	}
}
