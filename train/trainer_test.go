package train

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
)

// trainYAML is the train section shared by the tests.
const trainYAML = `train:
  epochs: 1
  batch_size: 8
  optimizer: {name: adamw, lr: 3e-3, weight_decay: 0.1, quantizer_lr: 1e-3}
  schedule: {name: constant}
  loss: {contrastive: 1.0}
`

// stepLosses reads the per-step total losses of a run folder.
func stepLosses(t *testing.T, dir string) []float64 {
	steps, _ := readMetrics(t, dir)
	var out []float64
	for _, s := range steps {
		out = append(out, s["loss"].(float64))
	}
	return out
}

func TestLossDecreases(t *testing.T) {
	cases := []struct {
		name  string
		quant string
		loss  string
	}{
		{"float-contrastive", floatQuant, ""},
		{"w8a8-lsq-contrastive", lsqQuant, ""},
		{"w8a8-lsq-distill-logits", lsqQuant, "train.loss.distill.weight=1"},
	}
	cfg := tinyConfig()
	be := goBackend(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sets []string
			if c.loss != "" {
				sets = append(sets, c.loss)
			}
			r := parseRecipe(t, c.quant+trainYAML, append(sets, "train.epochs=20")...)
			dir := t.TempDir()
			tr := newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 1),
				Data: memData(t, cfg, 8, 8, false, 3), RunDir: dir, LogEvery: 1, NoEval: true})
			res, err := tr.Run()
			if err != nil {
				t.Fatal(err)
			}
			losses := stepLosses(t, dir)
			if res.Steps != 20 || len(losses) != 20 {
				t.Fatalf("%d steps, %d logged losses, want 20", res.Steps, len(losses))
			}
			first, last := losses[0], losses[len(losses)-1]
			t.Logf("loss %.4f -> %.4f", first, last)
			if !(last < 0.7*first) {
				t.Errorf("loss did not decrease enough on a fixed batch: %.4f -> %.4f (all %v)", first, last, losses)
			}
		})
	}
}

// TestClipTinyQATLossDecreases trains the golden clip-tiny checkpoint with
// W8A8 LSQ for a few steps.
func TestClipTinyQATLossDecreases(t *testing.T) {
	path := testutil.SharedPath(t, "golden", "clip-tiny")
	ck, err := clip.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := parseRecipe(t, lsqQuant+trainYAML, "train.epochs=6", "train.loss.distill.weight=0.5")
	dir := t.TempDir()
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: ck,
		Data: memData(t, ck.Config, 8, 8, false, 5), RunDir: dir, LogEvery: 1})
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	losses := stepLosses(t, dir)
	t.Logf("losses %v", losses)
	if !(losses[len(losses)-1] < 0.8*losses[0]) {
		t.Errorf("clip-tiny W8A8 LSQ loss did not decrease: %v", losses)
	}
	// The student is quantized: some LSQ scales exist and were initialised.
	n := 0
	for _, v := range quantizers.LearnedVariables(tr.Student()) {
		if v.Name() == quantizers.VarScale {
			n++
		}
	}
	if n == 0 {
		t.Error("no LSQ scales in the student")
	}
}

func TestGroupOf(t *testing.T) {
	cfg := tinyConfig()
	ctx := context.New()
	if err := randomCheckpoint(cfg, 1).SetVariables(ctx.In(ModelScope)); err != nil {
		t.Fatal(err)
	}
	ctx.In(ModelScope).In("text_projection").In("weight_quant").Checked(false).VariableWithValue(quantizers.VarScale, []float32{1})
	want := map[string]Group{
		"/model/text_projection/weight":                           GroupDecay,
		"/model/vision_model.embeddings.patch_embedding/weight":   GroupDecay,
		"/model/vision_model.encoder.layers.0.mlp.fc1/weight":     GroupDecay,
		"/model/vision_model.encoder.layers.0.mlp.fc1/bias":       GroupNoDecay,
		"/model/vision_model.encoder.layers.0.layer_norm1/weight": GroupNoDecay,
		"/model/text_model.embeddings.token_embedding/weight":     GroupNoDecay,
		"/model/text_model.embeddings.position_embedding/weight":  GroupNoDecay,
		"/model/vision_model.embeddings/class_embedding":          GroupNoDecay,
		"/model/logit_scale":                                      GroupNoDecay,
		"/model/text_projection/weight_quant/scale":               GroupQuantizer,
	}
	seen := 0
	for v := range ctx.IterVariables() {
		if g, ok := want[v.ScopeAndName()]; ok {
			seen++
			if got := GroupOf(cfg, v); got != g {
				t.Errorf("%s: group %s, want %s", v.ScopeAndName(), got, g)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d variables", seen, len(want))
	}
}

// TestAdamWParamGroups runs one step whose loss (classification) reaches
// only the image tower: the text tower's parameters get zero gradient, so
// AdamW changes them only by decoupled weight decay, which applies to
// weight matrices and not to LayerNorm, embeddings or quantizer scales.
func TestAdamWParamGroups(t *testing.T) {
	cfg := tinyConfig()
	const lr, wd = 0.1, 0.5
	r := parseRecipe(t, lsqQuant+trainYAML, "train.loss.contrastive=0", "train.loss.classification=1",
		fmt.Sprint("train.optimizer.lr=", lr), fmt.Sprint("train.optimizer.weight_decay=", wd), "train.grad_clip=0")
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 2),
		Data: memData(t, cfg, 8, 8, false, 3), ClassHead: randomHead(4, cfg.ProjectionDim, 1), MaxSteps: 1})
	// Calibrate first so quantizer scales exist before the snapshot.
	if err := tr.calibrate(); err != nil {
		t.Fatal(err)
	}
	before := variableValues(t, tr.Context(), ModelScope)
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	after := variableValues(t, tr.Context(), ModelScope)
	check := func(name string, want func(x float32) float32) {
		t.Helper()
		b, a := before[name], after[name]
		if b == nil || a == nil {
			t.Fatalf("no variable %s", name)
		}
		for i := range b {
			w := want(b[i])
			if math.Abs(float64(a[i]-w)) > 1e-6*math.Max(1, math.Abs(float64(w))) {
				t.Fatalf("%s[%d] = %g, want %g (was %g)", name, i, a[i], w, b[i])
			}
		}
	}
	same := func(x float32) float32 { return x }
	decayed := func(x float32) float32 { return x * float32(1-lr*wd) }
	check("/model/text_model.final_layer_norm/weight", same)
	check("/model/text_model.final_layer_norm/bias", same)
	check("/model/text_model.embeddings.token_embedding/weight", same)
	check("/model/text_model.encoder.layers.0.mlp.fc1/bias", same)
	check("/model/text_model.encoder.layers.0.mlp.fc1/weight_quant/scale", same)
	check("/model/text_projection/weight", decayed)
	check("/model/text_model.encoder.layers.0.mlp.fc1/weight", decayed)
	// The image tower trained: its LayerNorm moved by more than decay would.
	if slices.Equal(before["/model/vision_model.post_layernorm/weight"], after["/model/vision_model.post_layernorm/weight"]) {
		t.Error("vision post_layernorm did not change")
	}
	if slices.Equal(before["/model/visual_projection/weight_quant/scale"], after["/model/visual_projection/weight_quant/scale"]) {
		t.Error("visual_projection weight scale did not change")
	}
}

// TestFreezeTower checks that train.freeze keeps a whole tower fixed.
func TestFreezeTower(t *testing.T) {
	cfg := tinyConfig()
	r := parseRecipe(t, lsqQuant+trainYAML, "train.freeze=[text_model, logit_scale]", "train.epochs=2")
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 2),
		Data: memData(t, cfg, 8, 8, false, 3)})
	if err := tr.calibrate(); err != nil {
		t.Fatal(err)
	}
	before := variableValues(t, tr.Context(), ModelScope)
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	after := variableValues(t, tr.Context(), ModelScope)
	changed := 0
	for name, b := range before {
		moved := !slices.Equal(b, after[name])
		frozen := strings.HasPrefix(name, "/model/text_model.") || name == "/model/logit_scale"
		if frozen && moved && !strings.HasSuffix(name, "/min") && !strings.HasSuffix(name, "/max") {
			t.Errorf("frozen %s changed", name)
		}
		if !frozen && moved {
			changed++
		}
	}
	if changed == 0 {
		t.Error("nothing outside the frozen tower trained")
	}
}

// TestGradAccumEquivalence checks that 2 micro-batches of 4 accumulate to
// the same update as one batch of 8, for a loss that is a mean over
// examples (classification) with SGD.
func TestGradAccumEquivalence(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	pixels, ids, labels := randomExamples(cfg, 24, 4, 9)
	head := randomHead(4, cfg.ProjectionDim, 2)
	run := func(batch, accum int) (map[string][]float32, []float64) {
		r := parseRecipe(t, floatQuant+trainYAML, "train.loss.contrastive=0", "train.loss.classification=1",
			"train.optimizer.name=sgd", "train.optimizer.lr=0.5", fmt.Sprint("train.grad_accum=", accum))
		d, err := NewMemoryData(pixels, ids, labels, 24, batch, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		tr := newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 4), Data: d, ClassHead: head, RunDir: dir, LogEvery: 1})
		res, err := tr.Run()
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps != 3 {
			t.Fatalf("batch %d accum %d: %d steps, want 3", batch, accum, res.Steps)
		}
		return variableValues(t, tr.Context(), ModelScope), stepLosses(t, dir)
	}
	w1, l1 := run(8, 1)
	w2, l2 := run(4, 2)
	for i := range l1 {
		if math.Abs(l1[i]-l2[i]) > 1e-5 {
			t.Errorf("step %d loss %g (batch 8) vs %g (2 x 4)", i, l1[i], l2[i])
		}
	}
	maxDiff, moved := 0.0, 0.0
	before := randomCheckpoint(cfg, 4).Weights["vision_model.post_layernorm.weight"]
	for name, a := range w1 {
		b := w2[name]
		for i := range a {
			maxDiff = math.Max(maxDiff, math.Abs(float64(a[i]-b[i])))
		}
	}
	for i, x := range w1["/model/vision_model.post_layernorm/weight"] {
		moved = math.Max(moved, math.Abs(float64(x-before[i])))
	}
	t.Logf("max |w(8) - w(2x4)| = %g; post_layernorm moved by up to %g", maxDiff, moved)
	if maxDiff > 1e-5 || moved < 1e-3 {
		t.Errorf("accumulated run differs by %g (weights moved by %g)", maxDiff, moved)
	}
}

// resumeRecipe is the recipe of the resume tests: LSQ, distillation,
// warmup + cosine, shuffled data, checkpoints every 3 steps.
func resumeRecipe(t *testing.T) string {
	return lsqQuant + `train:
  epochs: 2
  batch_size: 4
  optimizer: {name: adamw, lr: 3e-3, weight_decay: 0.1, quantizer_lr: 1e-3}
  schedule: {name: cosine, warmup_steps: 2}
  loss: {contrastive: 1.0, distill: {weight: 0.5, kind: logits, temperature: 2}}
  checkpoint: {every_steps: 3, keep: 2}
`
}

// TestResumeBitIdentical interrupts a run in its second epoch, resumes it
// from the last checkpoint, and checks that weights, optimizer state,
// quantizer state and metrics equal those of an uninterrupted run.
func TestResumeBitIdentical(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	r := parseRecipe(t, resumeRecipe(t))
	eval := func(ctx *context.Context, epoch int) (map[string]float64, error) {
		v := ctx.GetVariableByScopeAndName(ctx.Scope(), "logit_scale")
		val, err := v.Value()
		if err != nil {
			return nil, err
		}
		return map[string]float64{"acc1": float64(epoch) + 0.5, "ts_ece": float64(val.Value().(float32))}, nil
	}
	opts := func(dir string) Options {
		return Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 6), Data: memData(t, cfg, 16, 4, true, 8),
			RunDir: dir, LogEvery: 1, EpochEnd: eval}
	}
	straight := t.TempDir()
	tr := newTrainer(t, opts(straight))
	res, err := tr.Run()
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 8 || res.Epochs != 2 {
		t.Fatalf("straight run: %+v", res)
	}
	want := variableValues(t, tr.Context(), ModelScope, OptimizerScope)
	tr.Close()

	// Interrupt at step 5 (just after the epoch-0 checkpoint of step 4),
	// resume, interrupt at step 7 (after the mid-epoch checkpoint of step
	// 6), resume to the end.
	interrupted := t.TempDir()
	var tr2 *Trainer
	for i, stop := range []int{5, 7, 0} {
		o := opts(interrupted)
		o.MaxSteps = stop
		o.Resume = i > 0
		var log bytes.Buffer
		o.Log = &log
		tr2 = newTrainer(t, o)
		res2, err := tr2.Run()
		if err != nil {
			t.Fatal(err)
		}
		if wantFrom := []string{"", "step-00000004", "step-00000006"}[i]; wantFrom != "" && !strings.Contains(log.String(), "resuming from "+filepath.Join(interrupted, CheckpointsDir, wantFrom)) {
			t.Errorf("run %d should resume from %s; log: %s", i, wantFrom, log.String())
		}
		if stop > 0 && (!res2.Stopped || res2.Steps != stop) {
			t.Fatalf("run %d: %+v, want stopped at %d", i, res2, stop)
		}
		if stop == 0 && (res2.Steps != 8 || res2.Epochs != 2 || res2.Stopped) {
			t.Fatalf("resumed run: %+v", res2)
		}
		if stop > 0 {
			tr2.Close()
		}
	}
	got := variableValues(t, tr2.Context(), ModelScope, OptimizerScope)
	sameVariables(t, got, want)
	s1, e1 := readMetrics(t, straight)
	s2, e2 := readMetrics(t, interrupted)
	if len(s1) != len(s2) || len(e1) != len(e2) || len(e1) != 2 {
		t.Fatalf("metrics: %d/%d step lines, %d/%d epoch lines", len(s1), len(s2), len(e1), len(e2))
	}
	for i := range s1 {
		delete(s1[i], "images_per_s")
		delete(s2[i], "images_per_s")
		if fmt.Sprint(s1[i]) != fmt.Sprint(s2[i]) {
			t.Errorf("metrics line %d: %v vs %v", i, s1[i], s2[i])
		}
	}
	// keep: 2 plus the best (acc1 max: the last epoch, also the newest).
	paths, _ := ListCheckpoints(filepath.Join(straight, CheckpointsDir))
	if len(paths) != 2 || filepath.Base(paths[1]) != "step-00000008" {
		t.Errorf("checkpoints kept: %v", paths)
	}
	if filepath.Base(res.BestCheckpoint) != "step-00000008" {
		t.Errorf("best checkpoint %q", res.BestCheckpoint)
	}
}

// TestBestCheckpointKept checks that the best checkpoint survives pruning
// when it is not among the newest.
func TestBestCheckpointKept(t *testing.T) {
	cfg := tinyConfig()
	r := parseRecipe(t, floatQuant+trainYAML, "train.epochs=4", "train.checkpoint.keep=1",
		"train.checkpoint.best.metric=ts_ece", "train.checkpoint.best.mode=min")
	dir := t.TempDir()
	scores := []float64{0.3, 0.1, 0.2, 0.4}
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 1), Data: memData(t, cfg, 8, 8, false, 1),
		RunDir: dir, EpochEnd: func(_ *context.Context, epoch int) (map[string]float64, error) {
			return map[string]float64{"ts_ece": scores[epoch]}, nil
		}})
	res, err := tr.Run()
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := ListCheckpoints(filepath.Join(dir, CheckpointsDir))
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	if !slices.Equal(names, []string{"step-00000002", "step-00000004"}) || filepath.Base(res.BestCheckpoint) != "step-00000002" {
		t.Errorf("kept %v, best %s", names, res.BestCheckpoint)
	}
}

// TestNaNStops feeds a NaN image at the third step.
func TestNaNStops(t *testing.T) {
	cfg := tinyConfig()
	pixels, ids, labels := randomExamples(cfg, 32, 4, 3)
	per := 3 * cfg.Vision.ImageSize * cfg.Vision.ImageSize
	pixels[2*8*per+5] = float32(math.NaN()) // an image of batch 2
	d, err := NewMemoryData(pixels, ids, labels, 32, 8, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	r := parseRecipe(t, lsqQuant+trainYAML, "train.checkpoint.every_steps=1")
	dir := t.TempDir()
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 1), Data: d, RunDir: dir})
	_, err = tr.Run()
	if err == nil {
		t.Fatal("no error for a NaN loss")
	}
	msg := err.Error()
	last := filepath.Join(dir, CheckpointsDir, "step-00000002")
	if !strings.Contains(msg, "step 2 ") || !strings.Contains(msg, "NaN") || !strings.Contains(msg, last) {
		t.Errorf("error %q should name step 2, NaN and %s", msg, last)
	}
	if _, err := VerifyCheckpoint(last); err != nil {
		t.Errorf("last good checkpoint: %v", err)
	}
	for name, vals := range variableValues(t, tr.Context(), ModelScope) {
		for _, x := range vals {
			if math.IsNaN(float64(x)) && !strings.HasSuffix(name, "_quant/scale") {
				t.Fatalf("%s holds NaN after the stopped step", name)
			}
		}
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l1, err := LockRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockRun(dir)
	if err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Fatalf("second lock: %v", err)
	}
	cfg := tinyConfig()
	_, err = New(Options{Recipe: parseRecipe(t, floatQuant+trainYAML), Backend: goBackend(t), Model: randomCheckpoint(cfg, 1), RunDir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("trainer on a locked run folder: %v", err)
	}
	if err := l1.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockRun(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestRunFolderNeedsResume(t *testing.T) {
	cfg := tinyConfig()
	r := parseRecipe(t, floatQuant+trainYAML)
	dir := t.TempDir()
	be := goBackend(t)
	tr := newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 1), Data: memData(t, cfg, 8, 8, false, 1), RunDir: dir})
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if _, err := os.Stat(filepath.Join(dir, RecipeFile)); err != nil {
		t.Errorf("resolved recipe not saved: %v", err)
	}
	tr2 := newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 1), Data: memData(t, cfg, 8, 8, false, 1), RunDir: dir})
	_, err := tr2.Run()
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run without resume: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	ck := randomCheckpoint(cfg, 1)
	if _, err := New(Options{Recipe: parseRecipe(t, floatQuant+trainYAML, "train.loss.classification=1"), Backend: be, Model: ck}); err == nil ||
		!strings.Contains(err.Error(), "zero-shot head") {
		t.Errorf("classification without head: %v", err)
	}
	tr := newTrainer(t, Options{Recipe: parseRecipe(t, floatQuant+trainYAML), Backend: be, Model: ck,
		Data: memData(t, tinyConfig2(), 8, 8, false, 1)})
	if _, err := tr.Run(); err == nil || !strings.Contains(err.Error(), "pixel values") {
		t.Errorf("wrong image size: %v", err)
	}
}

// TestBF16Training trains the same W8A8 LSQ student in f32 and with
// train.precision bf16 (matmuls in bfloat16, the rest float32): the bf16
// losses follow the f32 ones to bfloat16 accuracy and still fall, and the
// stored weights stay float32.
func TestBF16Training(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	losses := map[string][]float64{}
	for _, prec := range []string{"f32", "bf16"} {
		dir := t.TempDir()
		var log bytes.Buffer
		tr := newTrainer(t, Options{Recipe: parseRecipe(t, lsqQuant+trainYAML, "train.epochs=12", "train.precision="+prec),
			Backend: be, Model: randomCheckpoint(cfg, 1), Data: memData(t, cfg, 8, 8, false, 3), RunDir: dir, LogEvery: 1, NoEval: true, Log: &log})
		if _, err := tr.Run(); err != nil {
			t.Fatalf("%s: %v", prec, err)
		}
		losses[prec] = stepLosses(t, dir)
		if prec == "bf16" && !strings.Contains(log.String(), "bf16 on the pure-Go backend") {
			t.Errorf("no warning about bf16 on the pure-Go backend in the log:\n%s", log.String())
		}
		for v := range tr.Student().IterVariablesInScope() {
			if dt := v.Shape().DType.String(); v.Shape().DType.IsFloat() && dt != "Float32" {
				t.Errorf("%s: variable %s is %s, want float32", prec, v.ScopeAndName(), dt)
			}
		}
	}
	f, b := losses["f32"], losses["bf16"]
	t.Logf("f32 %.4f -> %.4f, bf16 %.4f -> %.4f", f[0], f[len(f)-1], b[0], b[len(b)-1])
	if d := math.Abs(f[0]-b[0]) / f[0]; d > 3e-2 || d == 0 {
		t.Errorf("first loss f32 %.6f vs bf16 %.6f: relative difference %.2g, want (0, 0.03]", f[0], b[0], d)
	}
	if last := b[len(b)-1]; !(last < 0.8*b[0]) {
		t.Errorf("bf16 loss did not fall: %v", b)
	}
}

// tinyConfig2 differs from tinyConfig in image size.
func tinyConfig2() clip.Config {
	cfg := tinyConfig()
	cfg.Vision.ImageSize = 12
	return cfg
}

// TestQuantizerSchedule checks the recipe's quantization schedule:
// quantization starts at start_step, learned scales stop changing at
// freeze_scales_at_step.
func TestQuantizerSchedule(t *testing.T) {
	cfg := tinyConfig()
	r := parseRecipe(t, lsqQuant+trainYAML, "train.epochs=6", "train.checkpoint.every_steps=1", "train.checkpoint.keep=10",
		"quantization.schedule.start_step=2", "quantization.schedule.freeze_scales_at_step=4")
	dir := t.TempDir()
	var log bytes.Buffer
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 1),
		Data: memData(t, cfg, 8, 8, false, 2), RunDir: dir, Log: &log})
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"step 0 (epoch 0): quantization off", "step 2 (epoch 2): quantization on", "step 4 (epoch 4): quantization on, observers updating, quantizer parameters frozen"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// state returns a quantizer variable after the given number of steps.
	state := func(step int, name string) []float32 {
		ctx := context.New()
		if _, err := LoadCheckpoint(ctx, filepath.Join(dir, CheckpointsDir, checkpointName(step))); err != nil {
			t.Fatal(err)
		}
		return variableValues(t, ctx, ModelScope)["/model/vision_model.encoder.layers.0.mlp.fc1/"+name]
	}
	if e := state(1, "input_quant/enabled"); e[0] != 0 {
		t.Errorf("quantizer enabled after step 1: %v", e)
	}
	if e := state(3, "input_quant/enabled"); e[0] != 1 {
		t.Errorf("quantizer disabled after step 3: %v", e)
	}
	scale := "weight_quant/scale"
	if slices.Equal(state(2, scale), state(4, scale)) {
		t.Error("LSQ scale did not learn in steps 2-3")
	}
	if !slices.Equal(state(4, scale), state(6, scale)) {
		t.Error("LSQ scale changed after freeze_scales_at_step 4")
	}
	if f := state(5, "weight_quant/frozen"); f[0] != 1 {
		t.Errorf("frozen flag %v after step 5", f)
	}
}

// TestGradClip checks global-norm clipping: with SGD (lr 1, no decay) the
// update is the clipped gradient, whose global norm is grad_clip.
func TestGradClip(t *testing.T) {
	cfg := tinyConfig()
	const clipNorm = 1e-3
	r := parseRecipe(t, floatQuant+trainYAML, "train.optimizer.name=sgd", "train.optimizer.lr=1",
		"train.optimizer.weight_decay=0", fmt.Sprint("train.grad_clip=", clipNorm))
	dir := t.TempDir()
	tr := newTrainer(t, Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 1),
		Data: memData(t, cfg, 8, 8, false, 2), RunDir: dir, LogEvery: 1})
	before := variableValues(t, tr.Context(), ModelScope)
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	after := variableValues(t, tr.Context(), ModelScope)
	sq := 0.0
	for name, b := range before {
		for i := range b {
			d := float64(after[name][i] - b[i])
			sq += d * d
		}
	}
	steps, _ := readMetrics(t, dir)
	gn := steps[0]["grad_norm"].(float64)
	if gn <= clipNorm {
		t.Fatalf("gradient norm %g is below the clip; the test needs a larger one", gn)
	}
	if got := math.Sqrt(sq); math.Abs(got-clipNorm) > 1e-3*clipNorm {
		t.Errorf("update norm %g, want the clip %g (unclipped gradient norm %g)", got, clipNorm, gn)
	}
}

func TestZeroShotHead(t *testing.T) {
	cfg := tinyConfig()
	ck := randomCheckpoint(cfg, 3)
	_, ids, _ := randomExamples(cfg, 6, 1, 4)
	l := cfg.Text.MaxPositionEmbeddings
	be := goBackend(t)
	head, err := ZeroShotHead(be, ck, ids, 3, 2, l)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.ProjectionDim
	// One template per class: each row is the normalised text embedding.
	single, err := ZeroShotHead(be, ck, ids, 6, 1, l)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		var want []float64
		norm := 0.0
		for i := range d {
			x := float64(single[2*c*d+i] + single[(2*c+1)*d+i])
			want = append(want, x)
			norm += x * x
		}
		for i := range d {
			if math.Abs(float64(head[c*d+i])-want[i]/math.Sqrt(norm)) > 1e-5 {
				t.Fatalf("class %d: head %v, want the normalised mean of its templates %v", c, head[c*d:(c+1)*d], want)
			}
		}
	}
	if _, err := ZeroShotHead(be, ck, ids[:5], 3, 2, l); err == nil {
		t.Error("wrong number of ids accepted")
	}
}
