package train

import (
	"errors"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"github.com/qatclip/qatclip/internal/backend"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
	"github.com/qatclip/qatclip/recipes"
)

// RecipeFile is the name of the resolved recipe saved in a run folder.
const RecipeFile = "recipe.yaml"

// CheckpointsDir is the folder of a run's checkpoints.
const CheckpointsDir = "checkpoints"

// EpochEndFunc evaluates the student at the end of an epoch (counting from
// 0). ctx is the student's scope (/model): pass it, with [Trainer.Config]
// and [Trainer.Hook], to clip.ImageFeatures and clip.TextFeatures. The
// metrics it returns are logged to metrics.jsonl, stored in the epoch's
// checkpoint and used to pick the best checkpoint
// (train.checkpoint.best).
type EpochEndFunc func(ctx *context.Context, epoch int) (map[string]float64, error)

// Options configures a Trainer.
type Options struct {
	// Recipe is the validated recipe (recipes.Load) to train. Required.
	Recipe *recipes.Recipe
	// Backend runs the graphs (internal/backend.Open). Required.
	Backend backends.Backend
	// Model holds the starting float weights; nil loads Recipe.Model.Source.
	Model *clip.Checkpoint
	// Data is the training set. Required by Run.
	Data Batches
	// RunDir is the run folder (checkpoints, metrics.jsonl, recipe.yaml,
	// lock). Empty runs without writing files: no checkpoints, no metrics.
	RunDir string
	// Resume continues from the newest valid checkpoint of RunDir. Without
	// it, a RunDir that already holds checkpoints is an error.
	Resume bool
	// NoEval skips EpochEnd.
	NoEval bool
	// EpochEnd is called at the end of the epochs eval.every_epochs
	// selects (and after the last one); nil evaluates nothing.
	EpochEnd EpochEndFunc
	// ClassHead holds the zero-shot head of the classification loss: C
	// class embeddings of projection_dim values each, rows L2-normalised
	// (see ZeroShotHead). Required when train.loss.classification > 0.
	ClassHead []float32
	// Log receives log lines and warnings; nil discards them.
	Log io.Writer
	// Progress receives the progress bar (on a terminal) or periodic
	// progress lines; nil uses Log.
	Progress io.Writer
	// LogEvery is the number of optimizer steps between metrics.jsonl
	// lines and progress lines (default 10). Every step is checked for
	// NaN/Inf regardless.
	LogEvery int
	// MaxSteps stops Run after this many optimizer steps in all (as if
	// the run were interrupted: no final checkpoint); 0 runs every epoch.
	MaxSteps int
	// OnStep, when set, is called after every optimizer step with where
	// its time went (benchmarks and profiling use it).
	OnStep func(StepTiming)
}

// Result summarises a Run.
type Result struct {
	// Steps is the number of optimizer steps done (including those of
	// earlier, resumed runs).
	Steps int
	// Epochs is the number of completed epochs.
	Epochs int
	// Loss is the total loss of the last step.
	Loss float64
	// LastCheckpoint is the newest checkpoint folder ("" when none).
	LastCheckpoint string
	// BestCheckpoint is the best checkpoint folder by
	// train.checkpoint.best ("" when none has evaluation metrics).
	BestCheckpoint string
	// Stopped is true when Run stopped at Options.MaxSteps.
	Stopped bool
}

// Trainer trains a quantized CLIP student (see the package documentation).
type Trainer struct {
	opts    Options
	recipe  *recipes.Recipe
	backend backends.Backend
	cfg     clip.Config
	hook    *layers.QuantHook
	plan    *recipes.Plan
	ctx     *context.Context
	head    []float32
	freeze  []recipes.Pattern
	best    []recipes.MetricTerm
	log     io.Writer
	lock    *RunLock

	execs map[stepKind]*context.Exec
	calib *context.Exec
	// lifecycle is the quantizer state last set ("" before the first step).
	lifecycle string
	// teacherSHA fingerprints the teacher's weights (train.teacher_cache).
	teacherSHA string
	// teacher holds the cached teacher outputs once computed or loaded.
	teacher *teacherCache
}

// New builds a trainer: it loads the starting weights into the student
// (and, with distillation, the teacher), builds the recipe's quantizers
// and, with a RunDir, takes the run folder's lock and saves the resolved
// recipe there. Call Close when done.
func New(opts Options) (*Trainer, error) {
	r := opts.Recipe
	switch {
	case r == nil:
		return nil, errors.New("train: no recipe")
	case opts.Backend == nil:
		return nil, errors.New("train: no backend")
	}
	t := &Trainer{opts: opts, recipe: r, backend: opts.Backend, log: opts.Log, execs: map[stepKind]*context.Exec{}}
	if t.log == nil {
		t.log = io.Discard
	}
	for _, f := range r.Train.Freeze {
		p, err := recipes.ParsePattern(f)
		if err != nil {
			return nil, fmt.Errorf("recipe %s: train.freeze: %w", r.Source(), err)
		}
		t.freeze = append(t.freeze, p)
	}
	var err error
	if t.best, err = recipes.ParseMetric(r.Train.Checkpoint.Best.Metric); err != nil {
		return nil, fmt.Errorf("recipe %s: train.checkpoint.best.metric: %w", r.Source(), err)
	}
	ck := opts.Model
	if ck == nil {
		if ck, err = clip.Load(r.Model.Source); err != nil {
			return nil, fmt.Errorf("recipe %s: model.source: %w", r.Source(), err)
		}
	}
	t.cfg = ck.Config
	if t.hook, t.plan, err = clip.QuantHook(r, t.cfg); err != nil {
		return nil, err
	}
	if r.Train.Loss.Classification > 0 {
		d := t.cfg.ProjectionDim
		if len(opts.ClassHead) == 0 || len(opts.ClassHead)%d != 0 {
			return nil, fmt.Errorf("recipe %s: train.loss.classification is %g but no zero-shot head of [C, %d] class embeddings was given (got %d values)",
				r.Source(), r.Train.Loss.Classification, d, len(opts.ClassHead))
		}
		t.head = opts.ClassHead
	}
	if r.Train.TeacherCache {
		if r.Train.Loss.Distill.Weight == 0 {
			fmt.Fprintln(t.log, "train.teacher_cache: no loss term runs the teacher (train.loss.distill.weight is 0); nothing to cache")
		} else if t.teacherSHA, err = modelFingerprint(ck); err != nil {
			return nil, err
		}
	}

	t.ctx = context.New().Checked(false)
	if err := layers.SetMatMulPrecision(t.ctx, r.Train.Precision); err != nil {
		return nil, fmt.Errorf("recipe %s: train.precision: %w", r.Source(), err)
	}
	if backend.IsGo(opts.Backend) && r.Train.Precision == "bf16" {
		fmt.Fprintln(t.log, "warning: train.precision bf16 on the pure-Go backend emulates bfloat16 matmuls, which is slower than f32 there; bf16 pays off on a GPU")
	}
	if err := ck.SetVariables(t.ctx.In(ModelScope)); err != nil {
		return nil, err
	}
	if r.Train.Loss.Distill.Weight > 0 {
		tctx := t.ctx.In(TeacherScope)
		if err := ck.SetVariables(tctx); err != nil {
			return nil, err
		}
		for v := range tctx.IterVariablesInScope() {
			v.SetTrainable(false)
		}
	}
	if opts.RunDir != "" {
		if t.lock, err = LockRun(opts.RunDir); err != nil {
			return nil, err
		}
		y, err := r.Marshal()
		if err == nil {
			err = atomicfile.WriteBytes(filepath.Join(opts.RunDir, RecipeFile), y)
		}
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("run folder %s: save recipe: %w", opts.RunDir, err)
		}
	}
	return t, nil
}

// Close releases the run folder's lock.
func (t *Trainer) Close() error {
	return t.lock.Release()
}

// Context returns the trainer's root context (scopes in the package
// documentation).
func (t *Trainer) Context() *context.Context { return t.ctx }

// Student returns the student's context (scope /model), whose variables
// use HF names as clip.Params lists them.
func (t *Trainer) Student() *context.Context { return t.ctx.In(ModelScope) }

// Config returns the model configuration.
func (t *Trainer) Config() clip.Config { return t.cfg }

// Hook returns the student's quantization hook.
func (t *Trainer) Hook() *layers.QuantHook { return t.hook }

// Plan returns the resolved per-layer quantization plan.
func (t *Trainer) Plan() *recipes.Plan { return t.plan }

// keepInCheckpoint selects the variables a checkpoint saves: all but the
// teacher (the starting weights, reloaded from the model source) and the
// gradient accumulators (zero between optimizer steps).
func keepInCheckpoint(v *context.Variable) bool {
	for _, s := range []string{TeacherScope, AccumScope} {
		p := context.RootScope + s
		if v.Scope() == p || strings.HasPrefix(v.Scope(), p+context.ScopeSeparator) {
			return false
		}
	}
	return true
}

// position is where training stands.
type position struct {
	step, epoch, batch int
}

// exec returns the compiled step of kind k, building it on first use.
func (t *Trainer) exec(k stepKind) (*context.Exec, error) {
	if e, ok := t.execs[k]; ok {
		return e, nil
	}
	e, err := context.NewExec(t.backend, t.ctx, t.stepGraph(k))
	if err != nil {
		return nil, fmt.Errorf("build training step: %w", err)
	}
	t.execs[k] = e
	return e, nil
}

// setLifecycle sets the quantizers' enabled and frozen flags for the step
// and epoch from the recipe's schedule, and reports whether learned
// quantizer parameters are frozen.
func (t *Trainer) setLifecycle(step, epoch int) (scalesFrozen bool, err error) {
	s := t.recipe.Quantization.Schedule
	at := func(stepAt, epochAt *int) bool {
		return (stepAt != nil && step >= *stepAt) || (epochAt != nil && epoch >= *epochAt)
	}
	enabled := (s.StartStep == nil && s.StartEpoch == nil) || at(s.StartStep, s.StartEpoch)
	obsFrozen := at(s.FreezeObserversAtStep, s.FreezeObserversAtEpoch)
	scalesFrozen = at(s.FreezeScalesAtStep, s.FreezeScalesAtEpoch)
	state := fmt.Sprint(enabled, obsFrozen, scalesFrozen)
	if state == t.lifecycle {
		return scalesFrozen, nil
	}
	mctx := t.Student()
	if err := quantizers.SetEnabled(mctx, enabled); err != nil {
		return false, err
	}
	if err := quantizers.SetFrozen(mctx, quantizers.FreezeObservers, obsFrozen); err != nil {
		return false, err
	}
	if err := quantizers.SetFrozen(mctx, quantizers.FreezeLearned, scalesFrozen); err != nil {
		return false, err
	}
	if t.lifecycle != "" || !enabled || obsFrozen || scalesFrozen {
		fmt.Fprintf(t.log, "step %d (epoch %d): quantization %s, observers %s, quantizer parameters %s\n",
			step, epoch, onOff(enabled, "on", "off"), onOff(obsFrozen, "frozen", "updating"), onOff(scalesFrozen, "frozen", "learning"))
	}
	t.lifecycle = state
	return scalesFrozen, nil
}

// onOff picks a word.
func onOff(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// batchTensors checks a batch against the model and converts it to the
// graph's inputs.
func (t *Trainer) batchTensors(b Batch, where string) (pixels, ids, labels *tensors.Tensor, err error) {
	v := t.cfg.Vision
	per := v.NumChannels * v.ImageSize * v.ImageSize
	switch {
	case b.N < 1:
		return nil, nil, nil, fmt.Errorf("%s: empty batch", where)
	case len(b.Pixels) != b.N*per:
		return nil, nil, nil, fmt.Errorf("%s: %d pixel values, want %d images of %dx%dx%d", where, len(b.Pixels), b.N, v.NumChannels, v.ImageSize, v.ImageSize)
	case len(b.InputIDs) == 0 || len(b.InputIDs)%b.N != 0:
		return nil, nil, nil, fmt.Errorf("%s: %d token ids do not split into %d sequences", where, len(b.InputIDs), b.N)
	case b.SeqLen() > t.cfg.Text.MaxPositionEmbeddings:
		return nil, nil, nil, fmt.Errorf("%s: sequences of %d tokens, longer than the model's %d", where, b.SeqLen(), t.cfg.Text.MaxPositionEmbeddings)
	case b.Labels != nil && len(b.Labels) != b.N:
		return nil, nil, nil, fmt.Errorf("%s: %d labels for %d examples", where, len(b.Labels), b.N)
	}
	lab := b.Labels
	if lab == nil {
		lab = make([]int32, b.N)
		for i := range lab {
			lab[i] = -1
		}
	}
	if t.head != nil {
		c := int32(len(t.head) / t.cfg.ProjectionDim)
		for i, l := range lab {
			if l >= c {
				return nil, nil, nil, fmt.Errorf("%s: label %d of example %d is outside the head's %d classes", where, l, i, c)
			}
		}
	}
	pixels = tensors.FromFlatDataAndDimensions(b.Pixels, b.N, v.NumChannels, v.ImageSize, v.ImageSize)
	ids = tensors.FromFlatDataAndDimensions(b.InputIDs, b.N, b.SeqLen())
	labels = tensors.FromFlatDataAndDimensions(lab, b.N)
	return pixels, ids, labels, nil
}

// needsCalibration reports whether some quantizer has no range yet.
func (t *Trainer) needsCalibration() bool {
	if t.hook.NumSites() == 0 {
		return false
	}
	vars := quantizers.Variables(t.Student())
	if len(vars) == 0 {
		return true
	}
	for _, v := range vars {
		if v.Name() != quantizers.VarInitialized {
			continue
		}
		val, err := v.Value()
		if err != nil || tensors.MustCopyFlatData[float32](val)[0] == 0 {
			return true
		}
	}
	return false
}

// calibrate runs the first calibration_batches batches of epoch 0 through
// the student with quantization off, so observers see float activations
// and learned quantizers initialise from them.
func (t *Trainer) calibrate() error {
	n := min(t.recipe.Quantization.Schedule.CalibrationBatches, t.opts.Data.NumBatches())
	if n <= 0 || !t.needsCalibration() {
		return nil
	}
	if err := quantizers.SetEnabled(t.Student(), false); err != nil {
		return err
	}
	t.lifecycle = ""
	if t.calib == nil {
		e, err := context.NewExec(t.backend, t.ctx, t.calibrateGraph)
		if err != nil {
			return fmt.Errorf("build calibration graph: %w", err)
		}
		t.calib = e
	}
	it, err := t.opts.Data.Epoch(0, 0)
	if err != nil {
		return fmt.Errorf("calibration data: %w", err)
	}
	defer it.Close()
	start := time.Now()
	for i := range n {
		b, err := it.Next()
		if err != nil {
			return fmt.Errorf("calibration batch %d: %w", i, err)
		}
		pixels, ids, _, err := t.batchTensors(b, fmt.Sprintf("calibration batch %d", i))
		if err != nil {
			return err
		}
		if _, err := t.calib.Exec(pixels, ids); err != nil {
			return fmt.Errorf("calibration batch %d: %w", i, err)
		}
	}
	fmt.Fprintf(t.log, "calibrated %d quantizers on %d batches in %s\n", t.hook.NumSites(), n, time.Since(start).Round(time.Millisecond))
	return nil
}

// stepsPerEpoch returns the optimizer steps of one epoch.
func (t *Trainer) stepsPerEpoch() int {
	return t.opts.Data.NumBatches() / t.recipe.Train.GradAccum
}

// evalDue reports whether the end of epoch is evaluated.
func (t *Trainer) evalDue(epoch int) bool {
	if t.opts.NoEval || t.opts.EpochEnd == nil {
		return false
	}
	last := epoch == t.recipe.Train.Epochs-1
	every := t.recipe.Eval.EveryEpochs
	return last || (every > 0 && (epoch+1)%every == 0)
}

// Run trains for the recipe's epochs (or until Options.MaxSteps) and
// returns a summary. With Options.Resume it continues from the run's
// newest valid checkpoint, skipping corrupt ones with a warning.
func (t *Trainer) Run() (res *Result, err error) {
	r := t.recipe
	if t.opts.Data == nil {
		return nil, errors.New("train: no training data")
	}
	spe := t.stepsPerEpoch()
	if spe < 1 {
		return nil, fmt.Errorf("train: %d batches per epoch with train.grad_accum %d: %w", t.opts.Data.NumBatches(), r.Train.GradAccum, errNoBatches)
	}
	total := spe * r.Train.Epochs
	res = &Result{}
	pos := position{}
	ckDir := ""
	var metrics *metricsLog
	if t.opts.RunDir != "" {
		ckDir = filepath.Join(t.opts.RunDir, CheckpointsDir)
		removeStaleTemps(ckDir)
		keepUpTo := -1
		paths, err := ListCheckpoints(ckDir)
		if err != nil {
			return nil, err
		}
		if len(paths) > 0 && !t.opts.Resume {
			return nil, fmt.Errorf("run folder %s already holds checkpoints: pass --resume to continue it, or choose another --out", t.opts.RunDir)
		}
		if t.opts.Resume {
			info, err := LatestCheckpoint(ckDir, t.log)
			if err != nil {
				return nil, err
			}
			switch {
			case info != nil:
				m, err := LoadCheckpoint(t.ctx, info.Dir)
				if err != nil {
					return nil, err
				}
				pos = position{step: m.Step, epoch: m.Epoch, batch: m.Batch}
				keepUpTo = m.Step
				res.LastCheckpoint = info.Dir
				fmt.Fprintf(t.log, "resuming from %s: step %d, epoch %d, batch %d\n", info.Dir, m.Step, m.Epoch, m.Batch)
			case len(paths) > 0:
				return nil, fmt.Errorf("run folder %s: no checkpoint is valid (all %d are corrupt); cannot resume", t.opts.RunDir, len(paths))
			default:
				fmt.Fprintf(t.log, "no checkpoint in %s: starting from the beginning\n", ckDir)
				keepUpTo = 0
			}
		}
		if metrics, err = openMetrics(t.opts.RunDir, keepUpTo); err != nil {
			return nil, err
		}
		defer func() {
			if cerr := metrics.close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	if pos.step == 0 && pos.epoch == 0 && pos.batch == 0 {
		if err := t.calibrate(); err != nil {
			return nil, err
		}
	}
	if err := t.prepareTeacherCache(); err != nil {
		return nil, err
	}
	res.Steps, res.Epochs = pos.step, pos.epoch

	logEvery := t.opts.LogEvery
	if logEvery <= 0 {
		logEvery = 10
	}
	pw := t.opts.Progress
	if pw == nil {
		pw = t.log
	}
	prog := newProgress(pw, total, pos.step, logEvery)
	defer prog.finish()
	o := r.Train.Optimizer
	accum := r.Train.GradAccum
	windowStart, windowImages := time.Now(), 0

	saveCheckpoint := func(p position, epochEnd bool, eval map[string]float64) error {
		if ckDir == "" {
			return nil
		}
		dir, err := SaveCheckpoint(t.ctx, ckDir, Manifest{Step: p.step, Epoch: p.epoch, Batch: p.batch, EpochEnd: epochEnd, Eval: eval}, keepInCheckpoint)
		if err != nil {
			return err
		}
		res.LastCheckpoint = dir
		best, err := PruneCheckpoints(ckDir, r.Train.Checkpoint.Keep, t.best, r.Train.Checkpoint.Best.Mode)
		res.BestCheckpoint = best
		return err
	}

	for epoch := pos.epoch; epoch < r.Train.Epochs; epoch++ {
		startBatch := 0
		if epoch == pos.epoch {
			startBatch = pos.batch
		}
		it, err := t.opts.Data.Epoch(epoch, startBatch)
		if err != nil {
			return res, fmt.Errorf("epoch %d: %w", epoch, err)
		}
		firstStep := startBatch / accum
		feed := t.teacherFeed(it)
		pf := t.prefetch(feed, epoch, firstStep*accum, (spe-firstStep)*accum)
		for s := firstStep; s < spe; s++ {
			stepStart := time.Now()
			timing := StepTiming{Step: res.Steps + 1, Epoch: epoch}
			step := res.Steps
			scalesFrozen, err := t.setLifecycle(step, epoch)
			if err != nil {
				pf.close()
				return res, err
			}
			factor, err := LRFactor(r.Train.Schedule.Name, r.Train.Schedule.WarmupSteps, step, total)
			if err != nil {
				pf.close()
				return res, err
			}
			in := stepInputs{
				lrWeights: float32(o.LR * factor), lrQuantizer: float32(o.QuantizerLR * factor),
				bc1: float32(1 - math.Pow(o.Betas[0], float64(step+1))), bc2: float32(1 - math.Pow(o.Betas[1], float64(step+1))),
				accumScale: float32(1 / float64(accum)),
			}
			sums := make([]float64, numStepOutputs)
			for micro := range accum {
				bi := s*accum + micro
				where := fmt.Sprintf("epoch %d batch %d", epoch, bi)
				t0 := time.Now()
				b := pf.next()
				timing.Data += time.Since(t0)
				if b.err != nil {
					pf.close()
					return res, b.err
				}
				args, err := feed.args(where, b.pixels, b.ids, b.labels, in.lrWeights, in.lrQuantizer, in.bc1, in.bc2, in.accumScale)
				if err != nil {
					pf.close()
					return res, err
				}
				e, err := t.exec(stepKind{apply: micro == accum-1, scalesFrozen: scalesFrozen, teacherCached: t.teacher != nil})
				if err != nil {
					pf.close()
					return res, err
				}
				t0 = time.Now()
				outs, err := e.Exec(args...)
				timing.Exec += time.Since(t0)
				if err != nil {
					pf.close()
					return res, fmt.Errorf("%s: training step: %w", where, err)
				}
				t0 = time.Now()
				vals, err := stepOutputs(outs[0])
				timing.Outputs += time.Since(t0)
				b.release()
				feed.release(args)
				_ = outs[0].FinalizeAll()
				if err != nil {
					pf.close()
					return res, err
				}
				for i, v := range vals[:numStepOutputs-1] {
					sums[i] += v / float64(accum)
				}
				sums[numStepOutputs-1] = vals[numStepOutputs-1]
				windowImages += b.n
				timing.Images += b.n
			}
			res.Steps++
			res.Loss = sums[0]
			if bad := nonFinite(sums); bad != "" {
				pf.close()
				last := res.LastCheckpoint
				if last == "" {
					last = "none (no checkpoint was written yet)"
				}
				return res, fmt.Errorf("step %d (epoch %d): %s; stopping. The weights were not updated by this step; last good checkpoint: %s",
					step, epoch, bad, last)
			}
			rec := StepRecord{Step: res.Steps, Epoch: epoch, Loss: sums[0], Terms: map[string]float64{},
				LR: float64(in.lrWeights), QuantizerLR: float64(in.lrQuantizer), GradNorm: sums[numStepOutputs-1]}
			for i, name := range termNames {
				if t.termActive(name) {
					rec.Terms[name] = sums[1+i]
				}
			}
			lastOfEpoch := s == spe-1
			if res.Steps%logEvery == 0 || lastOfEpoch || res.Steps == total {
				elapsed := time.Since(windowStart).Seconds()
				if elapsed > 0 {
					rec.ImagesPerSec = float64(windowImages) / elapsed
				}
				windowStart, windowImages = time.Now(), 0
				if metrics != nil {
					if err := metrics.write(rec); err != nil {
						pf.close()
						return res, err
					}
				}
				prog.log(rec)
			}
			prog.step(rec)
			timing.Wall = time.Since(stepStart)
			if t.opts.OnStep != nil {
				t.opts.OnStep(timing)
			}
			if every := r.Train.Checkpoint.EverySteps; every > 0 && res.Steps%every == 0 && !lastOfEpoch {
				if err := saveCheckpoint(position{step: res.Steps, epoch: epoch, batch: (s + 1) * accum}, false, nil); err != nil {
					pf.close()
					return res, err
				}
			}
			if t.opts.MaxSteps > 0 && res.Steps >= t.opts.MaxSteps && !lastOfEpoch {
				pf.close()
				res.Stopped = true
				return res, nil
			}
		}
		pf.stopReading()
		if sum, ok := it.(interface{ Summary() string }); ok {
			if line := sum.Summary(); line != "" {
				fmt.Fprintf(t.log, "data %s\n", line)
			}
		}
		pf.close()
		var eval map[string]float64
		if t.evalDue(epoch) {
			if eval, err = t.evaluate(epoch); err != nil {
				return res, fmt.Errorf("epoch %d evaluation: %w", epoch, err)
			}
			var parts []string
			for _, k := range sortedKeys(eval) {
				parts = append(parts, fmt.Sprintf("%s %.4g", k, eval[k]))
			}
			prog.message(fmt.Sprintf("epoch %d: %s", epoch, strings.Join(parts, ", ")))
		}
		if metrics != nil {
			if eval == nil {
				eval = map[string]float64{}
			}
			if err := metrics.write(EpochRecord{Epoch: epoch, Step: res.Steps, Eval: eval}); err != nil {
				return res, err
			}
		}
		if err := saveCheckpoint(position{step: res.Steps, epoch: epoch + 1}, true, eval); err != nil {
			return res, err
		}
		res.Epochs = epoch + 1
		if t.opts.MaxSteps > 0 && res.Steps >= t.opts.MaxSteps && epoch+1 < r.Train.Epochs {
			res.Stopped = true
			return res, nil
		}
	}
	return res, nil
}

// evaluate runs Options.EpochEnd on the student. It evaluates in float32
// whatever train.precision is: the reliability figures describe the
// quantized model, not bf16 rounding of its matmuls.
func (t *Trainer) evaluate(epoch int) (map[string]float64, error) {
	if err := layers.SetMatMulPrecision(t.ctx, "f32"); err != nil {
		return nil, err
	}
	defer func() { _ = layers.SetMatMulPrecision(t.ctx, t.recipe.Train.Precision) }()
	return t.opts.EpochEnd(t.Student(), epoch)
}

// termActive reports whether a loss term is computed under the recipe.
func (t *Trainer) termActive(name string) bool {
	l := t.recipe.Train.Loss
	switch name {
	case TermContrastive:
		return l.Contrastive > 0
	case TermDistill:
		return l.Distill.Weight > 0
	case TermClassification:
		return l.Classification > 0
	case TermRegularization:
		return t.hasRegularization()
	}
	return false
}

// hasRegularization reports whether some quantizer of the plan adds a loss
// term (PACT with alpha_l2 > 0).
func (t *Trainer) hasRegularization() bool {
	reg := func(c *quantizers.Config) bool { return c != nil && c.Method == quantizers.MethodPACT && c.AlphaL2 > 0 }
	for _, l := range t.plan.Layers {
		if reg(l.Weights) || reg(l.Activations) {
			return true
		}
	}
	for _, a := range t.plan.Attention {
		if reg(a.Activations) {
			return true
		}
	}
	return false
}

// nonFinite describes the first NaN/Inf value among a step's outputs, or
// returns "".
func nonFinite(vals []float64) string {
	names := append([]string{"loss"}, termNames[:]...)
	names = append(names, "gradient norm")
	for i, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprintf("%s is %v", names[i], v)
		}
	}
	return ""
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// SaveModel writes the student as an HF CLIPModel folder (config.json and
// model.safetensors, see clip.SaveHF): the float weights under their HF
// names, plus the state of every quantizer as extra F32 tensors named
// "<module>.<site>_quant.<variable>" (e.g.
// "text_projection.weight_quant.scale"), which clip.Load ignores.
func (t *Trainer) SaveModel(dir string) error {
	var extra []safetensors.Tensor
	prefix := context.RootScope + ModelScope + context.ScopeSeparator
	for _, v := range quantizers.Variables(t.Student()) {
		val, err := v.Value()
		if err != nil {
			return fmt.Errorf("save model %s: %s: %w", dir, v.ScopeAndName(), err)
		}
		data := tensors.MustCopyFlatData[float32](val)
		name := strings.ReplaceAll(strings.TrimPrefix(v.Scope(), prefix), context.ScopeSeparator, ".") + "." + v.Name()
		extra = append(extra, safetensors.Float32Tensor(name, val.Shape().Dimensions, data))
	}
	return clip.SaveHF(t.Student(), t.cfg, dir, extra...)
}
