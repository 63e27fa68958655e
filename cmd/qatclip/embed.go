package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/export"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/spf13/cobra"
)

// embedFlags are the flags of `qatclip embed`.
type embedFlags struct {
	model     string
	pixels    string
	inputIDs  string
	images    []string
	texts     []string
	vocab     string
	out       string
	backend   string
	batchSize int
	recipe    string
	sets      []string
}

// newEmbedCmd builds `qatclip embed`: CLIP image and text features of a
// model for pixel/id arrays, image files or texts.
func newEmbedCmd() *cobra.Command {
	var f embedFlags
	cmd := &cobra.Command{
		Use:   "embed --model DIR|HUB_ID [--pixels F.npy | --images FILE...] [--input-ids F.npy | --texts TEXT...] --out DIR",
		Short: "Compute CLIP image and text features (and logits) of a model",
		Long: `embed runs a CLIP model (an HF folder, a safetensors file, or an HF hub id
in the local HF cache) and writes to --out:
  image_features.npy   (N, D) float32, HF get_image_features
  text_features.npy    (M, D) float32, HF get_text_features
  logits_per_image.npy (N, M) = exp(logit_scale) * norm(img) @ norm(txt)^T, when both are given
Images come from --pixels (an already normalised (N,3,H,W) float32 .npy) or
--images (files, decoded and preprocessed as CLIP does); texts from
--input-ids (an (M,L) int32/int64 .npy) or --texts (tokenized with --vocab,
$QATCLIP_VOCAB or the model folder's tokenizer). --images and --texts may be
repeated. With --recipe the model runs fake-quantized as the recipe says:
its quantizers first calibrate on the given inputs (observer ranges, LSQ
scale initialisation), then the inputs are embedded again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEmbed(cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "model: HF folder, .safetensors file, or HF hub id in the local cache (required)")
	fl.StringVar(&f.pixels, "pixels", "", "normalised pixel values, (N,3,H,W) float32 .npy")
	fl.StringVar(&f.inputIDs, "input-ids", "", "token ids, (M,L) int32 or int64 .npy")
	fl.StringArrayVar(&f.images, "images", nil, "image file to embed (repeatable)")
	fl.StringArrayVar(&f.texts, "texts", nil, "text to embed (repeatable)")
	fl.StringVar(&f.vocab, "vocab", "", "tokenizer vocabulary for --texts (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or an HF folder)")
	fl.StringVar(&f.out, "out", "", "output folder (required)")
	fl.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	fl.IntVar(&f.batchSize, "batch-size", 64, "rows per forward pass")
	fl.StringVar(&f.recipe, "recipe", "", "run the model fake-quantized by this recipe (a file, or a shipped recipe name such as w8a8-lsq.yaml); activation ranges are calibrated on the given inputs first")
	fl.StringArrayVar(&f.sets, "set", nil, "override a recipe key, e.g. --set quantization.default.weights.bits=4 (repeatable; needs --recipe)")
	return cmd
}

// runEmbed checks the flags, loads the model and inputs, embeds and writes the outputs.
func runEmbed(logw io.Writer, f embedFlags) error {
	switch {
	case f.model == "":
		return errors.New("embed: --model is required")
	case f.out == "":
		return errors.New("embed: --out is required")
	case f.pixels != "" && len(f.images) > 0:
		return errors.New("embed: give --pixels or --images, not both")
	case f.inputIDs != "" && len(f.texts) > 0:
		return errors.New("embed: give --input-ids or --texts, not both")
	case f.pixels == "" && len(f.images) == 0 && f.inputIDs == "" && len(f.texts) == 0:
		return errors.New("embed: nothing to embed: give --pixels, --images, --input-ids or --texts")
	case len(f.sets) > 0 && f.recipe == "":
		return errors.New("embed: --set needs --recipe")
	case f.batchSize < 1:
		return fmt.Errorf("embed: --batch-size must be positive, got %d", f.batchSize)
	}
	// A qatclip export or run folder carries its own quantizers.
	qm, err := export.Open(f.model)
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	if qm != nil && f.recipe != "" {
		return fmt.Errorf("embed: --recipe cannot be used with %s, which is already quantized (%s)", f.model, qm.Kind)
	}
	var ck *clip.Checkpoint
	var cfg clip.Config
	if qm != nil {
		cfg = qm.Config
	} else {
		if ck, err = clip.Load(f.model); err != nil {
			return err
		}
		cfg = ck.Config
	}

	// Read every input before starting the backend, so bad input fails fast.
	var pixels []float32
	var pixelShape []int
	switch {
	case f.pixels != "":
		if pixels, pixelShape, err = readPixels(f.pixels, cfg); err != nil {
			return err
		}
	case len(f.images) > 0:
		if pixels, pixelShape, err = preprocessImages(f.images, cfg.Vision.ImageSize); err != nil {
			return err
		}
	}
	var ids []int32
	var idShape []int
	switch {
	case f.inputIDs != "":
		if ids, idShape, err = readInputIDs(f.inputIDs, cfg); err != nil {
			return err
		}
	case len(f.texts) > 0:
		if ids, idShape, err = tokenizeTexts(f.texts, f.vocab, f.model, cfg); err != nil {
			return err
		}
	}

	b, err := backend.Open(f.backend, logw)
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	defer b.Finalize()
	var ctx *context.Context
	var hook layers.Hook
	if qm != nil {
		fmt.Fprintf(logw, "model: %s (qatclip %s, recipe %s, %d quantized sites; vision %d layers x %d, text %d layers x %d, projection %d)\n",
			qm.Path, qm.Kind, qm.Recipe, qm.Sites, cfg.Vision.NumHiddenLayers, cfg.Vision.HiddenSize,
			cfg.Text.NumHiddenLayers, cfg.Text.HiddenSize, cfg.ProjectionDim)
		ctx, hook = qm.Ctx, qm.Hook
	} else {
		fmt.Fprintf(logw, "model: %s (%s layout; vision %d layers x %d, text %d layers x %d, projection %d)\n",
			ck.Path, ck.Layout, cfg.Vision.NumHiddenLayers, cfg.Vision.HiddenSize,
			cfg.Text.NumHiddenLayers, cfg.Text.HiddenSize, cfg.ProjectionDim)
		if n := len(ck.Unused); n > 0 {
			fmt.Fprintf(logw, "model: ignored %d tensor(s) that are not CLIP parameters (first: %s)\n", n, ck.Unused[0])
		}
		ctx = context.New()
		if err := ck.SetVariables(ctx); err != nil {
			return err
		}
	}
	if f.recipe != "" {
		r, err := recipes.Load(f.recipe, f.sets...)
		if err != nil {
			return fmt.Errorf("embed: %w", err)
		}
		qh, plan, err := clip.QuantHook(r, cfg)
		if err != nil {
			return fmt.Errorf("embed: %w", err)
		}
		hook = qh
		fmt.Fprintf(logw, "recipe: %s (%s): %d of %d Linear layers quantized, %d quantization sites\n",
			r.Name, r.Source(), plan.Quantized(), len(plan.Layers), qh.NumSites())
	}
	emb, err := clip.NewEmbedder(b, ctx, cfg, hook)
	if err != nil {
		return err
	}
	if hook != nil && qm == nil {
		var m, l int
		if idShape != nil {
			m, l = idShape[0], idShape[1]
		}
		var n int
		if pixelShape != nil {
			n = pixelShape[0]
		}
		if err := emb.Calibrate(pixels, n, ids, m, l, f.batchSize); err != nil {
			return fmt.Errorf("embed: %w", err)
		}
	}
	feats, err := emb.Embed(pixels, pixelShape, ids, idShape, f.batchSize)
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}

	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	d := cfg.ProjectionDim
	outputs := []struct {
		name  string
		data  []float32
		shape []int
	}{
		{"image_features.npy", feats.Image, []int{feats.N, d}},
		{"text_features.npy", feats.Text, []int{feats.M, d}},
		{"logits_per_image.npy", feats.LogitsPerImage, []int{feats.N, feats.M}},
	}
	for _, o := range outputs {
		if o.data == nil {
			continue
		}
		path := filepath.Join(f.out, o.name)
		if err := npy.WriteFile(path, npy.Array{Shape: o.shape, Data: o.data}); err != nil {
			return fmt.Errorf("embed: %w", err)
		}
		fmt.Fprintf(logw, "wrote %s %v\n", path, o.shape)
	}
	return nil
}

// readPixels reads a (N, C, S, S) float32 .npy and checks it against the model.
func readPixels(path string, cfg clip.Config) ([]float32, []int, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--pixels: %w", err)
	}
	v := cfg.Vision
	s := a.Shape
	if len(s) != 4 || s[0] < 1 || s[1] != v.NumChannels || s[2] != v.ImageSize || s[3] != v.ImageSize {
		return nil, nil, fmt.Errorf("--pixels %s: shape %v, want (N, %d, %d, %d) for this model", path, s, v.NumChannels, v.ImageSize, v.ImageSize)
	}
	data, err := a.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("--pixels %s: %w", path, err)
	}
	return data, s, nil
}

// readInputIDs reads a (M, L) integer .npy and checks it against the model.
func readInputIDs(path string, cfg clip.Config) ([]int32, []int, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--input-ids: %w", err)
	}
	t := cfg.Text
	s := a.Shape
	if len(s) != 2 || s[0] < 1 || s[1] < 1 || s[1] > t.MaxPositionEmbeddings {
		return nil, nil, fmt.Errorf("--input-ids %s: shape %v, want (M, L) with 1 <= L <= %d for this model", path, s, t.MaxPositionEmbeddings)
	}
	ids, err := a.Int32()
	if err != nil {
		return nil, nil, fmt.Errorf("--input-ids %s: %w", path, err)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= t.VocabSize {
			return nil, nil, fmt.Errorf("--input-ids %s: row %d position %d holds id %d, outside the vocabulary [0, %d)", path, i/s[1], i%s[1], id, t.VocabSize)
		}
	}
	return ids, s, nil
}

// preprocessImages decodes and preprocesses image files to (N, 3, size, size).
func preprocessImages(paths []string, size int) ([]float32, []int, error) {
	pcfg := data.DefaultPreprocessConfig()
	pcfg.Size = size
	pre, err := data.NewPreprocessor(pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--images: %w", err)
	}
	per := pcfg.OutputLen()
	pixels := make([]float32, len(paths)*per)
	for i, p := range paths {
		if err := pre.PreprocessFileInto(pixels[i*per:(i+1)*per], p); err != nil {
			return nil, nil, fmt.Errorf("--images: %w", err)
		}
	}
	return pixels, []int{len(paths), 3, size, size}, nil
}

// tokenizeTexts tokenizes texts to (M, max_position_embeddings) ids. The
// vocabulary is --vocab, else $QATCLIP_VOCAB, else the model folder's own
// tokenizer files.
func tokenizeTexts(texts []string, vocab, model string, cfg clip.Config) ([]int32, []int, error) {
	tok, err := clip.LoadTokenizer(vocab, model)
	if err != nil {
		return nil, nil, fmt.Errorf("--texts: %w", err)
	}
	l := cfg.Text.MaxPositionEmbeddings
	rows, err := tok.Tokenize(texts, tokenizer.Options{ContextLength: l})
	if err != nil {
		return nil, nil, fmt.Errorf("--texts: %w", err)
	}
	ids := make([]int32, 0, len(rows)*l)
	for _, r := range rows {
		ids = append(ids, r...)
	}
	for i, id := range ids {
		if int(id) >= cfg.Text.VocabSize {
			return nil, nil, fmt.Errorf("--texts: text %d tokenizes to id %d, outside the model's vocabulary of %d (wrong --vocab?)", i/l, id, cfg.Text.VocabSize)
		}
	}
	return ids, []int{len(rows), l}, nil
}
