package benchmark

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
)

// microConfig is a very small CLIP so that tests compile and run quickly.
func microConfig() *clip.Config {
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 16, IntermediateSize: 64, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 8, PatchSize: 4, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: 50, HiddenSize: 16, IntermediateSize: 64, NumAttentionHeads: 2, NumHiddenLayers: 1,
		MaxPositionEmbeddings: 6, HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: 48, EosTokenID: 49}
	cfg.ProjectionDim = 8
	return &cfg
}

// microOptions runs microConfig on the pure-Go backend, 2 timed steps.
func microOptions() Options {
	return Options{Model: microConfig(), Batch: 4, Steps: 2, NoWarmup: true, Backend: "go", Rounds: 2}
}

func TestModelConfig(t *testing.T) {
	for _, name := range ConfigNames() {
		cfg, err := ModelConfig(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: invalid: %v", name, err)
		}
		for _, tower := range []struct{ width, mlp int }{{cfg.Vision.HiddenSize, cfg.Vision.IntermediateSize}, {cfg.Text.HiddenSize, cfg.Text.IntermediateSize}} {
			if tower.mlp != 4*tower.width {
				t.Errorf("%s: MLP width %d is not 4 x %d (bench.py assumes ratio 4)", name, tower.mlp, tower.width)
			}
		}
		if cfg.Text.EosTokenID != cfg.Text.VocabSize-1 {
			t.Errorf("%s: eos %d, want the largest id %d (bench.py's EOT)", name, cfg.Text.EosTokenID, cfg.Text.VocabSize-1)
		}
	}
	small, _ := ModelConfig("small")
	if v, x := small.Vision, small.Text; v.ImageSize != 64 || v.PatchSize != 8 || v.HiddenSize != 256 || v.NumHiddenLayers != 4 ||
		v.NumAttentionHeads != 4 || x.HiddenSize != 256 || x.NumHiddenLayers != 4 || x.NumAttentionHeads != 4 ||
		x.VocabSize != 49408 || x.MaxPositionEmbeddings != 77 || small.ProjectionDim != 256 {
		t.Errorf("small = %+v", small)
	}
	if b32, _ := ModelConfig("b32"); b32 != clip.DefaultConfig() {
		t.Errorf("b32 = %+v, want the ViT-B/32 defaults", b32)
	}
	if _, err := ModelConfig("huge"); err == nil || !strings.Contains(err.Error(), `unknown config "huge"`) {
		t.Errorf("ModelConfig(huge) error = %v", err)
	}
}

// TestTinyMatchesGolden checks the tiny sizes against the golden clip-tiny
// config.json (skipped without ../shared).
func TestTinyMatchesGolden(t *testing.T) {
	path := testutil.SharedPath(t, "golden", "clip-tiny", "config.json")
	want, err := clip.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ModelConfig("tiny")
	if got != want {
		t.Errorf("tiny = %+v\nwant %+v (%s)", got, want, path)
	}
}

// TestFLOPs compares with bench.py's counts (printed by its
// clip_forward_flops and vision_forward_flops at batch 64).
func TestFLOPs(t *testing.T) {
	tests := []struct {
		name          string
		train, vision float64
	}{
		{"tiny", 3407020032, 925433856},
		{"small", 180780269568, 27691057152},
		{"b32", 2837228027904, 564327874560},
	}
	for _, tt := range tests {
		cfg, _ := ModelConfig(tt.name)
		if got := TrainFLOPs(cfg, 64); got != tt.train {
			t.Errorf("%s: TrainFLOPs = %.0f, want %.0f", tt.name, got, tt.train)
		}
		if got := VisionForwardFLOPs(cfg, 64); got != tt.vision {
			t.Errorf("%s: VisionForwardFLOPs = %.0f, want %.0f", tt.name, got, tt.vision)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{4, 1, 3, 2, 10}
	tests := []struct {
		q, want float64
	}{{0, 1}, {10, 1.4}, {50, 3}, {90, 7.6}, {100, 10}}
	for _, tt := range tests {
		if got := Percentile(xs, tt.q); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("Percentile(%v, %g) = %g, want %g", xs, tt.q, got, tt.want)
		}
	}
	if xs[0] != 4 {
		t.Error("Percentile sorted its input")
	}
	if got := Median([]float64{2, 1}); got != 1.5 {
		t.Errorf("Median = %g, want 1.5", got)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestRandomInputs(t *testing.T) {
	cfg, _ := ModelConfig("tiny")
	const n = 32
	pixels, ids := RandomInputs(cfg, n, 3)
	if len(pixels) != n*3*32*32 || len(ids) != n*16 {
		t.Fatalf("len = %d, %d", len(pixels), len(ids))
	}
	for i := range n {
		eot := 0
		for j, id := range ids[i*16 : (i+1)*16] {
			switch {
			case id == int32(cfg.Text.EosTokenID):
				eot++
				if j == 0 {
					t.Errorf("row %d: EOT at position 0", i)
				}
			case id < 0 || id >= int32(cfg.Text.EosTokenID):
				t.Errorf("row %d: id %d out of range", i, id)
			}
		}
		if eot != 1 {
			t.Errorf("row %d: %d EOT tokens, want 1", i, eot)
		}
	}
	p2, ids2 := RandomInputs(cfg, n, 3)
	if p2[17] != pixels[17] || ids2[40] != ids[40] {
		t.Error("same seed gave different inputs")
	}
}

func TestOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"batch", func(o *Options) { o.Batch = -1 }, "batch must be positive"},
		{"steps", func(o *Options) { o.Steps = -2 }, "steps must be positive"},
		{"warmup", func(o *Options) { o.Warmup = -1 }, "warmup must not be negative"},
		{"precision", func(o *Options) { o.Precision = "f16" }, `precision "f16"`},
		{"config", func(o *Options) { o.Model = nil; o.Config = "nope" }, `unknown config "nope"`},
		{"recipe", func(o *Options) { o.Recipe = "no-such-recipe.yaml" }, "no-such-recipe.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := microOptions()
			tt.edit(&o)
			_, err := Train(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// checkSteps checks the step statistics of a result.
func checkSteps(t *testing.T, r Result) {
	t.Helper()
	s := r.StepStats
	if s == nil {
		t.Fatalf("no step statistics: %+v", r)
	}
	if !(s.StepMsP10 <= s.StepMsMedian && s.StepMsMedian <= s.StepMsP90 && s.StepMsP10 > 0) {
		t.Errorf("step ms p10 %g, median %g, p90 %g", s.StepMsP10, s.StepMsMedian, s.StepMsP90)
	}
	if s.ImagesPerS <= 0 || r.CompileS <= 0 || r.PeakMemMB <= 0 || s.CPUMsMedian < 0 {
		t.Errorf("result %+v, steps %+v", r, *s)
	}
}

func TestTrain(t *testing.T) {
	for _, recipe := range []string{"", FloatRecipe} {
		o := microOptions()
		o.Recipe = recipe
		r, err := Train(o)
		if err != nil {
			t.Fatalf("recipe %q: %v", recipe, err)
		}
		wantQuant, wantRecipe := "w8a8", "w8a8-lsq"
		if recipe == FloatRecipe {
			wantQuant, wantRecipe = "none", "float"
		}
		if r.Impl != Impl || r.Mode != ModeTrain || r.Config != "custom" || r.Quant != wantQuant || r.Recipe != wantRecipe {
			t.Errorf("recipe %q: result %+v", recipe, r)
		}
		checkSteps(t, r)
		if want := TrainFLOPs(*microConfig(), 4); r.FlopsPerStep != want || r.TFLOPs <= 0 {
			t.Errorf("flops %g (want %g), tflops %g", r.FlopsPerStep, want, r.TFLOPs)
		}
		params := 0
		for _, p := range clip.Params(*microConfig()) {
			params += p.Size()
		}
		if (recipe == FloatRecipe) != (r.Params == params) || r.Params < params {
			t.Errorf("recipe %q: %d params, model has %d (quantizer state adds some)", recipe, r.Params, params)
		}
	}
}

// TestBF16 runs the model modes with bf16 matmuls; the loader, which only
// produces float32 pixels, says it cannot.
func TestBF16(t *testing.T) {
	for name, fn := range map[string]func(Options) (Result, error){"train": Train, "embed": Embed, "quant": FakeQuantCost, "loader": Loader} {
		o := microOptions()
		o.Precision = "bf16"
		r, err := fn(o)
		if name == "loader" {
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(r.Error, "bf16") || r.Precision != "bf16" {
				t.Errorf("%s: err %v, result error %q", name, err, r.Error)
			}
			continue
		}
		if err != nil || r.Error != "" || r.Precision != "bf16" {
			t.Errorf("%s: err %v, result error %q, precision %q", name, err, r.Error, r.Precision)
		}
	}
}

func TestEmbed(t *testing.T) {
	r, err := Embed(microOptions())
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, r)
	if r.Mode != ModeEmbed || r.Quant != "w8a8" || r.FlopsPerStep != VisionForwardFLOPs(*microConfig(), 4) {
		t.Errorf("result %+v", r)
	}
	vision := 0
	for _, p := range clip.Params(*microConfig()) {
		if strings.HasPrefix(p.Name, "vision_model.") || strings.HasPrefix(p.Name, "visual_projection.") {
			vision += p.Size()
		}
	}
	if r.Params <= vision {
		t.Errorf("params %d, want the vision tower's %d plus its quantizer state", r.Params, vision)
	}
}

func TestFakeQuantCost(t *testing.T) {
	r, err := FakeQuantCost(microOptions())
	if err != nil {
		t.Fatal(err)
	}
	c := r.QuantCost
	if c == nil || r.StepStats != nil || r.Mode != ModeFakeQuantCost || r.Quant != "w8a8" {
		t.Fatalf("result %+v", r)
	}
	if c.Rounds != 2 || c.FloatFwdBwdMsMedian <= 0 || c.QuantFwdBwdMsMedian <= 0 || c.FloatTrainStepMsMedian <= 0 ||
		math.Abs(c.RatioFwdBwd-c.QuantFwdBwdMsMedian/c.FloatFwdBwdMsMedian) > 1e-12 ||
		!(c.RatioFwdBwdRoundsMin <= c.RatioFwdBwdRoundsMedian && c.RatioFwdBwdRoundsMedian <= c.RatioFwdBwdRoundsMax) ||
		r.CompileS <= 0 || c.FloatCompileS <= 0 {
		t.Errorf("cost %+v", *c)
	}
}

func TestLoader(t *testing.T) {
	o := microOptions()
	o.Workers = 1
	r, err := Loader(o)
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, r)
	if r.Mode != ModeLoader || r.FlopsPerStep != 0 || r.Device != "1 decode workers" {
		t.Errorf("result %+v", r)
	}
	o.Data = t.TempDir()
	if _, err := Loader(o); err == nil {
		t.Error("empty dataset folder: no error")
	}
}

// TestJSONFields checks that a train result carries every field of
// bench.py's train records that is not PyTorch-specific, under the same
// name.
func TestJSONFields(t *testing.T) {
	r := newResult(Options{Precision: "f32", Batch: 2, Steps: 3}, ModeTrain, "tiny")
	r.Quant, r.Device, r.CompileS, r.PeakMemMB, r.Params, r.FlopsPerStep = "w8a8", "cpu", 1, 1, 1, 1
	r.StepStats = &StepStats{ImagesPerS: 1, StepMsMedian: 1, StepMsP10: 1, StepMsP90: 1, CPUMsMedian: 1, TFLOPs: 1}
	line, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"impl", "mode", "config", "quant", "precision", "device", "threads", "batch", "steps",
		"images_per_s", "step_ms_median", "step_ms_p10", "step_ms_p90", "cpu_ms_median", "compile_s", "peak_mem_mb",
		"params", "flops_per_step", "tflops"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, line)
		}
	}
	if _, ok := m["error"]; ok {
		t.Errorf("JSON has an error field: %s", line)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	rs := []Result{
		{Mode: ModeTrain, Config: "tiny", Quant: "w8a8", Batch: 64, StepStats: &StepStats{ImagesPerS: 50, StepMsMedian: 1280, StepMsP10: 1200, StepMsP90: 1400, CPUMsMedian: 2400, TFLOPs: 0.0027,
			DataMsMedian: 3.25, ExecMsMedian: 1270.5, OutputsMsMedian: 0.25}},
		{Mode: ModeLoader, Config: "tiny", Precision: "bf16", Batch: 64, Error: "bf16 is not supported"},
		{Mode: ModeFakeQuantCost, Config: "tiny", Quant: "w8a8", Batch: 64, Steps: 3, QuantCost: &QuantCost{Rounds: 5, RatioFwdBwd: 1.25}},
	}
	if err := WriteTable(&buf, rs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"images/s", "1280.0", "1200.0-1400.0", "2.7", "not run: bf16 is not supported", "5 rounds of 3 steps", "1.25",
		"3.2 ms waiting for the batch, 1270.5 ms the compiled step, 0.2 ms reading"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
