// Package demo is qatclip's embedded default job, `qatclip demo`: with no
// data, model or network it synthesises the shapes data set, learns a small
// BPE vocabulary from its captions, trains a small CLIP from scratch in
// float (contrastive loss, plus an auxiliary classification loss on the
// shape labels against a fixed orthonormal head: a small ViT learns colours
// from captions in a few steps but shapes slowly), quantizes it twice —
// post-training W8A8 min-max (package ptq) and quantization-aware W4A8 LSQ
// with distillation from the float model (package train, shipped recipe
// w4a8-lsq.yaml) — evaluates the three with the reliability evaluator
// (eval/pipeline: zero-shot accuracy, calibration, OOD detection on the
// unseen shapes) and compares them.
//
// The demo draws the easy variant of the shapes (data.SynthEasy: each
// shape centred on a grid point a quarter of the image apart, so the
// 4-pixel patches of the 16-pixel images cut it the same way wherever it
// is). On the default, hard variant the shapes sit anywhere, and a ViT
// this small has to learn sub-patch shifts from a few thousand images: it
// stalls near 0.4-0.5 zero-shot accuracy (chance 0.2), where the easy
// variant reaches about 0.97 with the same work.
//
// Everything goes to one folder:
//
//	OUT/demo.json            the options of the run (marks the folder as a demo)
//	OUT/data/shapes/         the synthetic DatasetDict: train, test, ood
//	OUT/runs/float/          the float training run (recipe.yaml, metrics.jsonl, checkpoints)
//	OUT/models/float/        the float model as an HF folder, with its tokenizer
//	OUT/runs/ptq/            the PTQ run folder (qatclip export --run reads it)
//	OUT/runs/qat/            the QAT run, with an epoch-NNN/ report per evaluated epoch
//	OUT/models/qat/          the QAT student as an HF folder, with its tokenizer
//	OUT/reports/{float,ptq,qat}/  report.json, report.md and plots of each model
//	OUT/summary.md           the comparison table
//	OUT/templates.txt        the prompt templates, for qatclip eval --templates
package demo

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/eval/pipeline"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/export"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/ptq"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
)

// floatRecipe is the float pre-training recipe (no quantization).
//
//go:embed float.yaml
var floatRecipe []byte

// MarkerFile is the file that marks a folder as written by the demo; Run
// with Force only replaces a folder that holds it (or is empty).
const MarkerFile = "demo.json"

// QATRecipe and PTQRecipe are the shipped recipes the demo quantizes with.
const (
	QATRecipe = "w4a8-lsq.yaml"
	PTQRecipe = "w8a8-minmax-ptq.yaml"
)

// Options configures Run. DefaultOptions gives the settings `qatclip demo`
// uses; tests shrink them.
type Options struct {
	// Out is the output folder. It must not exist or be empty, unless
	// Force is set.
	Out string `json:"out"`
	// Force replaces Out when it is a folder an earlier demo wrote.
	Force bool `json:"-"`
	// Backend runs every graph. Required.
	Backend backends.Backend `json:"-"`

	// N, TestN and OODN are the sizes of the train, test (ID) and ood
	// splits of the synthetic data set; ImageSize its image side.
	N, TestN, OODN int
	ImageSize      int `json:"image_size"`
	// Difficulty is the synthetic set's difficulty (data.SynthEasy or
	// data.SynthHard).
	Difficulty string `json:"difficulty"`
	// Seed seeds the data set, the initial weights and the training.
	Seed uint64 `json:"seed"`
	// Merges is the number of BPE merges learned for the vocabulary.
	Merges int `json:"merges"`

	// Width, Layers and Heads size both towers; PatchSize the image
	// patches; ContextLength the text; ProjectionDim the shared embedding.
	Width, Layers, Heads int
	PatchSize            int `json:"patch_size"`
	ContextLength        int `json:"context_length"`
	ProjectionDim        int `json:"projection_dim"`

	// BatchSize is the training batch of both trainings.
	BatchSize int `json:"batch_size"`
	// FloatEpochs and FloatLR configure the float pre-training.
	FloatEpochs int     `json:"float_epochs"`
	FloatLR     float64 `json:"float_lr"`
	// Classification is the weight of the float pre-training's
	// classification loss on the shape labels, beside the contrastive
	// loss (0: contrastive only).
	Classification float64 `json:"classification"`
	// QATEpochs, QATLR and QuantizerLR configure the W4A8 QAT.
	QATEpochs   int     `json:"qat_epochs"`
	QATLR       float64 `json:"qat_lr"`
	QuantizerLR float64 `json:"quantizer_lr"`
	// CalibrationBatches is the number of training batches PTQ calibrates
	// on (and QAT initialises its LSQ scales from).
	CalibrationBatches int `json:"calibration_batches"`
	// EvalEvery evaluates the float training every so many epochs
	// (0: only after the last one); QAT is evaluated after every epoch.
	EvalEvery int `json:"eval_every"`

	// Workers is the number of decode goroutines (0: GOMAXPROCS).
	Workers int `json:"-"`
	// Log receives stage headers and log lines; nil discards them.
	Log io.Writer `json:"-"`
	// Progress receives the trainers' progress bars or lines; nil uses Log.
	Progress io.Writer `json:"-"`
	// LogEvery is the number of steps between progress lines (default 10).
	LogEvery int `json:"-"`
}

// DefaultOptions returns the settings of `qatclip demo` (OUT
// ./qatclip-demo): 4,000 easy training images of 16 pixels, a CLIP of width 64
// with 2 layers per tower and 4-pixel patches, 12 float epochs with an
// auxiliary shape-label loss, 2 QAT epochs.
func DefaultOptions() Options {
	return Options{
		Out: "qatclip-demo",
		N:   4000, TestN: 500, OODN: 300, ImageSize: 16, Difficulty: data.SynthEasy, Seed: 1, Merges: 200,
		Width: 64, Layers: 2, Heads: 2, PatchSize: 4, ContextLength: 16, ProjectionDim: 64,
		BatchSize: 64, FloatEpochs: 12, FloatLR: 2e-3, Classification: 1,
		QATEpochs: 2, QATLR: 1e-4, QuantizerLR: 1e-3,
		CalibrationBatches: 4, EvalEvery: 4, LogEvery: 10,
	}
}

// DefaultMinutes is about how long Run takes with DefaultOptions on two
// CPU cores with the pure-Go backend, rounded up for a busy machine
// (measured: 63 s on a shared 2-core machine at load 1.1-1.7; see
// docs/PERFORMANCE.md).
const DefaultMinutes = 2

// Model is one evaluated model of the comparison.
type Model struct {
	// Label names the model in the table: "float", "ptq-w8a8", "qat-w4a8".
	Label string
	// Metrics are the evaluator's scalars (pipeline.Scalars): acc1, ece,
	// ts_ece, nll, auroc, fpr95, ...
	Metrics map[string]float64
	// ReportDir holds report.json, report.md and the plots.
	ReportDir string
	// ModelDir is the model's folder: an HF folder or a run folder.
	ModelDir string
}

// Result is what Run did.
type Result struct {
	// Models are float, PTQ and QAT in that order.
	Models []Model
	// Dataset is the synthetic data set folder.
	Dataset string
	// Classes is the number of ID classes (shapes) of the zero-shot
	// head; 1/Classes is the accuracy of chance.
	Classes int
	// Summary is the comparison table file (summary.md).
	Summary string
	// Seconds is the wall time of Run.
	Seconds float64
}

// check validates the options, naming the first bad one.
func (o *Options) check() error {
	pos := []struct {
		name string
		v    int
	}{
		{"N", o.N}, {"TestN", o.TestN}, {"OODN", o.OODN}, {"ImageSize", o.ImageSize}, {"Merges", o.Merges},
		{"Width", o.Width}, {"Layers", o.Layers}, {"Heads", o.Heads}, {"PatchSize", o.PatchSize},
		{"ContextLength", o.ContextLength}, {"ProjectionDim", o.ProjectionDim}, {"BatchSize", o.BatchSize},
		{"FloatEpochs", o.FloatEpochs}, {"QATEpochs", o.QATEpochs}, {"CalibrationBatches", o.CalibrationBatches},
	}
	for _, p := range pos {
		if p.v < 1 {
			return fmt.Errorf("demo: %s must be positive, got %d", p.name, p.v)
		}
	}
	switch {
	case o.Out == "":
		return errors.New("demo: no output folder")
	case o.Backend == nil:
		return errors.New("demo: no backend")
	case o.ImageSize%o.PatchSize != 0:
		return fmt.Errorf("demo: image size %d is not a multiple of the patch size %d", o.ImageSize, o.PatchSize)
	case o.Width%o.Heads != 0:
		return fmt.Errorf("demo: width %d is not a multiple of the %d heads", o.Width, o.Heads)
	case o.BatchSize > o.N:
		return fmt.Errorf("demo: batch size %d is larger than the %d training images", o.BatchSize, o.N)
	case !(o.FloatLR > 0) || !(o.QATLR > 0) || !(o.QuantizerLR > 0):
		return fmt.Errorf("demo: learning rates must be positive (float %g, qat %g, quantizer %g)", o.FloatLR, o.QATLR, o.QuantizerLR)
	case !(o.Classification >= 0) || math.IsInf(o.Classification, 0):
		return fmt.Errorf("demo: the classification loss weight must be a number >= 0, got %v", o.Classification)
	case o.EvalEvery < 0:
		return fmt.Errorf("demo: EvalEvery must not be negative, got %d", o.EvalEvery)
	case !slices.Contains(data.SynthDifficulties(), o.Difficulty):
		return fmt.Errorf("demo: difficulty %q: want one of %v", o.Difficulty, data.SynthDifficulties())
	}
	return nil
}

// prepareOut creates the output folder, refusing to replace a non-empty
// one unless Force is set and it holds an earlier demo's marker file.
func prepareOut(o Options) error {
	entries, err := os.ReadDir(o.Out)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("demo: output folder: %w", err)
	case len(entries) > 0 && !o.Force:
		return fmt.Errorf("demo: output folder %s is not empty (pass --force to replace an earlier demo's output, or choose another --out)", o.Out)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(o.Out, MarkerFile)); err != nil {
			return fmt.Errorf("demo: output folder %s is not empty and has no %s: it is not an earlier demo's output, so --force does not replace it", o.Out, MarkerFile)
		}
		if err := os.RemoveAll(o.Out); err != nil {
			return fmt.Errorf("demo: replace %s: %w", o.Out, err)
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return os.WriteFile(filepath.Join(o.Out, MarkerFile), append(b, '\n'), 0o644)
}

// runner holds the state shared by the stages of Run.
type runner struct {
	o       Options
	log     io.Writer
	start   time.Time
	stage   int
	shapes  string
	merges  [][2]string
	tok     *tokenizer.Tokenizer
	classes []string
	// templates are the prompt templates (the training captions with the
	// shape name replaced by "{}").
	templates []string
	captions  []string
	ev        *pipeline.Evaluator
}

// numStages is the number of stage headers Run prints.
const numStages = 6

// stagef prints a stage header with the elapsed time.
func (r *runner) stagef(format string, args ...any) {
	r.stage++
	fmt.Fprintf(r.log, "[%d/%d %s] %s\n", r.stage, numStages, time.Since(r.start).Round(time.Second), fmt.Sprintf(format, args...))
}

// Run runs the demo (see the package documentation) and returns the three
// models' metrics; Result.Table formats them.
func Run(o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 10
	}
	r := &runner{o: o, log: o.Log, start: time.Now()}
	if r.log == nil {
		r.log = io.Discard
	}
	if r.o.Progress == nil {
		r.o.Progress = r.log
	}
	if err := prepareOut(o); err != nil {
		return nil, err
	}
	if o.withDefaultWork() {
		fmt.Fprintf(r.log, "qatclip demo: this takes about %d minutes on 2 CPU cores with the pure-Go backend; output in %s\n", DefaultMinutes, o.Out)
	} else {
		fmt.Fprintf(r.log, "qatclip demo: custom sizes; output in %s\n", o.Out)
	}

	r.stagef("synthesising the %s shapes data set: %d train, %d test, %d ood images of %d pixels", o.Difficulty, o.N, o.TestN, o.OODN, o.ImageSize)
	r.shapes = filepath.Join(o.Out, "data", "shapes")
	if _, err := data.SynthShapesDataset(r.shapes, data.SynthOptions{N: o.N, TestN: o.TestN, OODN: o.OODN, Size: o.ImageSize, Seed: o.Seed, Difficulty: o.Difficulty}); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	r.stagef("learning a %d-merge BPE vocabulary from the captions", o.Merges)
	if err := r.learnVocabulary(); err != nil {
		return nil, err
	}
	var err error
	if r.ev, err = pipeline.New(r.evalOptions()); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer r.ev.Close()

	floatModel, floatEval, err := r.trainFloat()
	if err != nil {
		return nil, err
	}
	ptqModel, err := r.runPTQ(floatModel.ModelDir, floatEval)
	if err != nil {
		return nil, err
	}
	qatModel, err := r.runQAT(floatModel.ModelDir, floatEval)
	if err != nil {
		return nil, err
	}
	res := &Result{Models: []Model{floatModel, ptqModel, qatModel}, Dataset: r.shapes, Classes: len(r.classes), Summary: filepath.Join(o.Out, "summary.md")}
	res.Seconds = time.Since(r.start).Seconds()
	if err := os.WriteFile(res.Summary, []byte(res.Markdown()), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return res, nil
}

// withDefaultWork reports whether the options do the default amount of
// work (so the time estimate holds).
func (o Options) withDefaultWork() bool {
	d := DefaultOptions()
	d.Out, d.Force, d.Backend, d.Workers, d.Log, d.Progress, d.LogEvery = o.Out, o.Force, o.Backend, o.Workers, o.Log, o.Progress, o.LogEvery
	return d == o
}

// learnVocabulary learns the BPE merges from the training captions and the
// class prompts, and derives the prompt templates from the captions.
func (r *runner) learnVocabulary() error {
	src, err := data.Open(r.shapes, data.SourceOptions{Split: "train"})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer src.Close()
	r.classes = src.ClassNames()
	if len(r.classes) == 0 {
		return fmt.Errorf("demo: %s has no class names", r.shapes)
	}
	seen := map[string]bool{}
	for i, sh := range src.Shards() {
		exs, err := src.ReadRange(i, 0, sh.Rows)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		for _, ex := range exs {
			r.captions = append(r.captions, ex.Caption)
			if ex.Label < 0 || ex.Label >= len(r.classes) {
				continue
			}
			if t, ok := Template(ex.Caption, r.classes[ex.Label]); ok && !seen[t] {
				seen[t] = true
				r.templates = append(r.templates, t)
			}
		}
	}
	if len(r.templates) == 0 {
		return fmt.Errorf("demo: no training caption names its shape, so there are no prompt templates")
	}
	slices.Sort(r.templates)
	tplPath := filepath.Join(r.o.Out, "templates.txt")
	if err := os.WriteFile(tplPath, []byte(strings.Join(r.templates, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	texts := append(slices.Clone(r.captions), pipeline.Prompts(r.classes, r.templates)...)
	r.merges = tokenizer.LearnMerges(texts, r.o.Merges)
	if r.tok, err = tokenizer.FromMerges("demo vocabulary", r.merges); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(r.log, "vocabulary of %d tokens (%d merges) from %d captions; %d prompt templates such as %q\n",
		r.tok.VocabSize(), len(r.merges), len(r.captions), len(r.templates), r.templates[0])
	return nil
}

// Template turns a caption that names class into a prompt template, with
// "{}" in place of the class name's first whole-word occurrence.
func Template(caption, class string) (string, bool) {
	words := strings.Fields(caption)
	for i, w := range words {
		if w == class {
			words[i] = "{}"
			return strings.Join(words, " "), true
		}
	}
	return "", false
}

// config returns the CLIP configuration of the demo model.
func (r *runner) config() clip.Config {
	o := r.o
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: o.Width, IntermediateSize: 4 * o.Width, NumAttentionHeads: o.Heads,
		NumHiddenLayers: o.Layers, ImageSize: o.ImageSize, PatchSize: o.PatchSize, NumChannels: 3,
		HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: r.tok.VocabSize(), HiddenSize: o.Width, IntermediateSize: 4 * o.Width,
		NumAttentionHeads: o.Heads, NumHiddenLayers: o.Layers, MaxPositionEmbeddings: o.ContextLength,
		HiddenAct: "quick_gelu", LayerNormEps: 1e-5, BosTokenID: r.tok.StartID(), EosTokenID: r.tok.EndID(), PadTokenID: 0}
	cfg.ProjectionDim = o.ProjectionDim
	return cfg
}

// evalOptions evaluates on the test split (a fifth held out for the
// temperature) with the ood split as the OOD set.
func (r *runner) evalOptions() pipeline.Options {
	return pipeline.Options{
		Backend:     r.o.Backend,
		ID:          pipeline.DataSet{Name: "shapes-test", Path: r.shapes, Split: "test"},
		FitFraction: 0.2,
		OOD:         []pipeline.DataSet{{Name: "shapes-ood", Path: r.shapes, Split: "ood"}},
		Classes:     r.classes,
		Templates:   r.templates,
		Tokenizer:   r.tok,
		BatchSize:   64,
		Workers:     r.o.Workers,
		Seed:        r.o.Seed,
		Log:         r.log,
	}
}

// recipe parses an embedded or shipped recipe with the demo's data and
// overrides; model is the model.source it records.
func (r *runner) recipe(name string, yaml []byte, model string, overrides ...string) (*recipes.Recipe, error) {
	var rec *recipes.Recipe
	var err error
	if yaml != nil {
		rec, err = recipes.Parse(name, yaml, overrides...)
	} else {
		rec, err = recipes.Load(name, overrides...)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	rec.Model.Source = model
	rec.Train.Data.Path, rec.Train.Data.Split = r.shapes, "train"
	rec.Eval.ID.Path, rec.Eval.ID.Split = r.shapes, "test"
	rec.Eval.ID.Templates = ""
	rec.Eval.OOD = []recipes.OODSet{{Name: "shapes-ood", Path: r.shapes, Split: "ood", ImageColumn: "image"}}
	return rec, nil
}

// evalHook evaluates the student at the end of an epoch, keeps the last
// evaluation in *last and, when runDir is set, writes the epoch's report
// to runDir/epoch-NNN with baseline beside it.
func (r *runner) evalHook(label string, cfg clip.Config, hook func() layers.Hook, hookKey, runDir string, baseline *pipeline.Evaluation, last **pipeline.Evaluation) train.EpochEndFunc {
	var emb *clip.Embedder
	return func(ctx *context.Context, epoch int) (map[string]float64, error) {
		h := hook()
		if emb == nil {
			var err error
			if emb, err = clip.NewEmbedder(r.o.Backend, ctx, cfg, h); err != nil {
				return nil, err
			}
		}
		m := pipeline.Model{Label: label, Identity: report.Identity{Name: label}, Config: cfg, Context: ctx, Hook: h, HookKey: hookKey, Embedder: emb}
		ev, err := r.ev.Evaluate(m)
		if err != nil {
			return nil, err
		}
		*last = ev
		if runDir != "" {
			dir := filepath.Join(runDir, fmt.Sprintf("epoch-%03d", epoch))
			if err := r.ev.Report(fmt.Sprintf("Reliability report: %s, epoch %d", label, epoch), ev, baseline).Write(dir); err != nil {
				return nil, err
			}
		}
		return pipeline.Scalars(ev.Column.Result), nil
	}
}

// writeReport writes ev's report (with baseline) to OUT/reports/name.
func (r *runner) writeReport(name, title string, ev, baseline *pipeline.Evaluation) (string, error) {
	dir := filepath.Join(r.o.Out, "reports", name)
	if err := r.ev.Report(title, ev, baseline).Write(dir); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return dir, nil
}

// saveModel writes the trainer's student and the tokenizer as an HF folder.
func (r *runner) saveModel(t *train.Trainer, dir string) error {
	if err := t.SaveModel(dir); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := tokenizer.WriteHF(dir, r.merges); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// trainFloat trains the CLIP from scratch and evaluates it.
func (r *runner) trainFloat() (Model, *pipeline.Evaluation, error) {
	o := r.o
	cfg := r.config()
	r.stagef("training a CLIP from scratch in float: width %d, %d layers per tower, %d epochs of %d batches of %d",
		o.Width, o.Layers, o.FloatEpochs, o.N/o.BatchSize, o.BatchSize)
	rec, err := r.recipe("demo-float.yaml", floatRecipe, randomSource,
		fmt.Sprintf("train.epochs=%d", o.FloatEpochs), fmt.Sprintf("train.batch_size=%d", o.BatchSize),
		fmt.Sprintf("train.optimizer.lr=%g", o.FloatLR), fmt.Sprintf("train.seed=%d", o.Seed),
		fmt.Sprintf("train.schedule.warmup_steps=%d", min(20, o.FloatEpochs*(o.N/o.BatchSize)/5)),
		fmt.Sprintf("eval.every_epochs=%d", o.EvalEvery), fmt.Sprintf("train.loss.classification=%g", o.Classification))
	if err != nil {
		return Model{}, nil, err
	}
	ck := clip.NewRandomCheckpoint(cfg, o.Seed)
	var last *pipeline.Evaluation
	noHook := func() layers.Hook { return nil }
	runDir := filepath.Join(o.Out, "runs", "float")
	t, err := r.train(rec, ck, runDir, r.evalHook("float", cfg, noHook, "", "", nil, &last), nil)
	if err != nil {
		return Model{}, nil, err
	}
	defer t.Close()
	modelDir := filepath.Join(o.Out, "models", "float")
	if err := r.saveModel(t, modelDir); err != nil {
		return Model{}, nil, err
	}
	dir, err := r.writeReport("float", "Reliability report: float CLIP trained from scratch", last, nil)
	if err != nil {
		return Model{}, nil, err
	}
	return Model{Label: "float", Metrics: pipeline.Scalars(last.Column.Result), ReportDir: dir, ModelDir: modelDir}, last, nil
}

// train opens the recipe's data, builds a trainer and runs it. When slot
// is not nil it is set to the trainer before training starts (for an
// end-of-epoch hook that needs the trainer's quantization hook).
func (r *runner) train(rec *recipes.Recipe, ck *clip.Checkpoint, runDir string, epochEnd train.EpochEndFunc, slot **train.Trainer) (*train.Trainer, error) {
	d, head, err := train.OpenLoaderData(rec, ck, r.o.Backend, train.LoaderOptions{Tokenizer: r.tok, Workers: r.o.Workers, Cache: true})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if head != nil && rec.Model.Source == randomSource {
		// A random text tower embeds the class prompts almost alike; a
		// fixed orthonormal head gives the label loss something to learn.
		if head, err = OrthonormalHead(len(r.classes), ck.Config.ProjectionDim, r.o.Seed); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	t, err := train.New(train.Options{Recipe: rec, Backend: r.o.Backend, Model: ck, Data: d, RunDir: runDir, ClassHead: head,
		EpochEnd: epochEnd, Log: r.log, Progress: r.o.Progress, LogEvery: r.o.LogEvery})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if slot != nil {
		*slot = t
	}
	if n := t.Hook().NumSites(); n > 0 {
		fmt.Fprintf(r.log, "%s: %d quantization sites\n", rec.Name, n)
	}
	if _, err := t.Run(); err != nil {
		t.Close()
		return nil, fmt.Errorf("demo: %s: %w", rec.Name, err)
	}
	return t, nil
}

// calibrationData returns the first CalibrationBatches training batches
// (in the training order of epoch 0) as PTQ calibration data.
func (r *runner) calibrationData(rec *recipes.Recipe, ck *clip.Checkpoint) (ptq.Data, error) {
	var d ptq.Data
	batches, _, err := train.OpenLoaderData(rec, ck, r.o.Backend, train.LoaderOptions{Tokenizer: r.tok, Workers: r.o.Workers})
	if err != nil {
		return d, fmt.Errorf("demo: calibration data: %w", err)
	}
	it, err := batches.Epoch(0, 0)
	if err != nil {
		return d, fmt.Errorf("demo: calibration data: %w", err)
	}
	defer it.Close()
	for range min(r.o.CalibrationBatches, batches.NumBatches()) {
		b, err := it.Next()
		if err != nil {
			return d, fmt.Errorf("demo: calibration data: %w", err)
		}
		d.Pixels = append(d.Pixels, b.Pixels...)
		d.IDs = append(d.IDs, b.InputIDs...)
		d.N += b.N
		d.M += b.N
		d.L = b.SeqLen()
	}
	return d, nil
}

// runPTQ calibrates the shipped W8A8 min-max recipe on the float model,
// writes the run folder and evaluates it.
func (r *runner) runPTQ(floatDir string, baseline *pipeline.Evaluation) (Model, error) {
	o := r.o
	r.stagef("post-training quantization (%s) of the float model on %d batches of %d training images", PTQRecipe, o.CalibrationBatches, o.BatchSize)
	rec, err := r.recipe(PTQRecipe, nil, absPath(floatDir),
		fmt.Sprintf("quantization.schedule.calibration_batches=%d", o.CalibrationBatches),
		fmt.Sprintf("train.batch_size=%d", o.BatchSize))
	if err != nil {
		return Model{}, err
	}
	ck, err := clip.Load(floatDir)
	if err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	cfg := ck.Config
	hook, _, err := clip.QuantHook(rec, cfg)
	if err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	d, err := r.calibrationData(rec, ck)
	if err != nil {
		return Model{}, err
	}
	root := context.New()
	mctx := root.In(export.ModelScope)
	if err := ck.SetVariables(mctx); err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	emb, err := clip.NewEmbedder(o.Backend, mctx, cfg, hook)
	if err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	if err := ptq.Calibrate(mctx, emb, d, o.BatchSize, o.CalibrationBatches); err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	runDir := filepath.Join(o.Out, "runs", "ptq")
	if _, err := export.WriteRun(runDir, rec, cfg, root, train.Manifest{EpochEnd: true}); err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	label := "ptq-w8a8"
	ev, err := r.ev.Evaluate(pipeline.Model{Label: label, Identity: report.Identity{Name: label, Path: runDir}, Config: cfg,
		Context: mctx, Hook: hook, HookKey: pipeline.HookKey(rec), Embedder: emb})
	if err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	dir, err := r.writeReport("ptq", "Reliability report: W8A8 min-max PTQ of the float CLIP", ev, baseline)
	if err != nil {
		return Model{}, err
	}
	return Model{Label: label, Metrics: pipeline.Scalars(ev.Column.Result), ReportDir: dir, ModelDir: runDir}, nil
}

// runQAT fine-tunes the float model with the shipped W4A8 LSQ recipe and
// logits distillation from the float model, evaluating every epoch.
func (r *runner) runQAT(floatDir string, baseline *pipeline.Evaluation) (Model, error) {
	o := r.o
	r.stagef("quantization-aware training (%s, distilled from the float model): %d epochs", QATRecipe, o.QATEpochs)
	rec, err := r.recipe(QATRecipe, nil, absPath(floatDir),
		fmt.Sprintf("train.epochs=%d", o.QATEpochs), fmt.Sprintf("train.batch_size=%d", o.BatchSize),
		fmt.Sprintf("train.optimizer.lr=%g", o.QATLR), fmt.Sprintf("train.optimizer.quantizer_lr=%g", o.QuantizerLR),
		"train.schedule.warmup_steps=0", fmt.Sprintf("train.seed=%d", o.Seed), "train.checkpoint.keep=1",
		"train.loss.distill.weight=1.0", fmt.Sprintf("quantization.schedule.calibration_batches=%d", o.CalibrationBatches),
		"eval.every_epochs=1")
	if err != nil {
		return Model{}, err
	}
	ck, err := clip.Load(floatDir)
	if err != nil {
		return Model{}, fmt.Errorf("demo: %w", err)
	}
	cfg := ck.Config
	var t *train.Trainer
	var last *pipeline.Evaluation
	label := "qat-w4a8"
	runDir := filepath.Join(o.Out, "runs", "qat")
	hook := func() layers.Hook { return t.Hook() }
	t, err = r.train(rec, ck, runDir, r.evalHook(label, cfg, hook, pipeline.HookKey(rec), runDir, baseline, &last), &t)
	if err != nil {
		return Model{}, err
	}
	defer t.Close()
	modelDir := filepath.Join(o.Out, "models", "qat")
	if err := r.saveModel(t, modelDir); err != nil {
		return Model{}, err
	}
	r.stagef("writing the reports")
	dir, err := r.writeReport("qat", "Reliability report: W4A8 LSQ QAT (distilled) of the float CLIP", last, baseline)
	if err != nil {
		return Model{}, err
	}
	return Model{Label: label, Metrics: pipeline.Scalars(last.Column.Result), ReportDir: dir, ModelDir: runDir}, nil
}

// absPath returns p as an absolute path when it can.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// randomSource is the model.source recorded for the model trained from
// scratch.
const randomSource = "random"

// OrthonormalHead returns c orthonormal rows of d values (c <= d), drawn
// from a seeded Gaussian and orthonormalised by Gram-Schmidt: a fixed
// zero-shot head whose classes are as far apart as they can be.
func OrthonormalHead(c, d int, seed uint64) ([]float32, error) {
	if c < 1 || c > d {
		return nil, fmt.Errorf("orthonormal head: %d classes do not fit %d dimensions", c, d)
	}
	rng := rand.New(rand.NewPCG(seed, 0x4ead))
	rows := make([][]float64, c)
	for i := range rows {
		for {
			v := make([]float64, d)
			for j := range v {
				v[j] = rng.NormFloat64()
			}
			for _, u := range rows[:i] {
				var dot float64
				for j := range v {
					dot += v[j] * u[j]
				}
				for j := range v {
					v[j] -= dot * u[j]
				}
			}
			var n float64
			for _, x := range v {
				n += x * x
			}
			if n = math.Sqrt(n); n > 1e-6 {
				for j := range v {
					v[j] /= n
				}
				rows[i] = v
				break
			}
		}
	}
	out := make([]float32, 0, c*d)
	for _, row := range rows {
		for _, x := range row {
			out = append(out, float32(x))
		}
	}
	return out, nil
}
