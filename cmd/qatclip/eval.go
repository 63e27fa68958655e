package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/eval/pipeline"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// evalFlags are the flags of `qatclip eval`.
type evalFlags struct {
	model, recipe, preset, baseline, out, backend, vocab, title string
	sets                                                        []string
	id, split, classnames, templates                            string
	fit, fitSplit                                               string
	fitFraction                                                 float64
	ood, oodSplits                                              []string
	logitScale                                                  string
	mcmTemperature                                              float64
	eceBins                                                     int
	noise                                                       []float64
	jpeg                                                        []int
	batchSize, maxImages, calibImages, workers                  int
	cacheDir                                                    string
}

// newEvalCmd builds `qatclip eval`: the reliability report of a model.
func newEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval --model DIR|HUB_ID|RUN_DIR [--recipe FILE] [--id PATH --classnames F --templates F] [--ood NAME=PATH ...] [--baseline DIR|HUB_ID] [--out DIR]",
		Short: "Evaluate a CLIP model's zero-shot accuracy, calibration, OOD detection and robustness",
		Long: `eval embeds an in-distribution labelled image set, a temperature-fit split and
any out-of-distribution sets with a CLIP model, classifies them zero-shot and
writes a reliability report to --out: report.json (every metric, the settings,
the model and data identities), report.md (tables, with the --baseline model
beside it and the deltas) and PNG plots (reliability diagram, confidence
histogram, risk-coverage, ROC, ID-vs-OOD score histograms, embedding spectrum).

--model is an HF folder, a .safetensors file, an HF hub id in the local HF
cache, or a training run folder (qatclip train --out), whose newest valid
checkpoint is evaluated with the run's quantizers. --recipe supplies the
eval section (data, prompts, scoring; the presets of recipes/eval are
built in: imagenet1k-mcm, cifar10-vs-cifar100, cifar100-vs-cifar10)
and, when it has a quantization section, fake-quantizes a float --model after
calibrating on the first --calibration-images ID images. --preset replaces
the eval section of --recipe. Flags override the recipe.

Class names: "from-dataset" (the ID set's ClassLabel names) or a file (one per
line, a JSON list, or a JSON object with "classes"). Templates: "default"
(a few generic prompts), "simple" ("a photo of a {}.") or a file (one per line,
a JSON list, or a JSON object with "templates", e.g. CLIP's 80 ImageNet
templates). Zero-shot heads are cached per text tower and prompts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.ErrOrStderr(), cmd.Flags(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model: HF folder, .safetensors file, HF hub id in the local cache, or a qatclip train run folder (default: the recipe's model.source)")
	fl.StringVar(&f.recipe, "recipe", "", "recipe file or shipped recipe name: its eval section configures the evaluation; its quantization section, when present, fake-quantizes a float --model")
	fl.StringVar(&f.preset, "preset", "", "evaluation preset, a file or a built-in name (e.g. imagenet1k-mcm) whose eval section replaces --recipe's")
	fl.StringArrayVar(&f.sets, "set", nil, "override a recipe key, e.g. --set eval.fit_fraction=0.5 (repeatable)")
	fl.StringVar(&f.baseline, "baseline", "", "float model (HF folder or hub id) evaluated on the same data; the report shows its column and the deltas")
	fl.StringVar(&f.out, "out", "", "report folder (default eval-report, or RUN_DIR/eval for a run folder)")
	fl.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	fl.StringVar(&f.vocab, "vocab", "", "tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or an HF folder; default $QATCLIP_VOCAB or the model folder's tokenizer)")
	fl.StringVar(&f.title, "title", "", "report title")
	fl.StringVar(&f.id, "id", "", "in-distribution labelled set (HF save_to_disk folder, Arrow or Parquet)")
	fl.StringVar(&f.split, "split", "", "split of the --id DatasetDict (e.g. validation, test)")
	fl.StringVar(&f.classnames, "classnames", "", `class names: "from-dataset" or a file`)
	fl.StringVar(&f.templates, "templates", "", `prompt templates: "default", "simple" or a file`)
	fl.StringVar(&f.fit, "fit", "", "separate labelled set to fit the temperature on (default: hold out --fit-fraction of the ID set)")
	fl.StringVar(&f.fitSplit, "fit-split", "", "split of the --fit DatasetDict")
	fl.Float64Var(&f.fitFraction, "fit-fraction", 0.2, "share of the ID set held out to fit the temperature (0: none)")
	fl.StringArrayVar(&f.ood, "ood", nil, "out-of-distribution set NAME=PATH (repeatable; replaces the recipe's)")
	fl.StringArrayVar(&f.oodSplits, "ood-split", nil, "split of an OOD DatasetDict, NAME=SPLIT (repeatable)")
	fl.StringVar(&f.logitScale, "logit-scale", "model", `"model" (the model's exp(logit_scale)) or a fixed number (CLIP_benchmark: 100)`)
	fl.Float64Var(&f.mcmTemperature, "mcm-temperature", 1, "temperature tau of the MCM OOD score max softmax(cos/tau)")
	fl.IntVar(&f.eceBins, "ece-bins", 15, "equal-width confidence bins of ECE")
	fl.Float64SliceVar(&f.noise, "noise", nil, "also evaluate the ID set with Gaussian noise of this std on the normalised pixels (repeatable, comma lists)")
	fl.IntSliceVar(&f.jpeg, "jpeg", nil, "also evaluate the ID set re-encoded as JPEG at this quality, 1-100 (repeatable, comma lists)")
	fl.IntVar(&f.batchSize, "batch-size", pipeline.DefaultBatchSize, "images per forward pass")
	fl.IntVar(&f.maxImages, "max-images", 0, "read at most this many images per set, in storage order (0: all)")
	fl.IntVar(&f.calibImages, "calibration-images", pipeline.DefaultCalibrationImages, "ID images a quantized float model calibrates on")
	fl.IntVar(&f.workers, "workers", 0, "image decode goroutines (0: one per CPU)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", `zero-shot head cache (default RUN_DIR/.cache for runs, else the user cache folder's qatclip; "off" disables)`)
	return cmd
}

// evalModel is a loaded model and what the report says about it.
type evalModel struct {
	m      pipeline.Model
	source string // folder the tokenizer may come from
	recipe *recipes.Recipe
	runDir string
}

// runEval resolves the settings, loads the models and writes the report.
func runEval(logw io.Writer, fl *pflag.FlagSet, f evalFlags) error {
	r, err := evalRecipe(f)
	if err != nil {
		return err
	}
	if f.model == "" {
		if r == nil || !r.Given("model.source") {
			return errors.New("eval: --model is required")
		}
		f.model = r.Model.Source
	}
	runDir := isRunDir(f.model)
	if runDir && f.recipe == "" {
		// The run's own recipe supplies the eval section.
		if r, err = recipes.Load(filepath.Join(f.model, train.RecipeFile), f.sets...); err != nil {
			return fmt.Errorf("eval: run %s: %w", f.model, err)
		}
		if f.preset != "" {
			if err := applyPreset(r, f.preset); err != nil {
				return err
			}
		}
	}
	opts, err := evalOptions(fl, f, r)
	if err != nil {
		return err
	}
	// Missing data fails before any model is loaded.
	if err := opts.ID.Check("id"); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if opts.Fit != nil {
		if err := opts.Fit.Check("fit"); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	for _, o := range opts.OOD {
		if err := o.Check("ood"); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	}
	switch {
	case f.out == "" && runDir:
		f.out = filepath.Join(f.model, "eval")
	case f.out == "":
		f.out = "eval-report"
	}
	switch {
	case f.cacheDir == "off":
		opts.CacheDir = ""
	case f.cacheDir != "":
		opts.CacheDir = f.cacheDir
	case runDir:
		opts.CacheDir = filepath.Join(f.model, ".cache")
	default:
		opts.CacheDir = pipeline.DefaultCacheDir()
	}

	be, err := backend.Open(f.backend, logw)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer be.Finalize()
	opts.Backend = be
	opts.Log = logw

	var model *evalModel
	if runDir {
		model, err = loadRunModel(logw, f.model)
	} else {
		model, err = loadModel(logw, f.model, r)
	}
	if err != nil {
		return err
	}
	if opts.Tokenizer, err = evalTokenizer(f.vocab, model.source); err != nil {
		return err
	}
	ev, err := pipeline.New(opts)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer ev.Close()

	var base *pipeline.Evaluation
	if f.baseline != "" {
		b, err := loadModel(logw, f.baseline, nil)
		if err != nil {
			return err
		}
		b.m.Label = "float"
		if model.m.Hook == nil {
			b.m.Label = "baseline"
		}
		if base, err = ev.Evaluate(b.m); err != nil {
			return err
		}
	}
	res, err := ev.Evaluate(model.m)
	if err != nil {
		return err
	}
	title := f.title
	if title == "" {
		title = "Reliability report: " + model.m.Label
	}
	rep := ev.Report(title, res, base)
	if err := rep.Write(f.out); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	c := res.Column.Result
	line := fmt.Sprintf("%s: acc1 %.4f, ece %.4f, nll %.4f", model.m.Label, c.Classification.Acc1, c.Classification.ECE, c.Classification.NLL)
	if t := c.Calibrated; t != nil {
		line += fmt.Sprintf(", T %.3f, ts_ece %.4f", t.Temperature, t.ECE)
	}
	if len(c.OOD) > 0 {
		line += fmt.Sprintf(", mean MCM auroc %.4f, fpr95 %.4f", c.OODMean["mcm"].AUROC, c.OODMean["mcm"].FPR95)
	}
	fmt.Fprintln(logw, line)
	fmt.Fprintf(logw, "wrote %s (report.json, report.md and plots)\n", f.out)
	return nil
}

// evalRecipe loads --recipe (with --set) and applies --preset; nil when
// neither is given.
func evalRecipe(f evalFlags) (*recipes.Recipe, error) {
	if f.recipe == "" && f.preset == "" {
		if len(f.sets) > 0 {
			return nil, errors.New("eval: --set needs --recipe or --preset")
		}
		return nil, nil
	}
	if f.recipe == "" {
		r, err := recipes.Load(f.preset, f.sets...)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		if r.Given("quantization") {
			return nil, fmt.Errorf("eval: --preset %s has a quantization section; give it as --recipe", f.preset)
		}
		return r, nil
	}
	r, err := recipes.Load(f.recipe, f.sets...)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if f.preset != "" {
		if err := applyPreset(r, f.preset); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// applyPreset replaces r's eval section by the preset's.
func applyPreset(r *recipes.Recipe, preset string) error {
	p, err := recipes.Load(preset)
	if err != nil {
		return fmt.Errorf("eval: --preset: %w", err)
	}
	r.Eval = p.Eval
	return nil
}

// evalOptions merges the recipe's eval section with the flags given.
func evalOptions(fl *pflag.FlagSet, f evalFlags, r *recipes.Recipe) (pipeline.Options, error) {
	ev := recipes.Default().Eval
	if r != nil {
		ev = r.Eval
	}
	opts, err := pipeline.FromRecipe(ev)
	if err != nil {
		return opts, fmt.Errorf("eval: %w", err)
	}
	set := fl.Changed
	if set("id") {
		opts.ID.Path = f.id
	}
	if set("split") {
		opts.ID.Split = f.split
	}
	if opts.ID.Path == "" {
		return opts, errors.New("eval: no ID set: give --id PATH (or eval.id.path in --recipe)")
	}
	opts.ID.Name = filepath.Base(filepath.Clean(opts.ID.Path))
	if set("classnames") {
		opts.Classes, opts.ClassNames = nil, f.classnames
	}
	if set("templates") {
		opts.TemplateSpec = f.templates
	}
	if set("fit") {
		opts.Fit = &pipeline.DataSet{Name: filepath.Base(filepath.Clean(f.fit)), Path: f.fit, Split: f.fitSplit,
			ImageColumn: opts.ID.ImageColumn, LabelColumn: opts.ID.LabelColumn}
		opts.FitFraction = 0
	} else if set("fit-fraction") || r == nil {
		opts.FitFraction = f.fitFraction
	}
	if set("ood") {
		opts.OOD = nil
		for _, o := range f.ood {
			name, path, ok := strings.Cut(o, "=")
			if !ok || name == "" || path == "" {
				return opts, fmt.Errorf("eval: --ood %q: want NAME=PATH", o)
			}
			opts.OOD = append(opts.OOD, pipeline.DataSet{Name: name, Path: path})
		}
	}
	for _, s := range f.oodSplits {
		name, split, ok := strings.Cut(s, "=")
		found := false
		for i := range opts.OOD {
			if ok && opts.OOD[i].Name == name {
				opts.OOD[i].Split, found = split, true
			}
		}
		if !found {
			return opts, fmt.Errorf("eval: --ood-split %q: want NAME=SPLIT with NAME one of the OOD sets", s)
		}
	}
	if set("logit-scale") || r == nil {
		opts.LogitScale = 0
		if f.logitScale != "model" {
			v, err := strconv.ParseFloat(f.logitScale, 64)
			if err != nil || !(v > 0) {
				return opts, fmt.Errorf("eval: --logit-scale %q: want \"model\" or a positive number", f.logitScale)
			}
			opts.LogitScale = v
		}
	}
	if set("mcm-temperature") || r == nil {
		if !(f.mcmTemperature > 0) {
			return opts, fmt.Errorf("eval: --mcm-temperature %v must be positive", f.mcmTemperature)
		}
		opts.MCMTemperature = f.mcmTemperature
	}
	if set("ece-bins") || r == nil {
		if f.eceBins < 1 {
			return opts, fmt.Errorf("eval: --ece-bins %d must be at least 1", f.eceBins)
		}
		opts.ECEBins = f.eceBins
	}
	if set("noise") || set("jpeg") {
		opts.Corruptions = nil
		for _, s := range f.noise {
			opts.Corruptions = append(opts.Corruptions, pipeline.Corruption{NoiseSigma: s})
		}
		for _, q := range f.jpeg {
			opts.Corruptions = append(opts.Corruptions, pipeline.Corruption{JPEGQuality: q})
		}
	}
	switch {
	case f.batchSize < 1:
		return opts, fmt.Errorf("eval: --batch-size %d must be positive", f.batchSize)
	case f.maxImages < 0:
		return opts, fmt.Errorf("eval: --max-images %d must not be negative", f.maxImages)
	case f.calibImages < 1:
		return opts, fmt.Errorf("eval: --calibration-images %d must be positive", f.calibImages)
	}
	opts.BatchSize, opts.MaxImages, opts.CalibrationImages, opts.Workers = f.batchSize, f.maxImages, f.calibImages, f.workers
	return opts, nil
}

// isRunDir reports whether path is a qatclip train run folder.
func isRunDir(path string) bool {
	for _, p := range []string{train.RecipeFile, train.CheckpointsDir} {
		if _, err := os.Stat(filepath.Join(path, p)); err != nil {
			return false
		}
	}
	return true
}

// loadModel loads a float checkpoint and, when r has a quantization
// section, the hook that fake-quantizes it after calibration.
func loadModel(logw io.Writer, source string, r *recipes.Recipe) (*evalModel, error) {
	ck, err := clip.Load(source)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	id, err := report.FileIdentity(source, ck.Path, 0)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	m := &evalModel{source: source, m: pipeline.Model{Label: "float", Identity: id, Config: ck.Config, Context: ctx}}
	fmt.Fprintf(logw, "model: %s (%s layout; vision %d layers x %d, text %d layers x %d)\n", ck.Path, ck.Layout,
		ck.Config.Vision.NumHiddenLayers, ck.Config.Vision.HiddenSize, ck.Config.Text.NumHiddenLayers, ck.Config.Text.HiddenSize)
	if r != nil && r.Given("quantization") {
		hook, plan, err := clip.QuantHook(r, ck.Config)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		m.recipe = r
		m.m.Hook, m.m.HookKey, m.m.Calibrate, m.m.Label = hook, pipeline.HookKey(r), true, r.Name
		fmt.Fprintf(logw, "recipe: %s (%s): %d of %d Linear layers quantized, %d quantization sites; calibrating on ID images\n",
			r.Name, r.Source(), plan.Quantized(), len(plan.Layers), hook.NumSites())
	}
	return m, nil
}

// loadRunModel loads the newest valid checkpoint of a training run: the
// run's recipe names the float model (for the config and any variable the
// checkpoint lacks) and the quantization, whose state the checkpoint holds.
func loadRunModel(logw io.Writer, runDir string) (*evalModel, error) {
	r, err := recipes.Load(filepath.Join(runDir, train.RecipeFile))
	if err != nil {
		return nil, fmt.Errorf("eval: run %s: %w", runDir, err)
	}
	latest, err := train.LatestCheckpoint(filepath.Join(runDir, train.CheckpointsDir), logw)
	if err != nil {
		return nil, fmt.Errorf("eval: run %s: %w", runDir, err)
	}
	if latest == nil {
		return nil, fmt.Errorf("eval: run %s: no valid checkpoint in %s", runDir, filepath.Join(runDir, train.CheckpointsDir))
	}
	ck, err := clip.Load(r.Model.Source)
	if err != nil {
		return nil, fmt.Errorf("eval: run %s: model.source: %w", runDir, err)
	}
	root := context.New()
	ctx := root.In(train.ModelScope)
	if err := ck.SetVariables(ctx); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	man, err := train.LoadCheckpoint(root, latest.Dir)
	if err != nil {
		return nil, fmt.Errorf("eval: run %s: %w", runDir, err)
	}
	hook, _, err := clip.QuantHook(r, ck.Config)
	if err != nil {
		return nil, fmt.Errorf("eval: run %s: %w", runDir, err)
	}
	id := report.Identity{Name: runDir, Path: latest.Dir}
	if s, ok := man.Files[train.VariablesFile]; ok {
		id.SHA256 = s.SHA256
	}
	label := fmt.Sprintf("%s step %d", r.Name, man.Step)
	fmt.Fprintf(logw, "model: run %s, checkpoint %s (step %d, epoch %d), recipe %s\n", runDir, latest.Dir, man.Step, man.Epoch, r.Name)
	return &evalModel{source: r.Model.Source, recipe: r, runDir: runDir,
		m: pipeline.Model{Label: label, Identity: id, Config: ck.Config, Context: ctx, Hook: hook, HookKey: pipeline.HookKey(r)}}, nil
}

// evalTokenizer loads --vocab, else $QATCLIP_VOCAB, else the model
// folder's own tokenizer files.
func evalTokenizer(vocab, model string) (*tokenizer.Tokenizer, error) {
	tok, err := clip.LoadTokenizer(vocab, model)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return tok, nil
}
