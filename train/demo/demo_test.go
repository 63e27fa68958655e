package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/backend"
)

// tinyOptions shrinks the demo so that it runs in a few seconds.
func tinyOptions(tb testing.TB, out string) Options {
	tb.Helper()
	be, err := backend.Open("go", nil)
	if err != nil {
		tb.Fatal(err)
	}
	o := DefaultOptions()
	o.Out, o.Backend = out, be
	o.N, o.TestN, o.OODN, o.Merges = 64, 40, 20, 60
	o.Width, o.Layers, o.Heads, o.ProjectionDim = 16, 1, 2, 16
	o.BatchSize, o.FloatEpochs, o.QATEpochs, o.CalibrationBatches = 16, 1, 1, 1
	o.Workers = 2
	return o
}

// TestRunTiny runs the whole demo at toy sizes and checks its outputs:
// the folders, the reports, the metrics and the table.
func TestRunTiny(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	o := tinyOptions(t, out)
	var log bytes.Buffer
	o.Log = &log
	res, err := Run(o)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if len(res.Models) != 3 {
		t.Fatalf("%d models, want float, PTQ and QAT", len(res.Models))
	}
	for i, want := range []string{"float", "ptq-w8a8", "qat-w4a8"} {
		m := res.Models[i]
		if m.Label != want {
			t.Errorf("model %d is %q, want %q", i, m.Label, want)
		}
		for _, k := range TableMetrics() {
			if v, ok := m.Metrics[k]; !ok || math.IsNaN(v) {
				t.Errorf("%s: metric %s is %v (present %v)", m.Label, k, v, ok)
			}
		}
		for _, f := range []string{"report.json", "report.md", "reliability.png"} {
			if st, err := os.Stat(filepath.Join(m.ReportDir, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s: %s: %v", m.Label, f, err)
			}
		}
	}
	for _, f := range []string{
		MarkerFile, "summary.md", "templates.txt", "data/shapes/test", "data/shapes/ood",
		"models/float/config.json", "models/float/model.safetensors", "models/float/vocab.json", "models/float/merges.txt",
		"models/qat/config.json", "runs/float/metrics.jsonl", "runs/ptq/recipe.yaml", "runs/qat/metrics.jsonl",
		"runs/qat/epoch-000/report.json",
	} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output lacks %s: %v", f, err)
		}
	}
	// The QAT and PTQ reports compare against the float baseline.
	md, err := os.ReadFile(filepath.Join(res.Models[2].ReportDir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "Δ vs float") {
		t.Errorf("QAT report has no float baseline:\n%s", md)
	}
	var js map[string]any
	b, err := os.ReadFile(filepath.Join(res.Models[1].ReportDir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatalf("PTQ report.json: %v", err)
	}
	table := res.Table()
	for _, s := range []string{"model", "acc1", "fpr95", "ptq-w8a8", "qat-w4a8", "(+", "5 classes: chance 0.20", res.Models[2].ReportDir} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	for _, s := range []string{"[1/6", "[6/6", "custom sizes", "step ", "easy shapes"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, log.String())
		}
	}

	// A second run into the same folder needs Force; with it the folder
	// is replaced.
	if _, err := Run(o); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second run without Force: %v", err)
	}
}

// TestRunErrors checks option validation and folder protection.
func TestRunErrors(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no out", func(o *Options) { o.Out = "" }, "no output folder"},
		{"no backend", func(o *Options) { o.Backend = nil }, "no backend"},
		{"zero epochs", func(o *Options) { o.FloatEpochs = 0 }, "FloatEpochs must be positive"},
		{"patch", func(o *Options) { o.PatchSize = 5 }, "not a multiple of the patch size"},
		{"heads", func(o *Options) { o.Heads = 3 }, "not a multiple of the 3 heads"},
		{"batch", func(o *Options) { o.BatchSize = 1000 }, "larger than the 64 training images"},
		{"lr", func(o *Options) { o.QATLR = 0 }, "learning rates must be positive"},
		{"classification", func(o *Options) { o.Classification = math.NaN() }, "classification loss weight"},
		{"difficulty", func(o *Options) { o.Difficulty = "" }, `difficulty ""`},
		{"non-empty", func(o *Options) { o.Out = full }, "is not empty"},
		{"force on a foreign folder", func(o *Options) { o.Out, o.Force = full, true }, "not an earlier demo's output"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := tinyOptions(t, filepath.Join(t.TempDir(), "out"))
			c.edit(&o)
			_, err := Run(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(full, "keep.txt")); err != nil {
		t.Errorf("a refused run touched the folder: %v", err)
	}
}

// TestForceReplacesDemoFolder checks that Force replaces a folder holding
// the marker file, and only after the options are valid.
func TestForceReplacesDemoFolder(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{MarkerFile, "old.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := tinyOptions(t, dir)
	o.Force = true
	if err := prepareOut(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old.txt")); !os.IsNotExist(err) {
		t.Errorf("old.txt survived --force: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil || !strings.Contains(string(b), `"batch_size": 16`) {
		t.Errorf("marker file %q: %v", b, err)
	}
}

func TestTemplate(t *testing.T) {
	cases := []struct {
		caption, class, want string
		ok                   bool
	}{
		{"a red circle on a striped background", "circle", "a red {} on a striped background", true},
		{"a red circles on a plain background", "circle", "", false},
		{"a star on a star background", "star", "a {} on a star background", true},
		{"", "star", "", false},
	}
	for _, c := range cases {
		got, ok := Template(c.caption, c.class)
		if got != c.want || ok != c.ok {
			t.Errorf("Template(%q, %q) = %q, %v; want %q, %v", c.caption, c.class, got, ok, c.want, c.ok)
		}
	}
}

func TestFormatTable(t *testing.T) {
	rows := []Row{
		{Label: "float", Metrics: map[string]float64{"acc1": 0.8, "ece": 0.05, "nll": 0.6}},
		{Label: "ptq", Metrics: map[string]float64{"acc1": 0.75, "ece": 0.07, "nll": math.NaN()}},
	}
	got := FormatTable(rows)
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), got)
	}
	for _, s := range []string{"0.8000", "0.7500 (-0.0500)", "0.0700 (+0.0200)"} {
		if !strings.Contains(got, s) {
			t.Errorf("table lacks %q:\n%s", s, got)
		}
	}
	if strings.Contains(lines[1], "(") {
		t.Errorf("the baseline row shows deltas: %q", lines[1])
	}
	// Missing and NaN metrics print as "-"; columns stay aligned.
	if f := strings.Fields(lines[2]); len(f) < 8 || f[len(f)-1] != "-" || f[len(f)-3] != "-" {
		t.Errorf("missing metrics of the ptq row: %q", lines[2])
	}
	for _, l := range lines {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("ragged table:\n%s", got)
			break
		}
	}
}

func TestOrthonormalHead(t *testing.T) {
	h, err := OrthonormalHead(5, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		for j := range 5 {
			var dot float64
			for k := range 8 {
				dot += float64(h[i*8+k]) * float64(h[j*8+k])
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(dot-want) > 1e-5 {
				t.Errorf("row %d . row %d = %v, want %v", i, j, dot, want)
			}
		}
	}
	again, _ := OrthonormalHead(5, 8, 3)
	if !slices.Equal(h, again) {
		t.Error("the same seed gave another head")
	}
	if _, err := OrthonormalHead(9, 8, 3); err == nil {
		t.Error("9 classes in 8 dimensions: no error")
	}
}

// BenchmarkRunTiny measures the whole demo at the test's toy sizes
// (synthesis, vocabulary, float training, PTQ, QAT, three evaluations).
func BenchmarkRunTiny(b *testing.B) {
	for i := range b.N {
		o := tinyOptions(b, filepath.Join(b.TempDir(), fmt.Sprint("demo", i)))
		if _, err := Run(o); err != nil {
			b.Fatal(err)
		}
	}
}
