package benchmark

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/train"
)

// RandomInputs returns n seeded random images (standard normal pixels,
// [n, C, S, S]) and token sequences of the full context length ([n, L]):
// random ids below the end-of-text id, which appears once per row at a
// random position after the first, as bench.py makes them.
func RandomInputs(cfg clip.Config, n int, seed uint64) (pixels []float32, ids []int32) {
	r := rand.New(rand.NewPCG(seed, 0x1d5))
	v, t := cfg.Vision, cfg.Text
	pixels = make([]float32, n*v.NumChannels*v.ImageSize*v.ImageSize)
	for i := range pixels {
		pixels[i] = float32(r.NormFloat64())
	}
	l := t.MaxPositionEmbeddings
	ids = make([]int32, n*l)
	for i := range n {
		row := ids[i*l : (i+1)*l]
		for j := range row {
			row[j] = int32(r.IntN(t.EosTokenID))
		}
		if l > 1 {
			row[1+r.IntN(l-1)] = int32(t.EosTokenID)
		} else {
			row[0] = int32(t.EosTokenID)
		}
	}
	return pixels, ids
}

// openBackend opens o.Backend and fills the result's backend fields.
func openBackend(o Options, res *Result) (backends.Backend, error) {
	b, err := backend.Open(o.Backend, o.Log)
	if err != nil {
		return nil, err
	}
	res.Backend = b.Name()
	res.Device = backend.Describe(b)
	return b, nil
}

// trainer is a train.Trainer over one in-memory batch, so that each Run is
// exactly one optimizer step.
type trainer struct {
	tr    *train.Trainer
	quant string
	name  string
}

// newTrainer builds the trainer of o's recipe for cfg on b, with random
// weights and one random batch of o.Batch pairs.
// Each epoch is that one batch; epochs sets train.epochs, onStep is
// passed to the trainer.
func newTrainer(o Options, cfg clip.Config, b backends.Backend, epochs int, onStep func(train.StepTiming)) (*trainer, error) {
	r, err := loadRecipe(o, fmt.Sprintf("train.epochs=%d", epochs))
	if err != nil {
		return nil, err
	}
	pixels, ids := RandomInputs(cfg, o.Batch, o.Seed)
	data, err := train.NewMemoryData(pixels, ids, nil, o.Batch, o.Batch, o.Seed, false)
	if err != nil {
		return nil, err
	}
	tr, err := train.New(train.Options{Recipe: r, Backend: b, Model: clip.NewRandomCheckpoint(cfg, o.Seed), Data: data,
		Log: o.Log, Progress: io.Discard, OnStep: onStep})
	if err != nil {
		if o.Precision != "f32" && strings.Contains(err.Error(), "precision") {
			return nil, unsupportedf("precision %s: %v", o.Precision, err)
		}
		return nil, err
	}
	return &trainer{tr: tr, quant: quantLabel(tr.Plan()), name: r.Name}, nil
}

// step runs one optimizer step.
func (t *trainer) step() error {
	res, err := t.tr.Run()
	if err != nil {
		return err
	}
	if res.Steps != 1 {
		return fmt.Errorf("training ran %d steps, want 1", res.Steps)
	}
	return nil
}

// hook returns the student's quantization hook, nil when it has no sites.
func (t *trainer) hook() layers.Hook {
	if h := t.tr.Hook(); h != nil && h.NumSites() > 0 {
		return h
	}
	return nil
}

// countParams returns the number of values of the variables under ctx.
func countParams(ctx *context.Context) int {
	n := 0
	for v := range ctx.IterVariablesInScope() {
		n += v.Shape().Size()
	}
	return n
}

// runSteps runs first (timed alone as the compile time), o.Warmup untimed
// steps and o.Steps timed ones.
func runSteps(o Options, step func() error) (compile sample, timed []sample, err error) {
	if compile, err = timeIt(step); err != nil {
		return compile, nil, err
	}
	for range o.Warmup {
		if err := step(); err != nil {
			return compile, nil, err
		}
	}
	timed = make([]sample, 0, o.Steps)
	for range o.Steps {
		s, err := timeIt(step)
		if err != nil {
			return compile, nil, err
		}
		timed = append(timed, s)
	}
	return compile, timed, nil
}

// Train times training steps: forward of both towers, CLIP contrastive
// loss, backward and AdamW (the recipe's training section, which also
// clips the gradient norm), compiled as one graph by package train. The
// first step also builds and compiles the graphs and calibrates the
// quantizers. An unsupported configuration returns a Result with
// Error set and an error wrapping ErrUnsupported.
func Train(opts Options) (Result, error) {
	o, cfg, res, err := opts.start(ModeTrain)
	if err != nil {
		return Result{}, err
	}
	b, err := openBackend(o, &res)
	if err != nil {
		return res, err
	}
	defer b.Finalize()
	// One Run of 1 + warmup + steps optimizer steps (one batch an epoch),
	// timed step by step through OnStep: the first step's time, from the
	// start of Run, includes building and compiling the graphs and
	// calibrating the quantizers.
	var (
		timed   []sample
		parts   [3][]float64 // data, exec, outputs, in ms
		compile time.Duration
		lastT   time.Time     // set just before Run, then at each step
		lastC   time.Duration // process CPU time at lastT
	)
	onStep := func(st train.StepTiming) {
		now, c := time.Now(), cpuTime()
		s := sample{wall: now.Sub(lastT), cpu: c - lastC}
		lastT, lastC = now, c
		switch {
		case st.Step == 1:
			compile = s.wall
		case st.Step > 1+o.Warmup:
			timed = append(timed, s)
			for i, d := range []time.Duration{st.Data, st.Exec, st.Outputs} {
				parts[i] = append(parts[i], float64(d)/float64(time.Millisecond))
			}
		}
	}
	t, err := newTrainer(o, cfg, b, 1+o.Warmup+o.Steps, onStep)
	if err != nil {
		return withError(res, err)
	}
	defer t.tr.Close()
	res.Quant, res.Recipe = t.quant, t.name
	fmt.Fprintf(o.Log, "bench train: %s, %s, batch %d, on %s\n", res.Config, t.quant, o.Batch, res.Device)
	lastT, lastC = time.Now(), cpuTime()
	run, err := t.tr.Run()
	if err != nil {
		return res, fmt.Errorf("bench train: %w", err)
	}
	if want := 1 + o.Warmup + o.Steps; run.Steps != want || len(timed) != o.Steps {
		return res, fmt.Errorf("bench train: ran %d steps (%d timed), want %d (%d timed)", run.Steps, len(timed), want, o.Steps)
	}
	res.CompileS = compile.Seconds()
	res.FlopsPerStep = TrainFLOPs(cfg, o.Batch)
	res.StepStats = stepStats(timed, o.Batch, res.FlopsPerStep)
	res.DataMsMedian, res.ExecMsMedian, res.OutputsMsMedian = Median(parts[0]), Median(parts[1]), Median(parts[2])
	res.Params = countParams(t.tr.Student())
	setMemory(&res)
	return res, nil
}

// Embed times the image tower's forward to the projected embedding
// (clip.Embedder.ImageFeatures) on one batch, fake-quantized by the recipe
// (its quantizers first calibrate on the batch) or in float.
func Embed(opts Options) (Result, error) {
	o, cfg, res, err := opts.start(ModeEmbed)
	if err != nil {
		return Result{}, err
	}
	r, err := loadRecipe(o)
	if err != nil {
		return res, err
	}
	res.Recipe = r.Name
	b, err := openBackend(o, &res)
	if err != nil {
		return res, err
	}
	defer b.Finalize()
	ctx := context.New()
	if err := layers.SetMatMulPrecision(ctx, o.Precision); err != nil {
		return res, err
	}
	if err := clip.NewRandomCheckpoint(cfg, o.Seed).SetVariables(ctx); err != nil {
		return res, err
	}
	qh, plan, err := clip.QuantHook(r, cfg)
	if err != nil {
		return res, err
	}
	res.Quant = quantLabel(plan)
	var hook layers.Hook // a nil *QuantHook would be a non-nil Hook
	if qh.NumSites() > 0 {
		hook = qh
	}
	emb, err := clip.NewEmbedder(b, ctx, cfg, hook)
	if err != nil {
		return res, err
	}
	pixels, _ := RandomInputs(cfg, o.Batch, o.Seed)
	fmt.Fprintf(o.Log, "bench embed: %s, %s, batch %d, on %s\n", res.Config, res.Quant, o.Batch, res.Device)
	calibrated := hook == nil
	compile, timed, err := runSteps(o, func() error {
		if !calibrated {
			// The quantizers initialise their ranges from a calibrating
			// pass, counted in the first step's time.
			if err := emb.Calibrate(pixels, o.Batch, nil, 0, 0, o.Batch); err != nil {
				return err
			}
			calibrated = true
		}
		_, err := emb.ImageFeatures(pixels, o.Batch, o.Batch)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("bench embed: %w", err)
	}
	res.CompileS = compile.wall.Seconds()
	res.FlopsPerStep = VisionForwardFLOPs(cfg, o.Batch)
	res.StepStats = stepStats(timed, o.Batch, res.FlopsPerStep)
	for v := range ctx.IterVariablesInScope() {
		if strings.HasPrefix(v.Scope(), context.RootScope+"vision_model") || strings.HasPrefix(v.Scope(), context.RootScope+"visual_projection") {
			res.Params += v.Shape().Size()
		}
	}
	setMemory(&res)
	return res, nil
}

// withError returns res with its Error field set when err marks an
// unsupported configuration, and err either way.
func withError(res Result, err error) (Result, error) {
	if errors.Is(err, ErrUnsupported) {
		res.Error = strings.TrimPrefix(err.Error(), ErrUnsupported.Error()+": ")
	}
	return res, err
}
