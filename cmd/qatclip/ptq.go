package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/export"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/ptq"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
	"github.com/spf13/cobra"
)

// ptqFlags are the flags of `qatclip ptq`.
type ptqFlags struct {
	recipe       string
	out          string
	model        string
	calib        string
	calibSplit   string
	calibPixels  string
	calibIDs     string
	calibBatches int
	batchSize    int
	sets         []string
	backend      string
	vocab        string
	force        bool
}

// newPtqCmd builds `qatclip ptq`: post-training quantization by calibration.
func newPtqCmd() *cobra.Command {
	var f ptqFlags
	cmd := &cobra.Command{
		Use:   "ptq --recipe FILE --out RUN (--calib PATH | --calib-pixels F.npy [--calib-input-ids F.npy])",
		Short: "Post-training quantization: calibrate a recipe's quantizers, no training",
		Long: `ptq runs the recipe's observers (minmax, EMA, percentile, mse) and the range
initialisation of learnable quantizers (lsq, lsq+, pact) over calibration
batches, with no training, after SmoothQuant when the recipe has a
smoothquant section, and writes a run folder (recipe.yaml, config.json,
checkpoints/step-00000000) that "qatclip export --run" and
"qatclip embed --model" accept like a trained run.

Calibration data is a dataset (--calib: an HF save_to_disk folder, Arrow or
Parquet; images are preprocessed as CLIP does and captions, or "a photo of a
{class}." prompts, tokenized) or arrays (--calib-pixels (N,3,S,S) float32 and
--calib-input-ids (M,L) int .npy). --calib-batches batches of --batch-size
rows are used per tower (default: the recipe's calibration_batches).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPtq(cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.recipe, "recipe", "", "recipe file or shipped recipe name (required)")
	fl.StringVar(&f.out, "out", "", "run folder to write (required)")
	fl.StringVar(&f.model, "model", "", "model: HF folder or hub id in the local cache (default: the recipe's model.source)")
	fl.StringVar(&f.calib, "calib", "", "calibration dataset: HF save_to_disk folder, Arrow or Parquet")
	fl.StringVar(&f.calibSplit, "calib-split", "", "split of a DatasetDict --calib folder (default train)")
	fl.StringVar(&f.calibPixels, "calib-pixels", "", "calibration images: normalised (N,3,S,S) float32 .npy")
	fl.StringVar(&f.calibIDs, "calib-input-ids", "", "calibration texts: (M,L) int32/int64 token ids .npy")
	fl.IntVar(&f.calibBatches, "calib-batches", 0, "calibration batches per tower (default: the recipe's quantization.schedule.calibration_batches)")
	fl.IntVar(&f.batchSize, "batch-size", 32, "rows per calibration batch")
	fl.StringArrayVar(&f.sets, "set", nil, "override a recipe key, e.g. --set smoothquant.alpha=0.5 (repeatable)")
	fl.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	fl.StringVar(&f.vocab, "vocab", "", "tokenizer for --calib captions (default $QATCLIP_VOCAB or the model folder's)")
	fl.BoolVar(&f.force, "force", false, "replace an existing --out folder")
	return cmd
}

// runPtq checks the flags, calibrates and writes the run folder.
func runPtq(logw io.Writer, f ptqFlags) error {
	switch {
	case f.recipe == "":
		return errors.New("ptq: --recipe is required")
	case f.out == "":
		return errors.New("ptq: --out is required")
	case f.calib == "" && f.calibPixels == "" && f.calibIDs == "":
		return errors.New("ptq: no calibration data: give --calib PATH or --calib-pixels/--calib-input-ids")
	case f.calib != "" && (f.calibPixels != "" || f.calibIDs != ""):
		return errors.New("ptq: give --calib or --calib-pixels/--calib-input-ids, not both")
	case f.batchSize < 1:
		return fmt.Errorf("ptq: --batch-size must be positive, got %d", f.batchSize)
	case f.calibBatches < 0:
		return fmt.Errorf("ptq: --calib-batches must be positive, got %d", f.calibBatches)
	}
	if _, err := os.Stat(f.out); err == nil && !f.force {
		return fmt.Errorf("ptq: output folder %s already exists (pass --force to replace it)", f.out)
	}
	r, err := recipes.Load(f.recipe, f.sets...)
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	source := r.Model.Source
	if f.model != "" {
		source = f.model
	}
	ck, err := clip.Load(source)
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	cfg := ck.Config
	// Record where the model came from, so export finds its tokenizer.
	if dir, err := clip.ResolveSource(source); err == nil {
		if abs, err := filepath.Abs(dir); err == nil {
			r.Model.Source = abs
		}
	}
	batches := f.calibBatches
	if batches == 0 {
		batches = r.Quantization.Schedule.CalibrationBatches
	}
	hook, plan, err := clip.QuantHook(r, cfg)
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	if plan.Quantized() == 0 {
		return fmt.Errorf("ptq: recipe %s quantizes no layer of the model: nothing to calibrate", r.Source())
	}
	var d ptq.Data
	if f.calib != "" {
		d, err = readCalibDataset(logw, f.calib, f.calibSplit, f.vocab, source, cfg, batches*f.batchSize, quantizesText(plan))
	} else {
		d, err = readCalibArrays(f.calibPixels, f.calibIDs, cfg)
	}
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	if quantizesVision(plan) && d.N == 0 {
		return fmt.Errorf("ptq: recipe %s quantizes the vision tower but there are no calibration images (give --calib-pixels or --calib)", r.Source())
	}
	if quantizesText(plan) && d.M == 0 {
		return fmt.Errorf("ptq: recipe %s quantizes the text tower but there are no calibration texts (give --calib-input-ids, or a --calib dataset with captions or class names)", r.Source())
	}

	b, err := backend.Open(f.backend, logw)
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	defer b.Finalize()
	fmt.Fprintf(logw, "model: %s; recipe: %s (%s): %d of %d Linear layers quantized, %d quantization sites\n",
		ck.Path, r.Name, r.Source(), plan.Quantized(), len(plan.Layers), hook.NumSites())
	fmt.Fprintf(logw, "calibration: %d images, %d texts; up to %d batches of %d per tower\n", d.N, d.M, batches, f.batchSize)

	root := context.New()
	mctx := root.In(export.ModelScope)
	if err := ck.SetVariables(mctx); err != nil {
		return err
	}
	float, err := clip.NewEmbedder(b, mctx, cfg, nil)
	if err != nil {
		return err
	}
	sample := sampleOf(d, f.batchSize)
	refImg, refTxt, err := embedSample(float, sample, f.batchSize)
	if err != nil {
		return fmt.Errorf("ptq: float model: %w", err)
	}
	if r.SmoothQuant != nil {
		s, err := ptq.SmoothQuant(b, mctx, cfg, r.SmoothQuant.Alpha, d, f.batchSize, batches)
		if err != nil {
			return fmt.Errorf("ptq: %w", err)
		}
		fmt.Fprintf(logw, "smoothquant: alpha %g, smoothed %d LayerNorm/Linear groups\n", r.SmoothQuant.Alpha, len(s))
	}
	e, err := clip.NewEmbedder(b, mctx, cfg, hook)
	if err != nil {
		return err
	}
	if err := ptq.Calibrate(mctx, e, d, f.batchSize, batches); err != nil {
		return err
	}
	img, txt, err := embedSample(e, sample, f.batchSize)
	if err != nil {
		return fmt.Errorf("ptq: quantized model: %w", err)
	}
	if img != nil {
		fmt.Fprintf(logw, "fidelity: image embeddings mean cosine to float %.5f (%d calibration images)\n", meanCosine(img, refImg, cfg.ProjectionDim), sample.N)
	}
	if txt != nil {
		fmt.Fprintf(logw, "fidelity: text embeddings mean cosine to float %.5f (%d calibration texts)\n", meanCosine(txt, refTxt, cfg.ProjectionDim), sample.M)
	}
	if f.force {
		if err := os.RemoveAll(f.out); err != nil {
			return fmt.Errorf("ptq: %w", err)
		}
	}
	ckpt, err := export.WriteRun(f.out, r, cfg, root, train.Manifest{Step: 0, Epoch: 0, EpochEnd: true})
	if err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	fmt.Fprintf(logw, "wrote run %s (checkpoint %s)\n", f.out, ckpt)
	return nil
}

// sampleOf returns the first batch of each tower of d.
func sampleOf(d ptq.Data, batch int) ptq.Data {
	s := d
	if s.N > batch {
		s.Pixels, s.N = d.Pixels[:batch*len(d.Pixels)/d.N], batch
	}
	if s.M > batch {
		s.IDs, s.M = d.IDs[:batch*d.L], batch
	}
	return s
}

// embedSample embeds the images and texts of d.
func embedSample(e *clip.Embedder, d ptq.Data, batch int) (img, txt []float32, err error) {
	if d.N > 0 {
		if img, err = e.ImageFeatures(d.Pixels, d.N, batch); err != nil {
			return nil, nil, err
		}
	}
	if d.M > 0 {
		if txt, err = e.TextFeatures(d.IDs, d.M, d.L, batch); err != nil {
			return nil, nil, err
		}
	}
	return img, txt, nil
}

// meanCosine returns the mean cosine similarity of matching rows of a and b.
func meanCosine(a, b []float32, d int) float64 {
	n := len(a) / d
	if n == 0 {
		return math.NaN()
	}
	sum := 0.0
	for i := range n {
		var ab, aa, bb float64
		for j := range d {
			x, y := float64(a[i*d+j]), float64(b[i*d+j])
			ab, aa, bb = ab+x*y, aa+x*x, bb+y*y
		}
		sum += ab / math.Sqrt(aa*bb+1e-30)
	}
	return sum / float64(n)
}

// readCalibArrays reads --calib-pixels and --calib-input-ids.
func readCalibArrays(pixelsPath, idsPath string, cfg clip.Config) (ptq.Data, error) {
	var d ptq.Data
	if pixelsPath != "" {
		pix, shape, err := readPixels(pixelsPath, cfg)
		if err != nil {
			return d, err
		}
		d.Pixels, d.N = pix, shape[0]
	}
	if idsPath != "" {
		ids, shape, err := readInputIDs(idsPath, cfg)
		if err != nil {
			return d, err
		}
		d.IDs, d.M, d.L = ids, shape[0], shape[1]
	}
	return d, nil
}

// quantizesText reports whether the plan quantizes anything in the text
// tower (which then needs calibration texts).
func quantizesText(plan *recipes.Plan) bool { return quantizesTower(plan, "text_") }

// quantizesVision reports whether the plan quantizes anything in the
// vision tower (which then needs calibration images).
func quantizesVision(plan *recipes.Plan) bool { return quantizesTower(plan, "vision_", "visual_") }

// quantizesTower reports whether the plan quantizes a module whose name
// starts with one of prefixes.
func quantizesTower(plan *recipes.Plan, prefixes ...string) bool {
	match := func(m string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(m, p) {
				return true
			}
		}
		return false
	}
	for _, l := range plan.Layers {
		if match(l.Module) && (l.Weights != nil || l.Activations != nil) {
			return true
		}
	}
	for _, a := range plan.Attention {
		if match(a.Module) && a.Activations != nil {
			return true
		}
	}
	return false
}

// readCalibDataset reads up to rows examples of a dataset: images
// preprocessed for the model and, when withText, captions (or class-name
// prompts) tokenized.
func readCalibDataset(logw io.Writer, path, split, vocab, model string, cfg clip.Config, rows int, withText bool) (ptq.Data, error) {
	var d ptq.Data
	src, err := data.Open(path, data.SourceOptions{Split: split})
	if err != nil {
		return d, fmt.Errorf("--calib: %w", err)
	}
	defer src.Close()
	var examples []data.Example
	for i, sh := range src.Shards() {
		if len(examples) >= rows {
			break
		}
		ex, err := src.ReadRange(i, 0, min(sh.Rows, rows-len(examples)))
		if err != nil {
			return d, fmt.Errorf("--calib: %w", err)
		}
		examples = append(examples, ex...)
	}
	if len(examples) == 0 {
		return d, fmt.Errorf("--calib %s: no rows", path)
	}
	pcfg := data.DefaultPreprocessConfig()
	pcfg.Size = cfg.Vision.ImageSize
	pre, err := data.NewPreprocessor(pcfg)
	if err != nil {
		return d, fmt.Errorf("--calib: %w", err)
	}
	per := pcfg.OutputLen()
	d.Pixels = make([]float32, len(examples)*per)
	var texts []string
	names := src.ClassNames()
	for i := range examples {
		ex := &examples[i]
		img, err := ex.ImageData()
		if err != nil {
			return d, fmt.Errorf("--calib %s: row %s: %w", path, ex.ID, err)
		}
		if err := pre.DecodePreprocessInto(d.Pixels[i*per:(i+1)*per], img); err != nil {
			return d, fmt.Errorf("--calib %s: row %s: %w", path, ex.ID, err)
		}
		switch {
		case ex.Caption != "":
			texts = append(texts, ex.Caption)
		case ex.Label >= 0 && ex.Label < len(names):
			texts = append(texts, "a photo of a "+names[ex.Label]+".")
		}
	}
	d.N = len(examples)
	if !withText {
		return d, nil
	}
	if len(texts) == 0 {
		fmt.Fprintf(logw, "calibration: %s has no captions or class names: the text tower sees no calibration texts\n", path)
		return d, nil
	}
	tok, err := clip.LoadTokenizer(vocab, model)
	if err != nil {
		return d, fmt.Errorf("--calib: the dataset has texts but no tokenizer was found: %w", err)
	}
	l := cfg.Text.MaxPositionEmbeddings
	ids, err := tok.Tokenize(texts, tokenizer.Options{ContextLength: l, Truncate: true})
	if err != nil {
		return d, fmt.Errorf("--calib: %w", err)
	}
	d.IDs = make([]int32, 0, len(ids)*l)
	for i, row := range ids {
		for _, id := range row {
			if int(id) >= cfg.Text.VocabSize {
				return d, fmt.Errorf("--calib: text %d tokenizes to id %d, outside the model's vocabulary of %d (wrong --vocab?)", i, id, cfg.Text.VocabSize)
			}
		}
		d.IDs = append(d.IDs, row...)
	}
	d.M, d.L = len(ids), l
	return d, nil
}
