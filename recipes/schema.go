package recipes

import "github.com/qatclip/qatclip/quantizers"

// Recipe is one parsed recipe file: which model, how each of its layers is
// quantized, and how it is trained, evaluated and exported. The YAML keys
// are the mapstructure tags; every field has a default (see Default), so an
// empty file is a valid W8A8 min-max recipe for every Linear.
type Recipe struct {
	// Name labels runs and reports. Default: the file name without its
	// extension.
	Name string `mapstructure:"name"`
	// Model names the checkpoint to start from.
	Model Model `mapstructure:"model"`
	// Quantization says which layers get which quantizers, and when.
	Quantization Quantization `mapstructure:"quantization"`
	// SmoothQuant, when the section is present, migrates activation
	// outliers into the following weights before quantizing (PTQ). Default
	// absent (off).
	SmoothQuant *SmoothQuant `mapstructure:"smoothquant"`
	// Train configures quantization-aware training.
	Train Train `mapstructure:"train"`
	// Eval configures the reliability evaluation.
	Eval Eval `mapstructure:"eval"`
	// Export configures the exported checkpoint.
	Export Export `mapstructure:"export"`

	// source names where the recipe came from (a file path, or "<embedded>/x.yaml").
	source string
	// origins maps a key path to where its value was written:
	// "file:line" or "--set key=value". Keys absent here hold defaults.
	origins map[string]string
}

// Model names the CLIP checkpoint a recipe starts from.
type Model struct {
	// Source is an HF model directory (config.json + model.safetensors) or
	// an HF hub id found in the local HF cache. The CLI's --model flag
	// overrides it. Default "openai/clip-vit-base-patch32".
	Source string `mapstructure:"source"`
}

// Quantization describes the per-layer quantization plan before it is
// resolved against a model's modules (see Resolve).
type Quantization struct {
	// Default is the scheme every targeted layer starts from.
	Default Scheme `mapstructure:"default"`
	// Targets are the patterns (exact names, globs, or "re:" regular
	// expressions; see Pattern) naming the Linear modules to quantize.
	// Every target must match at least one module. Default ["*"] (every
	// Linear).
	Targets []string `mapstructure:"targets"`
	// Ignore are patterns naming modules left in float. Every pattern must
	// match at least one module. Default [] (none).
	Ignore []string `mapstructure:"ignore"`
	// Precedence decides a layer matched by both Targets and Ignore:
	// "ignore" (the layer stays float, as compressed-tensors does),
	// "targets" (the layer is quantized), or "" (such a layer is an error).
	// Default "".
	Precedence string `mapstructure:"precedence"`
	// Overrides patch the scheme of the modules they match, in order: each
	// matching override changes only the keys it gives, on top of Default
	// and of the earlier overrides. Default [] (none).
	Overrides []Override `mapstructure:"overrides"`
	// AttentionMatmuls also quantizes the inputs of the two attention
	// matmuls (query, key, softmax output, value) with the activation
	// scheme, so attention can run in integers. Default false.
	AttentionMatmuls bool `mapstructure:"attention_matmuls"`
	// Schedule says when quantization starts and when ranges freeze.
	Schedule Schedule `mapstructure:"schedule"`
}

// Scheme is a pair of quantizer configurations, one for a Linear's weight
// and one for its input activation. YAML keys are those of
// quantizers.Config; a key left out keeps its default.
type Scheme struct {
	// Weights quantizes the [out, in] weight. Default: quantizers.DefaultConfig
	// with granularity per-channel (minmax int8 symmetric per output channel).
	Weights quantizers.Config `mapstructure:"weights"`
	// Activations quantizes the input activation. Default:
	// quantizers.DefaultConfig with symmetric false and axis -1 (minmax
	// uint8 asymmetric per tensor).
	Activations quantizers.Config `mapstructure:"activations"`
}

// SchemePatch is a partial quantizers.Config: only the keys it holds (the
// Config's YAML keys) change the scheme it is applied to.
type SchemePatch map[string]any

// Override patches the scheme of the modules one pattern matches.
type Override struct {
	// Match is one pattern (see Pattern) over module names. Required; it
	// must match at least one module.
	Match string `mapstructure:"match"`
	// Weights patches the weight scheme. Default {} (no change).
	Weights SchemePatch `mapstructure:"weights"`
	// Activations patches the activation scheme (also the attention-matmul
	// inputs when Match names an attention module). Default {} (no change).
	Activations SchemePatch `mapstructure:"activations"`
}

// Schedule says when fake quantization starts and when quantizer ranges
// stop changing. For each pair, give the step or the epoch, not both.
// Steps and epochs count from 0.
type Schedule struct {
	// StartStep is the first optimizer step run with fake quantization.
	// Default unset (with StartEpoch unset: from the start).
	StartStep *int `mapstructure:"start_step"`
	// StartEpoch is the first epoch run with fake quantization. Default unset.
	StartEpoch *int `mapstructure:"start_epoch"`
	// FreezeObserversAtEpoch stops observer (minmax, percentile, mse)
	// updates from this epoch on. Default unset (never).
	FreezeObserversAtEpoch *int `mapstructure:"freeze_observers_at_epoch"`
	// FreezeObserversAtStep stops observer updates from this step on.
	// Default unset (never).
	FreezeObserversAtStep *int `mapstructure:"freeze_observers_at_step"`
	// FreezeScalesAtEpoch stops learning quantizer parameters (LSQ scales,
	// LSQ+ offsets, PACT alphas) from this epoch on. Default unset (never).
	FreezeScalesAtEpoch *int `mapstructure:"freeze_scales_at_epoch"`
	// FreezeScalesAtStep stops learning quantizer parameters from this step
	// on. Default unset (never).
	FreezeScalesAtStep *int `mapstructure:"freeze_scales_at_step"`
	// CalibrationBatches is how many batches observers and learnable
	// quantizer initialisation see before quantization starts (PTQ: the
	// number of calibration batches). Default 16.
	CalibrationBatches int `mapstructure:"calibration_batches"`
}

// SmoothQuant configures SmoothQuant (Xiao et al. 2023) for PTQ.
type SmoothQuant struct {
	// Alpha is the migration strength in [0, 1]: scales are
	// max|X|^alpha / max|W|^(1-alpha). Default 0.5.
	Alpha float64 `mapstructure:"alpha"`
}

// Train configures quantization-aware training.
type Train struct {
	// Data is the training set.
	Data Data `mapstructure:"data"`
	// Epochs is the number of passes over Data, at least 1. Default 1.
	Epochs int `mapstructure:"epochs"`
	// BatchSize is the number of image-text pairs per step, at least 1.
	// Default 64.
	BatchSize int `mapstructure:"batch_size"`
	// Optimizer configures the optimizer and its parameter groups.
	Optimizer Optimizer `mapstructure:"optimizer"`
	// Schedule is the learning-rate schedule.
	Schedule LRSchedule `mapstructure:"schedule"`
	// Loss weights the training losses.
	Loss Loss `mapstructure:"loss"`
	// GradClip clips gradients by global norm; 0 turns clipping off.
	// Default 1.0.
	GradClip float64 `mapstructure:"grad_clip"`
	// GradAccum accumulates gradients over this many batches per optimizer
	// step, at least 1. Default 1.
	GradAccum int `mapstructure:"grad_accum"`
	// Precision is the compute type: "f32" or "bf16". Default "f32".
	Precision string `mapstructure:"precision"`
	// Freeze are patterns over module names whose parameters are not
	// trained; a module is frozen when it or one of its dotted ancestors
	// matches (so "text_model" freezes the whole text tower). Default [].
	Freeze []string `mapstructure:"freeze"`
	// Seed seeds initialisation, shuffling and every other random choice.
	// Default 0.
	Seed int `mapstructure:"seed"`
	// TeacherCache computes the float teacher's embeddings of every
	// training example in one pass before the first step and stores them in
	// the run folder, so that training steps skip the teacher's forward
	// pass. Default false.
	TeacherCache bool `mapstructure:"teacher_cache"`
	// Checkpoint says when checkpoints are written and which are kept.
	Checkpoint Checkpoint `mapstructure:"checkpoint"`
}

// Data names a data set folder and its columns.
type Data struct {
	// Path is the data set: an HF save_to_disk folder, an Arrow IPC file or
	// a Parquet file/folder. Default "" (set it, or pass --set train.data.path=...).
	Path string `mapstructure:"path"`
	// Split names the split inside a DatasetDict folder; "" reads Path as
	// one split. Default "".
	Split string `mapstructure:"split"`
	// ImageColumn is the image column. Default "image".
	ImageColumn string `mapstructure:"image_column"`
	// TextColumn is the caption column. Default "caption".
	TextColumn string `mapstructure:"text_column"`
	// LabelColumn is the class-label column (classification loss). Default "label".
	LabelColumn string `mapstructure:"label_column"`
}

// Optimizer configures AdamW-style optimizers and their parameter groups.
type Optimizer struct {
	// Name is "adamw", "adam" or "sgd". Default "adamw".
	Name string `mapstructure:"name"`
	// LR is the peak learning rate of model weights, > 0. Default 1e-5.
	LR float64 `mapstructure:"lr"`
	// WeightDecay applies to weight matrices only (not LayerNorm, biases,
	// embeddings or quantizer parameters), >= 0. Default 0.1.
	WeightDecay float64 `mapstructure:"weight_decay"`
	// QuantizerLR is the peak learning rate of quantizer parameters (LSQ
	// scales, LSQ+ offsets, PACT alphas), > 0. Default 1e-4.
	QuantizerLR float64 `mapstructure:"quantizer_lr"`
	// Betas are Adam's (beta1, beta2), each in [0, 1). Default [0.9, 0.98].
	Betas []float64 `mapstructure:"betas"`
	// Eps is Adam's epsilon, > 0. Default 1e-6.
	Eps float64 `mapstructure:"eps"`
}

// LRSchedule is a learning-rate schedule with linear warmup.
type LRSchedule struct {
	// Name is "constant", "cosine" (to 0 at the last step) or "linear" (to 0
	// at the last step). Default "cosine".
	Name string `mapstructure:"name"`
	// WarmupSteps ramps the rate linearly from 0 over this many steps, >= 0.
	// Default 0.
	WarmupSteps int `mapstructure:"warmup_steps"`
}

// Loss weights the training losses; the total is their weighted sum and at
// least one weight must be positive.
type Loss struct {
	// Contrastive weights CLIP's symmetric contrastive loss, >= 0. Default 1.0.
	Contrastive float64 `mapstructure:"contrastive"`
	// Distill configures distillation from the float teacher.
	Distill Distill `mapstructure:"distill"`
	// Classification weights the zero-shot-head cross-entropy on labelled
	// data, >= 0. Default 0.
	Classification float64 `mapstructure:"classification"`
}

// Distill configures knowledge distillation from the frozen float model.
type Distill struct {
	// Weight of the distillation loss, >= 0; 0 turns it off. Default 0.
	Weight float64 `mapstructure:"weight"`
	// Kind is "logits" (KL between teacher and student image-text
	// similarity distributions, both directions) or "features" (1 - cosine
	// between student and teacher embeddings). Default "logits".
	Kind string `mapstructure:"kind"`
	// Temperature divides the logits before the softmax, > 0. Default 1.0.
	Temperature float64 `mapstructure:"temperature"`
}

// Checkpoint says when checkpoints are written and which are kept.
type Checkpoint struct {
	// EverySteps writes a checkpoint every this many steps besides the end
	// of every epoch; 0 writes at epoch ends only. Default 0.
	EverySteps int `mapstructure:"every_steps"`
	// Keep is how many of the latest checkpoints are kept, at least 1
	// (the best one is kept besides these). Default 3.
	Keep int `mapstructure:"keep"`
	// Best picks the best checkpoint by an evaluation metric.
	Best Best `mapstructure:"best"`
}

// Best selects the best checkpoint by an end-of-epoch evaluation metric.
type Best struct {
	// Metric is a metric name (acc1, acc5, nll, brier, ece, ts_ece, ts_nll,
	// aurc, auroc, aupr_in, aupr_out, fpr95) or a weighted sum of them such
	// as "acc1 - 0.5*ts_ece + 0.5*auroc" (see ParseMetric). OOD metrics are
	// averaged over the eval.ood sets. Default "acc1".
	Metric string `mapstructure:"metric"`
	// Mode is "max" or "min". Default "max".
	Mode string `mapstructure:"mode"`
}

// Eval configures the reliability evaluation run at the end of epochs and
// by `qatclip eval`.
type Eval struct {
	// ID is the in-distribution labelled set.
	ID EvalSet `mapstructure:"id"`
	// OOD are the out-of-distribution sets (no labels needed). Default [].
	OOD []OODSet `mapstructure:"ood"`
	// LogitScale is "model" (the model's learned logit scale) or a fixed
	// positive number (CLIP's is 100). Default "model".
	LogitScale LogitScale `mapstructure:"logit_scale"`
	// MCMTemperature is the temperature tau of the MCM OOD score max
	// softmax(cos/tau), > 0. Default 1.0.
	MCMTemperature float64 `mapstructure:"mcm_temperature"`
	// ECEBins is the number of equal-width confidence bins of ECE, >= 1.
	// Default 15.
	ECEBins int `mapstructure:"ece_bins"`
	// FitFraction is the share of the ID set held out to fit the
	// temperature, in (0, 1). Default 0.2.
	FitFraction float64 `mapstructure:"fit_fraction"`
	// EveryEpochs evaluates at the end of every this many epochs during
	// training; 0 evaluates only after the last epoch. Default 1.
	EveryEpochs int `mapstructure:"every_epochs"`
	// Robustness re-evaluates the ID set under corruptions. Default none.
	Robustness Robustness `mapstructure:"robustness"`
}

// Robustness lists the corruptions the ID set is evaluated under, each
// reported as an extra column.
type Robustness struct {
	// NoiseSigma are standard deviations of Gaussian noise added to the
	// CLIP-normalised pixels, each > 0. Default [].
	NoiseSigma []float64 `mapstructure:"noise_sigma"`
	// JPEGQuality are JPEG qualities (1-100) the images are re-encoded
	// at before preprocessing. Default [].
	JPEGQuality []int `mapstructure:"jpeg_quality"`
}

// EvalSet is the labelled in-distribution evaluation set.
type EvalSet struct {
	// Path is the data set (as Data.Path). Default "".
	Path string `mapstructure:"path"`
	// Split names the split inside a DatasetDict folder; "" reads Path as
	// one split. Default "".
	Split string `mapstructure:"split"`
	// LabelColumn is the class-label column. Default "label".
	LabelColumn string `mapstructure:"label_column"`
	// ImageColumn is the image column. Default "image".
	ImageColumn string `mapstructure:"image_column"`
	// Classnames is "from-dataset" (the ClassLabel names of LabelColumn) or
	// a file: one class name per line, a JSON list, or a JSON object with a
	// "classes" list. Default "from-dataset".
	Classnames string `mapstructure:"classnames"`
	// ClassList gives the class names in the recipe itself, in label
	// order; when not empty it is used instead of Classnames (giving both
	// is an error). Default [].
	ClassList []string `mapstructure:"class_list"`
	// Templates is "default" (qatclip's built-in set of a few generic
	// prompts, see eval/pipeline.DefaultTemplates), "simple" ("a photo of
	// a {}.") or a file: one template per line, a JSON list, or a JSON
	// object with a "templates" list (such as CLIP's 80 ImageNet
	// templates), "{}" standing for the class name. Default "default".
	Templates string `mapstructure:"templates"`
	// Hint says what to download and where when Path is missing; errors
	// about a missing Path repeat it. Default "".
	Hint string `mapstructure:"hint"`
}

// OODSet is one out-of-distribution evaluation set.
type OODSet struct {
	// Name labels the set in reports; required and unique.
	Name string `mapstructure:"name"`
	// Path is the data set (as Data.Path); required.
	Path string `mapstructure:"path"`
	// Split names the split inside a DatasetDict folder. Default "".
	Split string `mapstructure:"split"`
	// ImageColumn is the image column. Default "image".
	ImageColumn string `mapstructure:"image_column"`
	// Hint says what to download and where when Path is missing. Default "".
	Hint string `mapstructure:"hint"`
}

// LogitScale is "model" or a positive number written as a YAML number or
// string.
type LogitScale string

// Export configures `qatclip export`.
type Export struct {
	// Format is "compressed-tensors" (int8 weights + scales, readable by
	// compressed-tensors/vLLM) or "fake-quant-f32" (float weights already
	// fake-quantized). Default "compressed-tensors".
	Format string `mapstructure:"format"`
	// PackInt4 packs two 4-bit weights per byte (compressed-tensors
	// "pack-quantized"); only with format compressed-tensors. Default false.
	PackInt4 bool `mapstructure:"pack_int4"`
}

// Default returns a recipe holding every documented default: W8A8 min-max
// fake quantization of every Linear of openai/clip-vit-base-patch32.
func Default() Recipe {
	w := quantizers.DefaultConfig()
	w.Granularity = quantizers.PerChannel
	a := quantizers.DefaultConfig()
	a.Symmetric = false
	a.Axis = -1
	return Recipe{
		Model: Model{Source: "openai/clip-vit-base-patch32"},
		Quantization: Quantization{
			Default:   Scheme{Weights: w, Activations: a},
			Targets:   []string{"*"},
			Ignore:    []string{},
			Overrides: []Override{},
			Schedule:  Schedule{CalibrationBatches: 16},
		},
		Train: Train{
			Data:      Data{ImageColumn: "image", TextColumn: "caption", LabelColumn: "label"},
			Epochs:    1,
			BatchSize: 64,
			Optimizer: Optimizer{
				Name: "adamw", LR: 1e-5, WeightDecay: 0.1, QuantizerLR: 1e-4,
				Betas: []float64{0.9, 0.98}, Eps: 1e-6,
			},
			Schedule:   LRSchedule{Name: "cosine"},
			Loss:       Loss{Contrastive: 1, Distill: Distill{Kind: "logits", Temperature: 1}},
			GradClip:   1,
			GradAccum:  1,
			Precision:  "f32",
			Freeze:     []string{},
			Checkpoint: Checkpoint{Keep: 3, Best: Best{Metric: "acc1", Mode: "max"}},
		},
		Eval: Eval{
			ID:             EvalSet{LabelColumn: "label", ImageColumn: "image", Classnames: "from-dataset", ClassList: []string{}, Templates: "default"},
			OOD:            []OODSet{},
			LogitScale:     "model",
			MCMTemperature: 1,
			ECEBins:        15,
			FitFraction:    0.2,
			EveryEpochs:    1,
			Robustness:     Robustness{NoiseSigma: []float64{}, JPEGQuality: []int{}},
		},
		Export: Export{Format: "compressed-tensors"},
	}
}
