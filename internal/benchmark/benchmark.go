// Package benchmark times qatclip's hot paths on fixed, named model sizes:
// a QAT training step, the image-tower forward, the data loader and the
// cost of fake quantization. It backs `qatclip bench`.
//
// Each measurement returns a [Result] whose JSON fields are those of the
// PyTorch reference script (bench/pytorch/bench.py), so that the two can be
// put side by side and divided: the same model sizes ([ModelConfig]), the
// same FLOP count ([TrainFLOPs], [VisionForwardFLOPs]) and the same
// statistics (median and 10th/90th percentiles of the step wall time, the
// median process CPU time of a step). Models start from seeded random
// weights and run on seeded random inputs, made once and reused.
package benchmark

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// Impl is the value of Result.Impl for qatclip's own measurements.
const Impl = "qatclip"

// Modes, as written in Result.Mode (the names bench.py uses).
const (
	// ModeTrain is a full training step: forward, loss, backward, AdamW.
	ModeTrain = "train"
	// ModeEmbed is the image-tower forward to the projected embedding.
	ModeEmbed = "embed"
	// ModeLoader is the data loader: decode, preprocess and batch.
	ModeLoader = "loader"
	// ModeFakeQuantCost is the quantized/float ratio of a training step.
	ModeFakeQuantCost = "fakequant-cost"
)

// DefaultRecipe is the recipe of train and embed when none is given.
const DefaultRecipe = "w8a8-lsq.yaml"

// FloatRecipe is the Options.Recipe value that runs the model in float.
const FloatRecipe = "none"

// Options configures a measurement. The zero value of every field but
// Config has a usable default.
type Options struct {
	// Config names the model size: "tiny", "small" or "b32" (see
	// ModelConfig). Ignored when Model is set.
	Config string
	// Model, when not nil, replaces the named sizes (Result.Config is
	// then "custom").
	Model *clip.Config
	// Batch is the batch size (default 64).
	Batch int
	// Steps is the number of timed steps (per model and round for the
	// fake-quant cost; default 10).
	Steps int
	// Warmup is the number of untimed steps after the first one (default
	// 2; set NoWarmup for none).
	Warmup int
	// NoWarmup runs no warm-up steps.
	NoWarmup bool
	// Rounds is the number of alternating float/quantized rounds of the
	// fake-quant cost (default 5).
	Rounds int
	// Backend names the GoMLX backend (internal/backend.Open; "" reads
	// $QATCLIP_BACKEND, else auto).
	Backend string
	// Precision is "f32" (default) or "bf16".
	Precision string
	// Recipe is a recipe file or shipped recipe name (default
	// DefaultRecipe); FloatRecipe runs the model without quantizers.
	Recipe string
	// Seed seeds the random weights and inputs (default 1).
	Seed uint64
	// Data is the dataset folder the loader reads; "" writes a synthetic
	// one of JPEG images to a temporary folder.
	Data string
	// Workers is the loader's decode goroutines (0: one per CPU).
	Workers int
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// withDefaults returns o with defaults filled in and checks the values.
func (o Options) withDefaults() (Options, error) {
	if o.Batch == 0 {
		o.Batch = 64
	}
	if o.Steps == 0 {
		o.Steps = 10
	}
	if o.Warmup == 0 && !o.NoWarmup {
		o.Warmup = 2
	}
	if o.Rounds == 0 {
		o.Rounds = 5
	}
	if o.Precision == "" {
		o.Precision = "f32"
	}
	if o.Recipe == "" {
		o.Recipe = DefaultRecipe
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	switch {
	case o.Batch < 1:
		return o, fmt.Errorf("batch must be positive, got %d", o.Batch)
	case o.Steps < 1:
		return o, fmt.Errorf("steps must be positive, got %d", o.Steps)
	case o.Warmup < 0:
		return o, fmt.Errorf("warmup must not be negative, got %d", o.Warmup)
	case o.Rounds < 1:
		return o, fmt.Errorf("rounds must be positive, got %d", o.Rounds)
	case o.Workers < 0:
		return o, fmt.Errorf("workers must not be negative, got %d", o.Workers)
	case o.Precision != "f32" && o.Precision != "bf16":
		return o, fmt.Errorf("precision %q: want f32 or bf16", o.Precision)
	}
	return o, nil
}

// model returns the model sizes of o and the name recorded in results.
func (o Options) model() (clip.Config, string, error) {
	if o.Model != nil {
		if err := o.Model.Validate(); err != nil {
			return clip.Config{}, "", fmt.Errorf("model: %w", err)
		}
		return *o.Model, "custom", nil
	}
	cfg, err := ModelConfig(o.Config)
	return cfg, o.Config, err
}

// Result is one measurement, written as one JSON line. Field names are
// those of bench/pytorch/bench.py; fields that do not apply are left out.
type Result struct {
	// Impl is always "qatclip".
	Impl string `json:"impl"`
	// Mode is ModeTrain, ModeEmbed, ModeLoader or ModeFakeQuantCost.
	Mode string `json:"mode"`
	// Config is the model size's name.
	Config string `json:"config"`
	// Quant summarises the quantization: "none", or "w<bits>a<bits>"
	// from the recipe's quantized Linear layers (e.g. "w8a8").
	Quant string `json:"quant,omitempty"`
	// Recipe is the recipe's name.
	Recipe string `json:"recipe,omitempty"`
	// Precision is "f32" or "bf16".
	Precision string `json:"precision"`
	// Backend is the GoMLX backend's name, Device its description
	// (internal/backend.Describe).
	Backend string `json:"backend,omitempty"`
	Device  string `json:"device,omitempty"`
	// Threads is GOMAXPROCS: the cores the Go runtime may use at once.
	Threads int `json:"threads"`
	// Batch and Steps are the options; Warmup the untimed steps.
	Batch  int `json:"batch"`
	Steps  int `json:"steps"`
	Warmup int `json:"warmup"`

	*StepStats
	*QuantCost

	// CompileS is the wall time of the first step in seconds: graph
	// building and compilation, quantizer calibration and the step itself
	// (for the fake-quant cost: of the quantized model).
	CompileS float64 `json:"compile_s,omitempty"`
	// PeakMemMB is the process's peak resident memory in MiB (VmHWM of
	// /proc/self/status: Go heap, backend buffers and all), or the Go
	// runtime's memory where /proc is not available.
	PeakMemMB float64 `json:"peak_mem_mb,omitempty"`
	// GoSysMB is the memory the Go runtime obtained from the OS, in MiB.
	GoSysMB float64 `json:"go_sys_mb,omitempty"`
	// Params counts the parameters, quantizer state included (embed: the
	// vision tower's).
	Params int `json:"params,omitempty"`
	// FlopsPerStep is the model FLOPs of one step (see TrainFLOPs).
	FlopsPerStep float64 `json:"flops_per_step,omitempty"`
	// Error is set, with the other fields describing the request, when the
	// configuration is not supported (e.g. bf16 for the loader).
	Error string `json:"error,omitempty"`
}

// StepStats are the timings of the train, embed and loader modes.
type StepStats struct {
	// ImagesPerS is batch / median step time (loader: images delivered /
	// wall time of the timed batches).
	ImagesPerS float64 `json:"images_per_s"`
	// StepMsMedian, StepMsP10 and StepMsP90 are the median and the 10th and
	// 90th percentiles (linear interpolation) of a step's wall time.
	StepMsMedian float64 `json:"step_ms_median"`
	StepMsP10    float64 `json:"step_ms_p10"`
	StepMsP90    float64 `json:"step_ms_p90"`
	// CPUMsMedian is the median process CPU time of a step (all threads).
	CPUMsMedian float64 `json:"cpu_ms_median"`
	// TFLOPs is FlopsPerStep / median step time / 1e12.
	TFLOPs float64 `json:"tflops,omitempty"`
	// DataMsMedian, ExecMsMedian and OutputsMsMedian split a training
	// step (train mode only, medians): waiting for the batch (prefetched
	// to the device in the background), the compiled step, and reading
	// its losses back (see train.StepTiming).
	DataMsMedian    float64 `json:"data_ms_median,omitempty"`
	ExecMsMedian    float64 `json:"exec_ms_median,omitempty"`
	OutputsMsMedian float64 `json:"outputs_ms_median,omitempty"`
}

// QuantCost are the fields of the fake-quant cost mode.
type QuantCost struct {
	// Rounds is the number of alternating float/quantized rounds.
	Rounds int `json:"rounds"`
	// FloatFwdBwdMsMedian and QuantFwdBwdMsMedian are the median wall
	// times of a forward+backward pass (loss and parameter gradients, no
	// optimizer) over all rounds; RatioFwdBwd is quant / float.
	FloatFwdBwdMsMedian float64 `json:"float_fwd_bwd_ms_median"`
	QuantFwdBwdMsMedian float64 `json:"quant_fwd_bwd_ms_median"`
	RatioFwdBwd         float64 `json:"ratio_fwd_bwd"`
	// RatioFwdBwdRoundsMedian, Min and Max are over the ratios of the
	// per-round medians of adjacent float and quantized rounds.
	RatioFwdBwdRoundsMedian float64 `json:"ratio_fwd_bwd_rounds_median"`
	RatioFwdBwdRoundsMin    float64 `json:"ratio_fwd_bwd_rounds_min"`
	RatioFwdBwdRoundsMax    float64 `json:"ratio_fwd_bwd_rounds_max"`
	// The same from process CPU time.
	FloatFwdBwdCPUMsMedian float64 `json:"float_fwd_bwd_cpu_ms_median"`
	QuantFwdBwdCPUMsMedian float64 `json:"quant_fwd_bwd_cpu_ms_median"`
	RatioFwdBwdCPU         float64 `json:"ratio_fwd_bwd_cpu"`
	// FloatTrainStepMsMedian and QuantTrainStepMsMedian are whole
	// training steps (forward, backward and AdamW in one compiled graph);
	// RatioTrainStep is quant / float, RatioTrainStepCPU the same from
	// CPU time.
	FloatTrainStepMsMedian    float64 `json:"float_train_step_ms_median"`
	QuantTrainStepMsMedian    float64 `json:"quant_train_step_ms_median"`
	RatioTrainStep            float64 `json:"ratio_train_step"`
	FloatTrainStepCPUMsMedian float64 `json:"float_train_step_cpu_ms_median"`
	QuantTrainStepCPUMsMedian float64 `json:"quant_train_step_cpu_ms_median"`
	RatioTrainStepCPU         float64 `json:"ratio_train_step_cpu"`
	// FloatCompileS is CompileS of the float model.
	FloatCompileS float64 `json:"float_compile_s"`
}

// ErrUnsupported marks a configuration qatclip cannot run yet (bf16 pixels from the loader, a
// missing component). Commands report it as a result with an Error field
// rather than failing, as bench.py does.
var ErrUnsupported = errors.New("not supported")

// unsupportedf returns an error wrapping ErrUnsupported.
func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

// newResult returns the fields every result of o has.
// start fills the defaults of opts, resolves its model configuration and
// returns the Result a benchmark of mode fills in.
func (opts Options) start(mode string) (Options, clip.Config, Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return o, clip.Config{}, Result{}, err
	}
	cfg, name, err := o.model()
	if err != nil {
		return o, clip.Config{}, Result{}, err
	}
	return o, cfg, newResult(o, mode, name), nil
}

func newResult(o Options, mode, config string) Result {
	return Result{
		Impl: Impl, Mode: mode, Config: config, Precision: o.Precision,
		Threads: runtime.GOMAXPROCS(0), Batch: o.Batch, Steps: o.Steps, Warmup: o.Warmup,
	}
}

// loadRecipe loads o.Recipe for a benchmark of batch examples per step and
// one batch per epoch: the recipe's training section is kept (optimizer,
// losses, clipping) except epochs, batch size and precision.
func loadRecipe(o Options, extra ...string) (*recipes.Recipe, error) {
	name := o.Recipe
	overrides := append([]string{
		"train.epochs=1",
		fmt.Sprintf("train.batch_size=%d", o.Batch),
		"train.precision=" + o.Precision,
	}, extra...)
	if name == FloatRecipe {
		name = DefaultRecipe
		overrides = append(overrides,
			"quantization.default.weights.method=none",
			"quantization.default.activations.method=none")
	}
	r, err := recipes.Load(name, overrides...)
	if err != nil {
		return nil, err
	}
	if o.Recipe == FloatRecipe {
		r.Name = "float"
	}
	return r, nil
}

// quantLabel summarises a plan as "none" or "w<bits>a<bits>" (the bits of
// the first quantized layer; "a" is left out when activations stay float,
// "w" when weights do).
func quantLabel(p *recipes.Plan) string {
	for _, l := range p.Layers {
		if l.Weights == nil && l.Activations == nil {
			continue
		}
		s := ""
		if l.Weights != nil {
			s += fmt.Sprintf("w%d", l.Weights.Bits)
		}
		if l.Activations != nil {
			s += fmt.Sprintf("a%d", l.Activations.Bits)
		}
		return s
	}
	return "none"
}
