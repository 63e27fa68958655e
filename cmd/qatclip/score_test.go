package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// runScoreCmd runs `qatclip score args...` and returns its stdout.
func runScoreCmd(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newScoreCmd, args...)
}

func TestScoreGolden(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "metrics")
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		LogitScale     float64            `json:"logit_scale"`
		MCMTemperature float64            `json:"mcm_temperature"`
		ECEBins        int                `json:"ece_bins"`
		Expected       map[string]float64 `json:"expected"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	out, err := runScoreCmd(t, "--id-cos", p("id_cos.npy"), "--id-labels", p("id_labels.npy"),
		"--fit-cos", p("fit_cos.npy"), "--fit-labels", p("fit_labels.npy"), "--ood", "golden="+p("ood_cos.npy"),
		"--logit-scale", ftoa(exp.LogitScale), "--mcm-temperature", ftoa(exp.MCMTemperature),
		"--ece-bins", ftoa(float64(exp.ECEBins)), "--json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("--json printed more than one line:\n%s", out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out)
	}
	ood := got["ood"].(map[string]any)["golden"].(map[string]any)
	mean := got["ood_mean"].(map[string]any)
	if len(exp.Expected) < 13 {
		t.Fatalf("expected.json has %d values, want at least 13", len(exp.Expected))
	}
	for key, want := range exp.Expected {
		v, ok := got[key]
		if !ok {
			v, ok = ood[key]
			if ok && mean[key] != v {
				t.Errorf("ood_mean.%s = %v, want the single set's %v", key, mean[key], v)
			}
		}
		if !ok {
			t.Errorf("%s: missing from the JSON output", key)
			continue
		}
		g := v.(float64)
		tol := 1e-6
		if key == "temperature" {
			tol = 1e-4 * math.Abs(want)
		}
		if math.Abs(g-want) > tol {
			t.Errorf("%s = %.12g, want %.12g", key, g, want)
		}
	}
}

func ftoa(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// writeNpy writes an array into dir and returns its path.
func writeNpy(t *testing.T, dir, name string, shape []int, data any) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := npy.WriteFile(path, npy.Array{Shape: shape, Data: data}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScoreOutputs(t *testing.T) {
	dir := t.TempDir()
	cos := writeNpy(t, dir, "cos.npy", []int{4, 3}, []float32{0.3, 0.1, 0.2, 0.1, 0.4, 0.2, 0.2, 0.1, 0.5, 0.3, 0.2, 0.1})
	labels := writeNpy(t, dir, "labels.npy", []int{4}, []int64{0, 1, 2, 1})
	ood := writeNpy(t, dir, "ood.npy", []int{2, 3}, []float32{0.2, 0.2, 0.2, 0.25, 0.2, 0.15})
	out, err := runScoreCmd(t, "--id-cos", cos, "--id-labels", labels, "--ood", "flat="+ood, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"acc1", "acc5", "nll", "brier", "ece", "mce", "aurc", "ood", "ood_mean"} {
		if _, ok := got[k]; !ok {
			t.Errorf("--json lacks %q: %s", k, out)
		}
	}
	for _, k := range []string{"temperature", "ts_ece", "ts_nll"} {
		if _, ok := got[k]; ok {
			t.Errorf("--json has %q without a fit split: %s", k, out)
		}
	}
	if string(got["acc1"]) != "0.75" {
		t.Errorf("acc1 = %s, want 0.75", got["acc1"])
	}

	// Human table and report files.
	rep := filepath.Join(dir, "report")
	out, err = runScoreCmd(t, "--id-cos", cos, "--id-labels", labels, "--fit-cos", cos, "--fit-labels", labels,
		"--ood", "flat="+ood, "--out", rep, "--logit-scale", "50")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"logit scale 50", "Top-1 accuracy", "0.750000", "Fitted temperature", "flat AUROC", "max_cosine"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"report.json", "report.md", "reliability.png", "roc.png", "ood_hist_flat.png", "risk_coverage.png", "confidence_hist.png"} {
		if _, err := os.Stat(filepath.Join(rep, name)); err != nil {
			t.Errorf("--out did not write %s: %v", name, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(rep, "report.md"))
	if !strings.Contains(string(md), "fixed by --logit-scale 50") {
		t.Errorf("report.md does not say where the logit scale came from:\n%s", md)
	}
}

func TestScoreBadInput(t *testing.T) {
	dir := t.TempDir()
	cos := writeNpy(t, dir, "cos.npy", []int{4, 3}, make([]float32, 12))
	labels := writeNpy(t, dir, "labels.npy", []int{4}, []int64{0, 1, 2, 1})
	short := writeNpy(t, dir, "short.npy", []int{3}, []int64{0, 1, 2})
	big := writeNpy(t, dir, "big.npy", []int{4}, []int64{0, 1, 3, 1})
	floatLabels := writeNpy(t, dir, "flabels.npy", []int{4}, []float32{0, 1, 2, 1})
	nan := writeNpy(t, dir, "nan.npy", []int{4, 3}, []float32{0, 0, 0, 0, 0, float32(math.NaN()), 0, 0, 0, 0, 0, 0})
	empty := writeNpy(t, dir, "empty.npy", []int{0, 3}, []float32{})
	wide := writeNpy(t, dir, "wide.npy", []int{2, 5}, make([]float32, 10))
	flat := writeNpy(t, dir, "flat.npy", []int{12}, make([]float32, 12))
	missing := filepath.Join(dir, "missing.npy")
	cases := []struct {
		name string
		args []string
		want string // substring of the one-line error
	}{
		{"no id", []string{"--id-labels", labels}, "--id-cos and --id-labels are required"},
		{"label count", []string{"--id-cos", cos, "--id-labels", short}, "--id-labels " + short + " (for " + cos + "): 3 labels for 4 similarity rows"},
		{"label range", []string{"--id-cos", cos, "--id-labels", big}, "label 3 at row 2 is outside [0, 3)"},
		{"float labels", []string{"--id-cos", cos, "--id-labels", floatLabels}, "want integer labels"},
		{"NaN similarity", []string{"--id-cos", nan, "--id-labels", labels}, "--id-cos " + nan + ": row 1, class 2: similarity is NaN"},
		{"empty OOD set", []string{"--id-cos", cos, "--id-labels", labels, "--ood", "void=" + empty}, "--ood void=" + empty + ": empty set: shape [0 3] has no rows"},
		{"OOD classes", []string{"--id-cos", cos, "--id-labels", labels, "--ood", "w=" + wide}, "--ood w=" + wide + ": 5 classes, but --id-cos has 3"},
		{"fit classes", []string{"--id-cos", cos, "--id-labels", labels, "--fit-cos", wide, "--fit-labels", short}, "--fit-cos " + wide + ": 5 classes, but --id-cos has 3"},
		{"1-D similarities", []string{"--id-cos", flat, "--id-labels", labels}, "want a 2-D [N, C] similarity matrix, got shape [12]"},
		{"missing file", []string{"--id-cos", missing, "--id-labels", labels}, "no such file"},
		{"bad OOD flag", []string{"--id-cos", cos, "--id-labels", labels, "--ood", "nameless.npy"}, `--ood "nameless.npy": want NAME=F.npy`},
		{"fit half", []string{"--id-cos", cos, "--id-labels", labels, "--fit-cos", cos}, "--fit-cos and --fit-labels go together"},
		{"zero logit scale", []string{"--id-cos", cos, "--id-labels", labels, "--logit-scale", "0"}, "logit scale must be a finite number > 0, got 0"},
		{"zero bins", []string{"--id-cos", cos, "--id-labels", labels, "--ece-bins", "0"}, "ECE bins must be >= 1, got 0"},
		{"duplicate OOD", []string{"--id-cos", cos, "--id-labels", labels, "--ood", "a=" + cos, "--ood", "a=" + cos}, "ood a: name given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runScoreCmd(t, c.args...)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}
