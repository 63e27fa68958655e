package clip

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/quantizers"
)

// Embedder computes CLIP image and text features in batches, with one
// compiled graph per input shape (GoMLX caches them).
type Embedder struct {
	cfg     Config
	ctx     *context.Context
	imgExec *context.Exec
	txtExec *context.Exec
	logExec *context.Exec
	// calImg and calTxt run the towers with quantizers calibrating
	// (observers observe, learnable quantizers initialise from the data).
	calImg *context.Exec
	calTxt *context.Exec
}

// NewEmbedder returns an Embedder for the model whose variables are in ctx
// (e.g. set by [Checkpoint.SetVariables]), running on backend. hook may be
// nil (float model).
func NewEmbedder(backend backends.Backend, ctx *context.Context, cfg Config, hook layers.Hook) (*Embedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx = ctx.Checked(false)
	e := &Embedder{cfg: cfg, ctx: ctx}
	for _, calibrate := range []bool{false, true} {
		img, err := context.NewExec(backend, ctx, func(ctx *context.Context, pixels *graph.Node) *graph.Node {
			quantizers.SetCalibrating(ctx, pixels.Graph(), calibrate)
			return ImageFeatures(ctx, cfg, hook, pixels)
		})
		if err != nil {
			return nil, fmt.Errorf("embed: build image graph: %w", err)
		}
		txt, err := context.NewExec(backend, ctx, func(ctx *context.Context, ids *graph.Node) *graph.Node {
			quantizers.SetCalibrating(ctx, ids.Graph(), calibrate)
			return TextFeatures(ctx, cfg, hook, ids)
		})
		if err != nil {
			return nil, fmt.Errorf("embed: build text graph: %w", err)
		}
		if calibrate {
			e.calImg, e.calTxt = img, txt
		} else {
			e.imgExec, e.txtExec = img, txt
		}
	}
	var err error
	e.logExec, err = context.NewExec(backend, ctx, func(ctx *context.Context, img, txt *graph.Node) *graph.Node {
		return Logits(LogitScale(ctx, cfg, img.Graph()), img, txt)
	})
	if err != nil {
		return nil, fmt.Errorf("embed: build logits graph: %w", err)
	}
	return e, nil
}

// batches calls fn for each batch of n rows: start row, rows in the batch and
// the padded batch size (min(batch, n), so a short last batch reuses the
// compiled graph).
func batches(n, batch int, fn func(start, rows, padded int) error) error {
	if batch <= 0 {
		return fmt.Errorf("batch size must be positive, got %d", batch)
	}
	padded := min(batch, n)
	for start := 0; start < n; start += padded {
		if err := fn(start, min(padded, n-start), padded); err != nil {
			return err
		}
	}
	return nil
}

// Calibrate runs the images (normalised pixels [n, C, S, S]) and texts (ids
// [m, l]) through both towers with the hook's quantizers calibrating:
// observers record activation ranges and learnable quantizers initialise
// their scales from these inputs. Either input may be nil. Call it before
// ImageFeatures/TextFeatures/Embed to get the fake-quantized model's
// outputs; it does nothing useful for a float model.
func (e *Embedder) Calibrate(pixels []float32, n int, ids []int32, m, l, batch int) error {
	if pixels != nil {
		if _, err := e.imageFeatures(e.calImg, pixels, n, batch); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}
	if ids != nil {
		if _, err := e.textFeatures(e.calTxt, ids, m, l, batch); err != nil {
			return fmt.Errorf("calibrate: %w", err)
		}
	}
	return nil
}

// ImageFeatures returns get_image_features [n, projection_dim] (row-major)
// for n normalised images in pixels, row-major [n, C, S, S] with S the
// config's image_size, computed batch images at a time.
func (e *Embedder) ImageFeatures(pixels []float32, n, batch int) ([]float32, error) {
	return e.imageFeatures(e.imgExec, pixels, n, batch)
}

func (e *Embedder) imageFeatures(exec *context.Exec, pixels []float32, n, batch int) ([]float32, error) {
	v := e.cfg.Vision
	per := v.NumChannels * v.ImageSize * v.ImageSize
	if len(pixels) != n*per {
		return nil, fmt.Errorf("pixels: %d values for %d images of [%d, %d, %d]", len(pixels), n, v.NumChannels, v.ImageSize, v.ImageSize)
	}
	d := e.cfg.ProjectionDim
	out := make([]float32, 0, n*d)
	err := batches(n, batch, func(start, rows, padded int) error {
		buf := make([]float32, padded*per)
		copy(buf, pixels[start*per:(start+rows)*per])
		res, err := e.run(exec, tensors.FromFlatDataAndDimensions(buf, padded, v.NumChannels, v.ImageSize, v.ImageSize))
		if err != nil {
			return fmt.Errorf("image features: %w", err)
		}
		out = append(out, res[:rows*d]...)
		return nil
	})
	return out, err
}

// TextFeatures returns get_text_features [m, projection_dim] for m rows of
// l token ids (row-major [m, l]), computed batch rows at a time. Ids must lie
// in [0, vocab_size) and l must not exceed max_position_embeddings.
func (e *Embedder) TextFeatures(ids []int32, m, l, batch int) ([]float32, error) {
	return e.textFeatures(e.txtExec, ids, m, l, batch)
}

func (e *Embedder) textFeatures(exec *context.Exec, ids []int32, m, l, batch int) ([]float32, error) {
	t := e.cfg.Text
	if len(ids) != m*l {
		return nil, fmt.Errorf("input ids: %d values for [%d, %d]", len(ids), m, l)
	}
	if l < 1 || l > t.MaxPositionEmbeddings {
		return nil, fmt.Errorf("input ids: length %d, want 1..%d (max_position_embeddings)", l, t.MaxPositionEmbeddings)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= t.VocabSize {
			return nil, fmt.Errorf("input ids: row %d position %d holds id %d, outside the vocabulary [0, %d)", i/l, i%l, id, t.VocabSize)
		}
	}
	d := e.cfg.ProjectionDim
	out := make([]float32, 0, m*d)
	err := batches(m, batch, func(start, rows, padded int) error {
		buf := make([]int32, padded*l)
		copy(buf, ids[start*l:(start+rows)*l])
		res, err := e.run(exec, tensors.FromFlatDataAndDimensions(buf, padded, l))
		if err != nil {
			return fmt.Errorf("text features: %w", err)
		}
		out = append(out, res[:rows*d]...)
		return nil
	})
	return out, err
}

// LogitsPerImage returns exp(logit_scale) * normalize(img) @
// normalize(txt)^T, [n, m], for image features [n, D] and text features
// [m, D].
func (e *Embedder) LogitsPerImage(img []float32, n int, txt []float32, m int) ([]float32, error) {
	d := e.cfg.ProjectionDim
	if len(img) != n*d || len(txt) != m*d {
		return nil, fmt.Errorf("logits: features have %d and %d values, want %d x %d and %d x %d", len(img), len(txt), n, d, m, d)
	}
	res, err := e.run(e.logExec,
		tensors.FromFlatDataAndDimensions(append([]float32(nil), img...), n, d),
		tensors.FromFlatDataAndDimensions(append([]float32(nil), txt...), m, d))
	if err != nil {
		return nil, fmt.Errorf("logits: %w", err)
	}
	return res, nil
}

// run executes exec and returns its single float32 output.
func (e *Embedder) run(exec *context.Exec, args ...any) ([]float32, error) {
	outs, err := exec.Exec(args...)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, o := range outs {
			o.FinalizeAll()
		}
	}()
	if len(outs) != 1 {
		return nil, fmt.Errorf("graph returned %d outputs, want 1", len(outs))
	}
	return tensors.MustCopyFlatData[float32](outs[0]), nil
}

// Features are the outputs of [Embedder.Embed]: row-major float32 arrays,
// each nil when not computed.
type Features struct {
	// Image is get_image_features, [N, projection_dim].
	Image []float32
	// Text is get_text_features, [M, projection_dim].
	Text []float32
	// LogitsPerImage is [N, M], present when both inputs were given.
	LogitsPerImage []float32
	// N and M count the images and texts.
	N, M int
}

// Embed computes the features of images (normalised pixels [n, C, S, S],
// may be nil) and texts (token ids [m, l], may be nil), batch rows at a
// time, and logits_per_image when both are given. Shapes are checked
// against the config; errors say what was expected.
func (e *Embedder) Embed(pixels []float32, pixelShape []int, ids []int32, idShape []int, batch int) (Features, error) {
	var f Features
	var err error
	v := e.cfg.Vision
	if pixels != nil {
		want := []int{-1, v.NumChannels, v.ImageSize, v.ImageSize}
		if len(pixelShape) != 4 || pixelShape[1] != want[1] || pixelShape[2] != want[2] || pixelShape[3] != want[3] || pixelShape[0] < 1 {
			return f, fmt.Errorf("pixels have shape %v, want (N, %d, %d, %d) for this model", pixelShape, want[1], want[2], want[3])
		}
		f.N = pixelShape[0]
		if f.Image, err = e.ImageFeatures(pixels, f.N, batch); err != nil {
			return f, err
		}
	}
	if ids != nil {
		if len(idShape) != 2 || idShape[0] < 1 || idShape[1] < 1 {
			return f, fmt.Errorf("input ids have shape %v, want (M, L) with L <= %d", idShape, e.cfg.Text.MaxPositionEmbeddings)
		}
		f.M = idShape[0]
		if f.Text, err = e.TextFeatures(ids, f.M, idShape[1], batch); err != nil {
			return f, err
		}
	}
	if f.Image != nil && f.Text != nil {
		if f.LogitsPerImage, err = e.LogitsPerImage(f.Image, f.N, f.Text, f.M); err != nil {
			return f, err
		}
	}
	return f, nil
}
