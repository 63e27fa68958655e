package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/train/demo"
)

// runDemoCmd runs `qatclip demo args...` and returns its output and error.
func runDemoCmd(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newDemoCmd, args...)
}

// TestDemoCommandRefusesFolders checks --out handling before any work.
func TestDemoCommandRefusesFolders(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "precious.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--out", full, "--backend", "go"}, "is not empty (pass --force"},
		{[]string{"--out", full, "--backend", "go", "--force"}, "not an earlier demo's output"},
		{[]string{"--out", t.TempDir(), "--backend", "go", "--n", "0"}, "N must be positive"},
		{[]string{"--out", t.TempDir(), "--backend", "nosuch"}, "nosuch"},
	}
	for _, c := range cases {
		_, err := runDemoCmd(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("demo %v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(full, "precious.txt")); err != nil {
		t.Errorf("--force touched a folder the demo did not write: %v", err)
	}
}

// TestTrainOnDemoOutput trains with a shipped recipe from a tiny demo's
// float model on its data set through the data loader, with the
// end-of-epoch evaluation on the test and ood splits: the epoch report and
// the eval metrics in metrics.jsonl must appear.
func TestTrainOnDemoOutput(t *testing.T) {
	be, err := backend.Open("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	o := demo.DefaultOptions()
	o.Out, o.Backend, o.Workers = filepath.Join(t.TempDir(), "demo"), be, 2
	o.N, o.TestN, o.OODN, o.Merges = 48, 30, 20, 60
	o.Width, o.Layers, o.Heads, o.ProjectionDim = 16, 1, 2, 16
	o.BatchSize, o.FloatEpochs, o.QATEpochs, o.CalibrationBatches = 16, 1, 1, 1
	if _, err := demo.Run(o); err != nil {
		t.Fatal(err)
	}
	shapes := filepath.Join(o.Out, "data", "shapes")
	run := filepath.Join(t.TempDir(), "run")
	log, err := runTrainCmd(t, "--recipe", "w8a8-lsq.yaml", "--out", run, "--backend", "go", "--workers", "2",
		"--set", "model.source="+filepath.Join(o.Out, "models", "float"),
		"--set", "train.data.path="+shapes, "--set", "train.data.split=train",
		"--set", "train.epochs=1", "--set", "train.batch_size=16", "--set", "train.schedule.warmup_steps=0",
		"--set", "quantization.schedule.calibration_batches=1",
		"--set", "eval.id.path="+shapes, "--set", "eval.id.split=test",
		"--set", "eval.ood=[{name: shapes-ood, path: "+shapes+", split: ood, image_column: image}]")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, log)
	}
	for _, s := range []string{"evaluating the float starting model", "epoch 0 evaluation", "float (start)", "w8a8-lsq", "auroc"} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}
	for _, f := range []string{"epoch-000/report.json", "epoch-000/report.md", "model/config.json"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Errorf("run folder lacks %s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lines[len(lines)-1], `"acc1"`) || !strings.Contains(lines[len(lines)-1], `"auroc"`) {
		t.Errorf("last metrics line has no evaluation metrics: %s", lines[len(lines)-1])
	}
}
