package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/eval/pipeline"
	"github.com/qatclip/qatclip/eval/report"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
	"github.com/qatclip/qatclip/train/demo"
	"github.com/spf13/cobra"
)

// trainFlags are the flags of `qatclip train`.
type trainFlags struct {
	recipe   string
	out      string
	resume   bool
	sets     []string
	noEval   bool
	backend  string
	logEvery int
	maxSteps int
	vocab    string
	workers  int
}

// newTrainCmd builds `qatclip train`.
func newTrainCmd() *cobra.Command {
	var f trainFlags
	cmd := &cobra.Command{
		Use:   "train --recipe FILE --out RUN [--resume] [--set key=value ...] [--no-eval] [--backend NAME]",
		Short: "Quantization-aware training of a CLIP model as a recipe describes",
		Long: `train fine-tunes the recipe's model.source with the recipe's fake quantizers
(and, with train.loss.distill, a frozen float teacher) on train.data.path, and
writes to the run folder --out:
  recipe.yaml            the fully resolved recipe
  metrics.jsonl          one JSON object per logged step (step, epoch, loss, one
                         key per loss term, lr, images_per_s) and one per epoch
  checkpoints/step-N/    model, optimizer and quantizer state, data position
                         (written atomically, with SHA-256 checksums)
  model/                 the trained student as an HF folder (after the last epoch)
  epoch-NNN/             the reliability report (report.json, report.md, plots)
                         of each evaluated epoch on eval.id / eval.ood, with
                         the float starting model beside it (--no-eval skips)
  lock                   held while training: a second trainer on RUN refuses
--resume continues from the newest valid checkpoint (a corrupt one is skipped
with a warning) and reaches the same weights as an uninterrupted run.
--set overrides recipe keys, e.g. --set train.epochs=2 --set train.optimizer.lr=5e-6.

train.data.path is an image-caption data set: an HF save_to_disk folder (a
DatasetDict with train.data.split, default train), an Arrow IPC file or a
Parquet file/folder (img2dataset output included). Images are decoded and
preprocessed as CLIP does, captions tokenized with --vocab, $QATCLIP_VOCAB
or the model folder's tokenizer, by --workers goroutines ahead of the
model, in a seeded order that a resumed run repeats exactly. The
classification loss builds its zero-shot head from the data set's class
names with the template "a photo of a {}.".
train.data.path may instead be a folder of already preprocessed arrays:
pixel_values.npy ((N,3,H,W) float32, normalised as CLIP expects) and
input_ids.npy ((N,L) int32/int64), with optional labels.npy ((N,) int, -1
for none) and class_embeddings.npy ((C,D) float32, the zero-shot head of
train.loss.classification).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.recipe, "recipe", "", "recipe file, or the name of a shipped recipe (required)")
	fl.StringVar(&f.out, "out", "", "run folder (required)")
	fl.BoolVar(&f.resume, "resume", false, "continue the run in --out from its last checkpoint")
	fl.StringArrayVar(&f.sets, "set", nil, "override a recipe key, key.path=value (repeatable)")
	fl.BoolVar(&f.noEval, "no-eval", false, "skip the end-of-epoch evaluation")
	fl.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	fl.IntVar(&f.logEvery, "log-every", 10, "optimizer steps between metrics.jsonl lines and progress lines")
	fl.IntVar(&f.maxSteps, "max-steps", 0, "stop after this many optimizer steps in all, as if interrupted (0: train every epoch)")
	fl.MarkHidden("max-steps")
	fl.StringVar(&f.vocab, "vocab", "", "tokenizer for the captions (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or an HF folder; default $QATCLIP_VOCAB, else the model folder's)")
	fl.IntVar(&f.workers, "workers", 0, "decode/preprocess goroutines (default: the number of CPUs)")
	return cmd
}

// runTrain checks the flags, loads the recipe, model and data, and trains.
func runTrain(logw io.Writer, f trainFlags) error {
	switch {
	case f.recipe == "":
		return errors.New("train: --recipe is required")
	case f.out == "":
		return errors.New("train: --out is required")
	case f.logEvery < 1:
		return fmt.Errorf("train: --log-every %d must be at least 1", f.logEvery)
	}
	r, err := recipes.Load(f.recipe, f.sets...)
	if err != nil {
		return err
	}
	be, err := backend.Open(f.backend, logw)
	if err != nil {
		return err
	}
	ck, err := clip.Load(r.Model.Source)
	if err != nil {
		return fmt.Errorf("recipe %s: model.source: %w", r.Source(), err)
	}
	data, head, err := openTrainData(r, ck, be, f)
	if err != nil {
		return err
	}
	var epochEnd train.EpochEndFunc
	var t *train.Trainer
	if !f.noEval && r.Eval.ID.Path != "" {
		ev, base, err := openEpochEval(logw, r, ck, be, f)
		if err != nil {
			return err
		}
		defer ev.Close()
		epochEnd = epochEvalHook(logw, ev, r, ck.Config, func() layers.Hook { return t.Hook() }, f.out, base)
	} else if !f.noEval {
		fmt.Fprintf(logw, "note: recipe %s has no eval.id.path: no end-of-epoch evaluation\n", r.Source())
	}
	t, err = train.New(train.Options{
		Recipe: r, Backend: be, Model: ck, Data: data, RunDir: f.out, Resume: f.resume, NoEval: f.noEval,
		EpochEnd: epochEnd, ClassHead: head, Log: logw, Progress: logw, LogEvery: f.logEvery, MaxSteps: f.maxSteps,
	})
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Fprintf(logw, "training %s: %d quantized sites, %d epochs of %d batches of %d\n",
		r.Name, t.Hook().NumSites(), r.Train.Epochs, data.NumBatches(), r.Train.BatchSize)
	res, err := t.Run()
	if err != nil {
		return err
	}
	if res.Stopped {
		fmt.Fprintf(logw, "stopped after step %d; continue with --resume (last checkpoint %s)\n", res.Steps, res.LastCheckpoint)
		return nil
	}
	modelDir := filepath.Join(f.out, "model")
	if err := t.SaveModel(modelDir); err != nil {
		return err
	}
	fmt.Fprintf(logw, "done: %d steps, %d epochs, final loss %.4f; model in %s, last checkpoint %s", res.Steps, res.Epochs, res.Loss, modelDir, res.LastCheckpoint)
	if res.BestCheckpoint != "" {
		fmt.Fprintf(logw, ", best %s", res.BestCheckpoint)
	}
	fmt.Fprintln(logw)
	return nil
}

// openTrainData opens train.data.path: a data set read through a
// data.Loader, or a folder of .npy arrays (see the command's help) held in
// memory; both are shuffled per epoch with train.seed.
func openTrainData(r *recipes.Recipe, ck *clip.Checkpoint, be backends.Backend, f trainFlags) (train.Batches, []float32, error) {
	cfg := ck.Config
	dir := r.Train.Data.Path
	if dir == "" {
		return nil, nil, fmt.Errorf("recipe %s: train.data.path is empty: set it in the recipe or pass --set train.data.path=DIR", r.Source())
	}
	where := func(name string) string { return filepath.Join(dir, name) }
	if _, err := os.Stat(where("pixel_values.npy")); err != nil {
		d, head, err := openTrainLoader(r, ck, be, f)
		if oe := (*train.OpenError)(nil); errors.As(err, &oe) {
			// Neither layout: say what either needs.
			return nil, nil, fmt.Errorf("train.data.path %s: no pixel_values.npy (preprocessed arrays), and not a data set: %w", dir, oe.Err)
		}
		return d, head, err
	}
	pix, err := npy.ReadFile(where("pixel_values.npy"))
	if err != nil {
		return nil, nil, err
	}
	v := cfg.Vision
	if len(pix.Shape) != 4 || pix.Shape[1] != v.NumChannels || pix.Shape[2] != v.ImageSize || pix.Shape[3] != v.ImageSize {
		return nil, nil, fmt.Errorf("%s: shape %v, want (N, %d, %d, %d) for the model", where("pixel_values.npy"), pix.Shape, v.NumChannels, v.ImageSize, v.ImageSize)
	}
	pixels, err := pix.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where("pixel_values.npy"), err)
	}
	n := pix.Shape[0]
	idArr, err := npy.ReadFile(where("input_ids.npy"))
	if err != nil {
		return nil, nil, err
	}
	if len(idArr.Shape) != 2 || idArr.Shape[0] != n {
		return nil, nil, fmt.Errorf("%s: shape %v, want (%d, L)", where("input_ids.npy"), idArr.Shape, n)
	}
	ids, err := idArr.Int32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where("input_ids.npy"), err)
	}
	var labels []int32
	if _, err := os.Stat(where("labels.npy")); err == nil {
		a, err := npy.ReadFile(where("labels.npy"))
		if err != nil {
			return nil, nil, err
		}
		if len(a.Shape) != 1 || a.Shape[0] != n {
			return nil, nil, fmt.Errorf("%s: shape %v, want (%d,)", where("labels.npy"), a.Shape, n)
		}
		if labels, err = a.Int32(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where("labels.npy"), err)
		}
	}
	var head []float32
	if r.Train.Loss.Classification > 0 {
		a, err := npy.ReadFile(where("class_embeddings.npy"))
		if err != nil {
			return nil, nil, fmt.Errorf("train.loss.classification needs the zero-shot head: %w", err)
		}
		if len(a.Shape) != 2 || a.Shape[1] != cfg.ProjectionDim {
			return nil, nil, fmt.Errorf("%s: shape %v, want (C, %d)", where("class_embeddings.npy"), a.Shape, cfg.ProjectionDim)
		}
		if head, err = a.Float32(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where("class_embeddings.npy"), err)
		}
	}
	bs := r.Train.BatchSize
	if bs > n {
		return nil, nil, fmt.Errorf("train.batch_size %d is larger than the %d examples of %s", bs, n, dir)
	}
	d, err := train.NewMemoryData(pixels, ids, labels, n, bs, uint64(r.Train.Seed), true)
	if err != nil {
		return nil, nil, fmt.Errorf("train.data.path %s: %w", dir, err)
	}
	return d, head, nil
}

// openTrainLoader reads train.data.path as a data set through a data.Loader
// (train.OpenLoaderData), with the --vocab tokenizer or the model folder's.
func openTrainLoader(r *recipes.Recipe, ck *clip.Checkpoint, be backends.Backend, f trainFlags) (train.Batches, []float32, error) {
	d, head, err := train.OpenLoaderData(r, ck, be, train.LoaderOptions{Vocab: f.vocab, Workers: f.workers})
	if err != nil {
		return nil, nil, err
	}
	return d, head, nil
}

// openEpochEval opens the recipe's evaluation sets for the end-of-epoch
// evaluation and evaluates the float starting model once, as the baseline
// of every epoch's report.
func openEpochEval(logw io.Writer, r *recipes.Recipe, ck *clip.Checkpoint, be backends.Backend, f trainFlags) (*pipeline.Evaluator, *pipeline.Evaluation, error) {
	opts, err := pipeline.FromRecipe(r.Eval)
	if err != nil {
		return nil, nil, fmt.Errorf("recipe %s: %w", r.Source(), err)
	}
	opts.ID.Name = filepath.Base(filepath.Clean(opts.ID.Path))
	opts.Backend, opts.Log, opts.Workers = be, logw, f.workers
	opts.CacheDir = filepath.Join(f.out, ".cache")
	if opts.Tokenizer, err = clip.LoadTokenizer(f.vocab, r.Model.Source); err != nil {
		return nil, nil, fmt.Errorf("train: end-of-epoch evaluation: tokenizer: %w (or pass --no-eval)", err)
	}
	ev, err := pipeline.New(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("train: end-of-epoch evaluation: %w (or pass --no-eval)", err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		ev.Close()
		return nil, nil, err
	}
	fmt.Fprintln(logw, "evaluating the float starting model (the baseline of the epoch reports)")
	base, err := ev.Evaluate(pipeline.Model{Label: "float", Identity: report.Identity{Name: "float", Path: ck.Path}, Config: ck.Config, Context: ctx})
	if err != nil {
		ev.Close()
		return nil, nil, fmt.Errorf("train: baseline evaluation: %w", err)
	}
	return ev, base, nil
}

// epochEvalHook returns the trainer's end-of-epoch hook: it evaluates the
// student (fake-quantized by hook(), read once the trainer exists), writes
// the report to RUN/epoch-NNN with the float baseline beside it, prints a
// comparison table and returns the metrics for metrics.jsonl and the
// checkpoint.
func epochEvalHook(logw io.Writer, ev *pipeline.Evaluator, r *recipes.Recipe, cfg clip.Config, hook func() layers.Hook, out string, base *pipeline.Evaluation) train.EpochEndFunc {
	var inner func(*context.Context, int) (map[string]float64, error)
	baseMetrics := pipeline.Scalars(base.Column.Result)
	return func(ctx *context.Context, epoch int) (map[string]float64, error) {
		if inner == nil {
			inner = ev.EpochHook(cfg, hook(), pipeline.HookKey(r), r.Name, out, base)
		}
		m, err := inner(ctx, epoch)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "epoch %d evaluation (report in %s):\n%s", epoch, filepath.Join(out, fmt.Sprintf("epoch-%03d", epoch)),
			demo.FormatTable([]demo.Row{{Label: "float (start)", Metrics: baseMetrics}, {Label: r.Name, Metrics: m}}))
		return m, nil
	}
}
