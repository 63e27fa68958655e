package pipeline

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

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// shapesOptions evaluates on the synthetic shapes: test split as ID (20%
// held out for the temperature), ood split as the OOD set.
func shapesOptions(t *testing.T, dir string) Options {
	t.Helper()
	return Options{
		Backend:      testBackend(t),
		ID:           DataSet{Name: "shapes-test", Path: dir, Split: "test"},
		FitFraction:  0.2,
		OOD:          []DataSet{{Name: "shapes-ood", Path: dir, Split: "ood"}},
		ClassNames:   FromDataset,
		TemplateSpec: DefaultTemplateSet,
		Tokenizer:    testTokenizer(t),
		BatchSize:    16,
		Workers:      2,
	}
}

// TestEvaluateShapes runs a float and a fake-quantized tiny model end to
// end and writes the report.
func TestEvaluateShapes(t *testing.T) {
	dir := synthShapes(t)
	opts := shapesOptions(t, dir)
	opts.CacheDir = t.TempDir()
	opts.Corruptions = []Corruption{{NoiseSigma: 0.5}, {JPEGQuality: 10}}
	var log bytes.Buffer
	opts.Log = &log
	ev, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if !slices.Equal(ev.Classes(), data.SynthShapeNames()) {
		t.Fatalf("classes %q, want the dataset's %q", ev.Classes(), data.SynthShapeNames())
	}
	cfg := tinyConfig(opts.Tokenizer)
	float := Model{Label: "float", Config: cfg, Context: randomModel(t, cfg, 5)}
	base, err := ev.Evaluate(float)
	if err != nil {
		t.Fatal(err)
	}
	res := base.Column.Result
	if res.Classification.N != 48 || res.Calibrated == nil || res.Calibrated.FitN != 12 {
		t.Fatalf("ID rows %d, fit %+v; want 48 and 12", res.Classification.N, res.Calibrated)
	}
	if len(res.OOD) != 1 || res.OOD[0].N != 40 {
		t.Fatalf("OOD results %+v", res.OOD)
	}
	if want := math.Exp(2.6592); math.Abs(base.LogitScale-want) > 1e-4 {
		t.Errorf("logit scale %v, want the model's exp(2.6592) = %v", base.LogitScale, want)
	}
	if len(base.Column.Spectra) != 2 || base.Column.Spectra[0].N != 60 || base.Column.Spectra[1].N != len(ev.Classes()) {
		t.Errorf("spectra %+v", base.Column.Spectra)
	}
	if len(base.Corrupted) != 2 || !strings.Contains(base.Corrupted[0].Label, "σ=0.5") || !strings.Contains(base.Corrupted[1].Label, "JPEG q=10") {
		t.Fatalf("corrupted columns %d", len(base.Corrupted))
	}
	// Noise of half a standard deviation moves the embeddings: the
	// similarities, hence the NLL, change.
	if base.Corrupted[0].Result.Classification.NLL == res.Classification.NLL {
		t.Error("noise did not change the NLL")
	}
	if base.Head.Cached {
		t.Error("first head came from the cache")
	}

	// Same model again: the head comes from the cache, the metrics repeat.
	again, err := ev.Evaluate(float)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Head.Cached || again.Column.Result.Classification.NLL != res.Classification.NLL {
		t.Errorf("re-evaluation: cached %v, nll %v vs %v", again.Head.Cached, again.Column.Result.Classification.NLL, res.Classification.NLL)
	}

	// The same weights fake-quantized at W8A8 after calibration.
	r, err := recipes.Load("w8a8-minmax-ptq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hook, _, err := clip.QuantHook(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	quant := Model{Label: "w8a8", Config: cfg, Context: randomModel(t, cfg, 5), Hook: hook, HookKey: "w8a8-minmax", Calibrate: true}
	q, err := ev.Evaluate(quant)
	if err != nil {
		t.Fatal(err)
	}
	if q.Head.Cached || q.Head.Key == base.Head.Key {
		t.Error("the quantized text tower reused the float head")
	}
	if !strings.Contains(log.String(), "calibrated on 60 ID images") {
		t.Errorf("log does not report calibration:\n%s", log.String())
	}
	qr := q.Column.Result.Classification
	if qr.NLL == res.Classification.NLL {
		t.Error("quantization did not change the NLL")
	}
	// W8A8 of a random tiny model stays close to float.
	if d := math.Abs(qr.NLL - res.Classification.NLL); d > 0.2*res.Classification.NLL {
		t.Errorf("W8A8 NLL %v far from float %v", qr.NLL, res.Classification.NLL)
	}

	rep := ev.Report("test report", q, base)
	out := t.TempDir()
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "report.md", "reliability.png", "confidence_hist.png", "risk_coverage.png",
		"roc.png", "spectrum.png", "ood_hist_shapes-ood.png", "ood_hist_shapes-ood_float.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, s := range []string{"w8a8, gaussian noise σ=0.5", "float, JPEG q=10", "Δ vs float", "model exp(logit_scale)", "fitted on 12 of 60 ID images"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("report.md lacks %q", s)
		}
	}
	var js map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	if extra, _ := js["extra"].([]any); len(extra) != 4 {
		t.Errorf("report.json has %d extra columns, want 4", len(extra))
	}

	s := Scalars(q.Column.Result)
	for _, k := range recipes.MetricNames() {
		if _, ok := s[k]; !ok {
			t.Errorf("Scalars lacks %q", k)
		}
	}
}

// TestFixedLogitScaleAndSeparateFit uses a fixed scale and a separate fit
// set, and caps the images read.
func TestFixedLogitScaleAndSeparateFit(t *testing.T) {
	dir := synthShapes(t)
	opts := shapesOptions(t, dir)
	opts.LogitScale = 100
	opts.FitFraction = 0
	opts.Fit = &DataSet{Name: "shapes-train", Path: dir, Split: "train"}
	opts.OOD = nil
	opts.MaxImages = 20
	ev, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	cfg := tinyConfig(opts.Tokenizer)
	res, err := ev.Evaluate(Model{Label: "float", Config: cfg, Context: randomModel(t, cfg, 9)})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Column.Result
	if res.LogitScale != 100 || c.Classification.N != 20 || c.Calibrated == nil || c.Calibrated.FitN != 8 || c.OOD != nil {
		t.Errorf("scale %v, N %d, fit %+v, ood %v", res.LogitScale, c.Classification.N, c.Calibrated, c.OOD)
	}
	rep := ev.Report("", res, nil)
	if rep.Settings.LogitScale != 100 || !strings.Contains(rep.Settings.LogitScaleSource, "fixed") || rep.Data.Fit == nil || rep.Data.Fit.Rows != 8 {
		t.Errorf("settings %+v, fit %+v", rep.Settings, rep.Data.Fit)
	}
	// The similarities on the backend equal a float64 reference.
	id := &embedded{feats: []float32{3, 4, 0, 1, 0, 0}, labels: []int{0, 1}, n: 2}
	h := &Head{Classes: []string{"a", "b", "c"}, D: 3, W: []float32{1, 0, 0, 0, 1, 0, 0, 0, 1}}
	sims, err := ev.similarities(h, id)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{0.6, 0.8, 0}, {1, 0, 0}}
	for i := range want {
		for j := range want[i] {
			if math.Abs(sims.At(i, j)-want[i][j]) > 1e-6 {
				t.Errorf("cos[%d][%d] = %v, want %v", i, j, sims.At(i, j), want[i][j])
			}
		}
	}
}

// TestBadInput checks that each user mistake gives one clear line.
func TestBadInput(t *testing.T) {
	dir := synthShapes(t)
	missing := filepath.Join(t.TempDir(), "imagenet", "val")
	tests := []struct {
		name   string
		modify func(o *Options)
		want   []string
	}{
		{"missing id", func(o *Options) { o.ID.Path = missing; o.ID.Hint = "download ILSVRC2012 val" },
			[]string{"id set", missing, "does not exist", "download ILSVRC2012 val"}},
		{"missing ood", func(o *Options) { o.OOD = []DataSet{{Name: "textures", Path: missing}} },
			[]string{`ood set "textures"`, missing, "does not exist"}},
		{"missing class names", func(o *Options) { o.ClassNames = filepath.Join(dir, "classes.txt") },
			[]string{"class names", "classes.txt: no such file"}},
		{"missing templates", func(o *Options) { o.TemplateSpec = filepath.Join(dir, "t.txt") },
			[]string{"templates", "t.txt: no such file"}},
		{"missing split", func(o *Options) { o.ID.Split = "validation" }, []string{"id set", "validation"}},
		{"duplicate ood", func(o *Options) { o.OOD = append(o.OOD, o.OOD[0]) }, []string{`ood set "shapes-ood": name given twice`}},
		{"wrong class count", func(o *Options) { o.Classes = []string{"a", "b"} }, []string{"2 given", "has 5 classes"}},
		{"bad corruption", func(o *Options) { o.Corruptions = []Corruption{{JPEGQuality: 101}} }, []string{"JPEG quality in [1, 100]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := shapesOptions(t, dir)
			tc.modify(&o)
			ev, err := New(o)
			if err == nil {
				ev.Close()
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestPresets loads every shipped evaluation preset, checks it converts to
// options, and that absent data gives the preset's download hint.
func TestPresets(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "recipes", "eval", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("presets: %v %v", files, err)
	}
	tok := testTokenizer(t)
	t.Chdir(t.TempDir()) // the presets' relative data paths do not exist here
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := recipes.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.Given("quantization") {
				t.Error("an evaluation preset must not quantize")
			}
			if r.Eval.ID.Path == "" || r.Eval.ID.Hint == "" {
				t.Error("preset lacks eval.id.path or eval.id.hint")
			}
			for _, o := range r.Eval.OOD {
				if o.Hint == "" {
					t.Errorf("ood set %s has no hint", o.Name)
				}
			}
			o, err := FromRecipe(r.Eval)
			if err != nil {
				t.Fatal(err)
			}
			o.Backend, o.Tokenizer = testBackend(t), tok
			_, err = New(o)
			if err == nil || !strings.Contains(err.Error(), r.Eval.ID.Hint) || !strings.Contains(err.Error(), "does not exist") {
				t.Errorf("error %v, want the missing-data hint %q", err, r.Eval.ID.Hint)
			}
		})
	}
}

// TestFromRecipe maps every eval key.
func TestFromRecipe(t *testing.T) {
	r, err := recipes.Parse("r.yaml", []byte(`
eval:
  id: {path: val, split: validation, label_column: y, class_list: [cat, dog], templates: simple, hint: get it}
  ood: [{name: dtd, path: dtd, split: test, hint: get dtd}]
  logit_scale: 100
  mcm_temperature: 2
  ece_bins: 10
  fit_fraction: 0.3
  robustness: {noise_sigma: [0.1], jpeg_quality: [30, 50]}
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := FromRecipe(r.Eval)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		ID:          DataSet{Name: "id", Path: "val", Split: "validation", ImageColumn: "image", LabelColumn: "y", Hint: "get it"},
		FitFraction: 0.3, OOD: []DataSet{{Name: "dtd", Path: "dtd", Split: "test", ImageColumn: "image", Hint: "get dtd"}},
		Classes: []string{"cat", "dog"}, TemplateSpec: "simple", LogitScale: 100, MCMTemperature: 2, ECEBins: 10,
		Corruptions: []Corruption{{NoiseSigma: 0.1}, {JPEGQuality: 30}, {JPEGQuality: 50}},
	}
	gotJSON, _ := json.Marshal(o)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
	}
	bad := []struct{ yaml, want string }{
		{"eval:\n  robustness: {noise_sigma: [0]}\n", "eval.robustness.noise_sigma[0]: 0 must be a finite number > 0"},
		{"eval:\n  robustness: {jpeg_quality: [0]}\n", "eval.robustness.jpeg_quality[0]: 0 is outside [1, 100]"},
		{"eval:\n  id: {classnames: c.txt, class_list: [a]}\n", "give class_list or classnames, not both"},
	}
	for _, b := range bad {
		if _, err := recipes.Parse("bad.yaml", []byte(b.yaml)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: error %v, want %q", b.yaml, err, b.want)
		}
	}
}

// TestEpochHook drives the trainer's end-of-epoch adapter twice: the
// second epoch reuses the compiled graphs and the cached head.
func TestEpochHook(t *testing.T) {
	dir := synthShapes(t)
	opts := shapesOptions(t, dir)
	opts.CacheDir = t.TempDir()
	var log bytes.Buffer
	opts.Log = &log
	ev, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	cfg := tinyConfig(opts.Tokenizer)
	root := randomModel(t, cfg, 4) // unused root variables must not matter
	student := root.In("model")
	if err := randomCheckpoint(cfg, 6).SetVariables(student); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	hook := ev.EpochHook(cfg, nil, "", "tiny", out, nil)
	for epoch := range 2 {
		m, err := hook(root.In("model"), epoch)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"acc1", "ts_ece", "auroc", "fpr95"} {
			if _, ok := m[k]; !ok {
				t.Errorf("epoch %d: no %s in %v", epoch, k, m)
			}
		}
		if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("epoch-%03d", epoch), "report.md")); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(log.String(), "tiny epoch 1: zero-shot head 5 classes x 8 templates read from cache") {
		t.Errorf("second epoch did not reuse the head:\n%s", log.String())
	}
}
