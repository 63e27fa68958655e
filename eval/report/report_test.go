package report

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/eval"
)

// synthetic returns an evaluation input of n x c similarities where the
// label's similarity is raised by margin, and two OOD sets.
func synthetic(t *testing.T, seed uint64, n, c int, margin float64) eval.Input {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	mk := func(n int, labelled bool, shift float64) eval.Split {
		d := make([]float32, n*c)
		for i := range d {
			d[i] = float32(0.2 + shift + 0.03*r.NormFloat64())
		}
		var labels []int
		if labelled {
			labels = make([]int, n)
			for i := range labels {
				labels[i] = r.IntN(c)
				d[i*c+labels[i]] += float32(margin * r.Float64())
			}
		}
		s, err := eval.NewSims32(d, n, c)
		if err != nil {
			t.Fatal(err)
		}
		return eval.Split{Sims: s, Labels: labels}
	}
	fit := mk(n/2, true, 0)
	return eval.Input{
		ID:  mk(n, true, 0),
		Fit: &fit,
		OOD: []eval.OODSet{{Name: "near", Sims: mk(n/2, false, 0).Sims}, {Name: "far textures", Sims: mk(n/3, false, -0.03).Sims}},
	}
}

func spectrum(t *testing.T, seed uint64, n, d int, decay float64) *eval.Spectrum {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	data := make([]float32, n*d)
	for i := range data {
		data[i] = float32(r.NormFloat64() / (1 + decay*float64(i%d)))
	}
	s, err := eval.EmbeddingSpectrum(data, n, d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleReport(t *testing.T) *Report {
	t.Helper()
	opt := eval.DefaultOptions()
	model, err := eval.Evaluate(synthetic(t, 1, 2000, 20, 0.08), opt)
	if err != nil {
		t.Fatal(err)
	}
	base, err := eval.Evaluate(synthetic(t, 1, 2000, 20, 0.1), opt)
	if err != nil {
		t.Fatal(err)
	}
	return &Report{
		Title:    "Reliability: test model",
		Settings: SettingsFor(opt, "fixed (CLIP_benchmark convention)", "separate split (fit)"),
		Data: Data{ID: Identity{Name: "synthetic-id", Rows: 2000}, Fit: &Identity{Name: "synthetic-fit", Rows: 1000},
			OOD: []Identity{{Name: "near", Rows: 1000}, {Name: "far textures", Rows: 666}}},
		Model: Column{Label: "int8 QAT", Model: Identity{Name: "qat-model"}, Result: model,
			Spectra: []Spectrum{{"image", spectrum(t, 1, 400, 32, 0.3)}, {"text", spectrum(t, 2, 400, 32, 0.2)}}},
		Baseline: &Column{Label: "float", Model: Identity{Name: "float-model"}, Result: base,
			Spectra: []Spectrum{{"image", spectrum(t, 3, 400, 32, 0.1)}, {"text", spectrum(t, 4, 400, 32, 0.1)}}},
	}
}

func TestWrite(t *testing.T) {
	r := sampleReport(t)
	dir := t.TempDir()
	if out := os.Getenv("QATCLIP_REPORT_OUT"); out != "" {
		dir = out // keep the files to look at
	}
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"report.json", "report.md", "reliability.png", "confidence_hist.png",
		"risk_coverage.png", "roc.png", "ood_hist_near.png", "ood_hist_far_textures.png",
		"ood_hist_near_float.png", "spectrum.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("missing %s: %v", name, err)
			continue
		}
		if strings.HasSuffix(name, ".png") {
			img, err := png.Decode(f)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
				t.Errorf("%s is %dx%d, too small to read", name, b.Dx(), b.Dy())
			}
		}
		f.Close()
	}

	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Settings Settings `json:"settings"`
		Model    struct {
			Metrics struct {
				Classification struct {
					ECE float64 `json:"ece"`
				} `json:"classification"`
				Calibrated struct {
					Temperature float64 `json:"temperature"`
				} `json:"calibrated"`
				OODMean map[string]eval.Detection `json:"ood_mean"`
			} `json:"metrics"`
			Spectra []struct {
				EffectiveRank float64 `json:"effective_rank"`
			} `json:"spectra"`
		} `json:"model"`
		Baseline *json.RawMessage `json:"baseline"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	m := back.Model.Metrics
	if m.Classification.ECE != r.Model.Result.Classification.ECE || m.Calibrated.Temperature != r.Model.Result.Calibrated.Temperature ||
		m.OODMean["mcm"] != r.Model.Result.OODMean["mcm"] || len(back.Model.Spectra) != 2 || back.Baseline == nil ||
		back.Settings.LogitScale != 100 || back.Settings.LogitScaleSource == "" {
		t.Errorf("report.json round trip lost values: %s", raw[:min(len(raw), 600)])
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleReport(t)
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"# Reliability: test model", "| Metric | float | int8 QAT | Δ vs float |",
		"| Top-1 accuracy |", "| ECE after temperature scaling |", "| near AUROC |", "| mean FPR@95 |",
		"| far textures | energy |", "## Embedding spectrum", "Logit scale: 100 (fixed (CLIP_benchmark convention))",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	// The model has a smaller margin than the baseline: accuracy is worse.
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| Top-1 accuracy |") && !strings.HasSuffix(line, "↓ |") {
			t.Errorf("accuracy dropped but the row has no ↓: %s", line)
		}
		if strings.HasPrefix(line, "| Fitted temperature |") && (strings.Contains(line, "↑") || strings.Contains(line, "↓")) {
			t.Errorf("temperature is neutral but has an arrow: %s", line)
		}
	}
}

func TestDelta(t *testing.T) {
	cases := []struct {
		d    float64
		dir  Direction
		want string
	}{
		{0.01, HigherBetter, "+0.0100 ↑"},
		{-0.01, HigherBetter, "-0.0100 ↓"},
		{0.01, LowerBetter, "+0.0100 ↓"},
		{-0.01, LowerBetter, "-0.0100 ↑"},
		{0.01, Neutral, "+0.0100"},
		{1e-7, LowerBetter, "0.0000 ="},
	}
	for _, c := range cases {
		if got := delta(c.d, c.dir); got != c.want {
			t.Errorf("delta(%v, %v) = %q, want %q", c.d, c.dir, got, c.want)
		}
	}
}

func TestSummarizeKeys(t *testing.T) {
	r := sampleReport(t)
	raw, err := json.Marshal(Summarize(r.Model.Result))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"acc1", "acc5", "nll", "brier", "ece", "mce", "aurc", "temperature", "ts_ece", "ts_nll", "ood", "ood_mean"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary lacks %q: %s", k, raw)
		}
	}
	r.Model.Result.Calibrated = nil
	raw, _ = json.Marshal(Summarize(r.Model.Result))
	if strings.Contains(string(raw), "temperature") || strings.Contains(string(raw), "ts_") {
		t.Errorf("summary without a fit split has temperature keys: %s", raw)
	}
}
