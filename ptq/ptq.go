// Package ptq is post-training quantization of CLIP models: it runs a
// recipe's observers (and the range initialisation of learnable
// quantizers) over calibration batches, with no training, and implements
// SmoothQuant (Xiao et al. 2023), which migrates activation outliers into
// the weights before quantizing.
package ptq

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
)

// Data is a calibration set: normalised images and token ids. Either part
// may be empty.
type Data struct {
	// Pixels holds N images, row-major [N, C, S, S].
	Pixels []float32
	N      int
	// IDs holds M rows of L token ids, row-major [M, L].
	IDs  []int32
	M, L int
}

// take returns how many of n rows calibration uses and the batch size:
// the rows of at most batches batches of min(batch, n) rows.
func take(n, batch, batches int) (rows, size int) {
	if n <= 0 {
		return 0, 0
	}
	size = min(batch, n)
	return min(n, batches*size), size
}

// chunks calls fn with the full batches of rows (as one call) and then
// with the remainder as a batch of its own, so that no batch is padded:
// padding rows would enter the observed ranges.
func chunks(rows, size int, fn func(start, rows, batch int) error) error {
	full := rows - rows%size
	if full > 0 {
		if err := fn(0, full, size); err != nil {
			return err
		}
	}
	if rest := rows - full; rest > 0 {
		return fn(full, rest, rest)
	}
	return nil
}

// Calibrate runs the embedder's quantizers over the calibration data in
// batches of batch rows, at most batches batches per tower (images and
// texts), with observers observing and learnable quantizers initialising
// from the data, then freezes the observers. The embedder must have been
// built with the recipe's hook (clip.NewEmbedder) on ctx.
func Calibrate(ctx *context.Context, e *clip.Embedder, d Data, batch, batches int) error {
	if batch < 1 || batches < 1 {
		return fmt.Errorf("ptq: batch size (%d) and calibration batches (%d) must be positive", batch, batches)
	}
	if d.N == 0 && d.M == 0 {
		return fmt.Errorf("ptq: no calibration data")
	}
	if n, size := take(d.N, batch, batches); n > 0 {
		per := len(d.Pixels) / d.N
		err := chunks(n, size, func(start, rows, b int) error {
			return e.Calibrate(d.Pixels[start*per:(start+rows)*per], rows, nil, 0, 0, b)
		})
		if err != nil {
			return fmt.Errorf("ptq: %w", err)
		}
	}
	if m, size := take(d.M, batch, batches); m > 0 {
		err := chunks(m, size, func(start, rows, b int) error {
			return e.Calibrate(nil, 0, d.IDs[start*d.L:(start+rows)*d.L], rows, d.L, b)
		})
		if err != nil {
			return fmt.Errorf("ptq: %w", err)
		}
	}
	if err := quantizers.SetFrozen(ctx, quantizers.FreezeObservers, true); err != nil {
		return fmt.Errorf("ptq: %w", err)
	}
	return checkCalibrated(ctx)
}

// checkCalibrated returns an error naming the first quantizer with stored
// state (a scale or an alpha) that calibration did not initialise, such as
// the text tower's when the data has no texts.
func checkCalibrated(ctx *context.Context) error {
	state := map[string]bool{}
	for _, v := range quantizers.Variables(ctx) {
		if v.Name() == quantizers.VarScale || v.Name() == quantizers.VarAlpha {
			state[v.Scope()] = true
		}
	}
	for _, v := range quantizers.Variables(ctx) {
		if v.Name() != quantizers.VarInitialized || !state[v.Scope()] {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("ptq: %s: %w", v.Scope(), err)
		}
		if tensors.ToScalar[float32](t) == 0 {
			return fmt.Errorf("ptq: quantizer %s saw no calibration data (images calibrate the vision tower, texts the text tower)", v.Scope())
		}
	}
	return nil
}

// run builds the image and text graphs of the model in ctx with hook and
// runs them over up to batches batches of d, discarding the outputs
// (the hook records what it needs in variables).
func run(b backends.Backend, ctx *context.Context, cfg clip.Config, hook layers.Hook, d Data, batch, batches int) error {
	ctx = ctx.Checked(false)
	if n, size := take(d.N, batch, batches); n > 0 {
		exec, err := context.NewExec(b, ctx, func(ctx *context.Context, pixels *graph.Node) *graph.Node {
			return clip.ImageFeatures(ctx, cfg, hook, pixels)
		})
		if err != nil {
			return err
		}
		v := cfg.Vision
		per := v.NumChannels * v.ImageSize * v.ImageSize
		if len(d.Pixels) != d.N*per {
			return fmt.Errorf("pixels: %d values for %d images of [%d, %d, %d]", len(d.Pixels), d.N, v.NumChannels, v.ImageSize, v.ImageSize)
		}
		for start := 0; start < n; start += size {
			rows := min(size, n-start)
			buf := append([]float32(nil), d.Pixels[start*per:(start+rows)*per]...)
			if err := execDiscard(exec, tensors.FromFlatDataAndDimensions(buf, rows, v.NumChannels, v.ImageSize, v.ImageSize)); err != nil {
				return err
			}
		}
	}
	if m, size := take(d.M, batch, batches); m > 0 {
		exec, err := context.NewExec(b, ctx, func(ctx *context.Context, ids *graph.Node) *graph.Node {
			return clip.TextFeatures(ctx, cfg, hook, ids)
		})
		if err != nil {
			return err
		}
		if len(d.IDs) != d.M*d.L {
			return fmt.Errorf("input ids: %d values for [%d, %d]", len(d.IDs), d.M, d.L)
		}
		for start := 0; start < m; start += size {
			rows := min(size, m-start)
			buf := append([]int32(nil), d.IDs[start*d.L:(start+rows)*d.L]...)
			if err := execDiscard(exec, tensors.FromFlatDataAndDimensions(buf, rows, d.L)); err != nil {
				return err
			}
		}
	}
	return nil
}

// execDiscard runs exec and frees its outputs.
func execDiscard(exec *context.Exec, args ...any) error {
	outs, err := exec.Exec(args...)
	if err != nil {
		return err
	}
	for _, o := range outs {
		o.FinalizeAll()
	}
	return nil
}

// readVar returns a float32 variable's data and shape.
func readVar(ctx *context.Context, scope, name string) ([]float32, []int, error) {
	v := ctx.GetVariableByScopeAndName(scope, name)
	if v == nil {
		return nil, nil, fmt.Errorf("variable %s/%s does not exist", scope, name)
	}
	t, err := v.Value()
	if err != nil {
		return nil, nil, fmt.Errorf("variable %s/%s: %w", scope, name, err)
	}
	var out []float32
	err = t.ConstFlatData(func(flat any) {
		if f, ok := flat.([]float32); ok {
			out = append([]float32(nil), f...)
		}
	})
	if err != nil || out == nil {
		return nil, nil, fmt.Errorf("variable %s/%s: not float32 (%v)", scope, name, err)
	}
	return out, t.Shape().Dimensions, nil
}

// writeVar overwrites a variable's value.
func writeVar(ctx *context.Context, scope, name string, data []float32, dims []int) error {
	v := ctx.GetVariableByScopeAndName(scope, name)
	if v == nil {
		return fmt.Errorf("variable %s/%s does not exist", scope, name)
	}
	return v.SetValue(tensors.FromFlatDataAndDimensions(data, dims...))
}
