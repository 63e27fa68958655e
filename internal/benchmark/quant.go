package benchmark

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/train"
)

// costRun is one side (float or quantized) of the fake-quant cost.
type costRun struct {
	t      *trainer
	fwdBwd *context.Exec
	pixels *tensors.Tensor
	ids    *tensors.Tensor
	// fb and ts are the forward+backward and training step samples;
	// rounds the per-round medians of the forward+backward wall time (ms).
	fb, ts  []sample
	rounds  []float64
	compile time.Duration
}

// newFwdBwd compiles the forward+backward pass of the trainer's student:
// both towers, the contrastive loss and the gradients of every trainable
// student variable (quantizer scales included), returned as outputs so
// none is pruned. It is what PyTorch's loss.backward() computes, without
// the optimizer.
func newFwdBwd(b backends.Backend, t *trainer, cfg clip.Config) (*context.Exec, error) {
	hook := t.hook()
	return context.NewExec(b, t.tr.Context(), func(ctx *context.Context, pixels, ids *Node) []*Node {
		g := pixels.Graph()
		ctx.SetTraining(g, true)
		mctx := ctx.In(train.ModelScope)
		img := clip.ImageFeatures(mctx, cfg, hook, pixels)
		txt := clip.TextFeatures(mctx, cfg, hook, ids)
		ls := train.ClampLogitScale(clip.LogitScale(mctx, cfg, g))
		loss := train.ContrastiveLoss(clip.Logits(ls, img, txt))
		var params []*Node
		for v := range mctx.IterVariablesInScope() {
			if v.Trainable && v.InUseByGraph(g) {
				params = append(params, v.ValueGraph(g))
			}
		}
		return append([]*Node{loss}, Gradient(loss, params...)...)
	})
}

// fwdBwdStep runs the forward+backward pass once and frees its outputs.
func (r *costRun) fwdBwdStep() error {
	outs, err := r.fwdBwd.Exec(r.pixels, r.ids)
	if err != nil {
		return err
	}
	for _, t := range outs {
		t.FinalizeAll()
	}
	return nil
}

// FakeQuantCost measures the cost of fake quantization: a float model and a
// quantized one (o.Recipe; FloatRecipe or "" means DefaultRecipe) of the
// same size and starting weights, each with its own optimizer state, are
// timed in o.Rounds alternating rounds of o.Steps steps. Each step times a
// forward+backward pass (loss and gradients, no update) and, separately,
// a whole training step (forward, backward and AdamW in one graph). The
// ratios are quantized / float.
func FakeQuantCost(opts Options) (Result, error) {
	o, cfg, res, err := opts.start(ModeFakeQuantCost)
	if err != nil {
		return Result{}, err
	}
	b, err := openBackend(o, &res)
	if err != nil {
		return res, err
	}
	defer b.Finalize()
	pixels, ids := RandomInputs(cfg, o.Batch, o.Seed)
	quantRecipe := o.Recipe
	if quantRecipe == FloatRecipe {
		quantRecipe = DefaultRecipe
	}
	runs := make([]*costRun, 2) // float, quantized
	for i, recipe := range []string{FloatRecipe, quantRecipe} {
		ro := o
		ro.Recipe = recipe
		t, err := newTrainer(ro, cfg, b, 1, nil)
		if err != nil {
			return withError(res, err)
		}
		defer t.tr.Close()
		r := &costRun{t: t,
			pixels: tensors.FromFlatDataAndDimensions(pixels, o.Batch, cfg.Vision.NumChannels, cfg.Vision.ImageSize, cfg.Vision.ImageSize),
			ids:    tensors.FromFlatDataAndDimensions(ids, o.Batch, cfg.Text.MaxPositionEmbeddings)}
		// The first step calibrates and creates the quantizers' state,
		// which the forward+backward graph then reads.
		first, err := timeIt(t.step)
		if err != nil {
			return res, fmt.Errorf("bench quant: %w", err)
		}
		if r.fwdBwd, err = newFwdBwd(b, t, cfg); err != nil {
			return res, fmt.Errorf("bench quant: %w", err)
		}
		fb, err := timeIt(r.fwdBwdStep)
		if err != nil {
			return res, fmt.Errorf("bench quant: %w", err)
		}
		r.compile = first.wall + fb.wall
		for range o.Warmup {
			if err := r.fwdBwdStep(); err != nil {
				return res, fmt.Errorf("bench quant: %w", err)
			}
			if err := t.step(); err != nil {
				return res, fmt.Errorf("bench quant: %w", err)
			}
		}
		runs[i] = r
	}
	fl, qu := runs[0], runs[1]
	res.Quant, res.Recipe = qu.t.quant, qu.t.name
	fmt.Fprintf(o.Log, "bench quant: %s, float vs %s, batch %d, %d rounds of %d steps, on %s\n",
		res.Config, res.Quant, o.Batch, o.Rounds, o.Steps, res.Device)
	for range o.Rounds {
		for _, r := range runs {
			var fb []sample
			for range o.Steps {
				s, err := timeIt(r.fwdBwdStep)
				if err != nil {
					return res, fmt.Errorf("bench quant: %w", err)
				}
				fb = append(fb, s)
				if s, err = timeIt(r.t.step); err != nil {
					return res, fmt.Errorf("bench quant: %w", err)
				}
				r.ts = append(r.ts, s)
			}
			r.fb = append(r.fb, fb...)
			r.rounds = append(r.rounds, Median(millis(fb, false)))
		}
	}
	ratios := make([]float64, o.Rounds)
	for i := range ratios {
		ratios[i] = qu.rounds[i] / fl.rounds[i]
	}
	med := func(s []sample, cpu bool) float64 { return Median(millis(s, cpu)) }
	c := &QuantCost{
		Rounds:                    o.Rounds,
		FloatFwdBwdMsMedian:       med(fl.fb, false),
		QuantFwdBwdMsMedian:       med(qu.fb, false),
		RatioFwdBwdRoundsMedian:   Median(ratios),
		RatioFwdBwdRoundsMin:      Percentile(ratios, 0),
		RatioFwdBwdRoundsMax:      Percentile(ratios, 100),
		FloatFwdBwdCPUMsMedian:    med(fl.fb, true),
		QuantFwdBwdCPUMsMedian:    med(qu.fb, true),
		FloatTrainStepMsMedian:    med(fl.ts, false),
		QuantTrainStepMsMedian:    med(qu.ts, false),
		FloatTrainStepCPUMsMedian: med(fl.ts, true),
		QuantTrainStepCPUMsMedian: med(qu.ts, true),
		FloatCompileS:             fl.compile.Seconds(),
	}
	c.RatioFwdBwd = c.QuantFwdBwdMsMedian / c.FloatFwdBwdMsMedian
	c.RatioFwdBwdCPU = c.QuantFwdBwdCPUMsMedian / c.FloatFwdBwdCPUMsMedian
	c.RatioTrainStep = c.QuantTrainStepMsMedian / c.FloatTrainStepMsMedian
	c.RatioTrainStepCPU = c.QuantTrainStepCPUMsMedian / c.FloatTrainStepCPUMsMedian
	res.QuantCost = c
	res.CompileS = qu.compile.Seconds()
	res.FlopsPerStep = TrainFLOPs(cfg, o.Batch)
	res.Params = countParams(qu.t.tr.Student())
	setMemory(&res)
	return res, nil
}
