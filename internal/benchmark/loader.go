package benchmark

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/data"
)

// Synthetic loader dataset: distinct JPEGs of this size, repeated.
const (
	synthWidth, synthHeight = 640, 480
	synthDistinct           = 8
)

// synthJPEG encodes a 640x480 JPEG (quality 90) of a smooth colour pattern
// that depends on k, about the size of a photo of that resolution.
func synthJPEG(k int) ([]byte, error) {
	m := image.NewRGBA(image.Rect(0, 0, synthWidth, synthHeight))
	for y := range synthHeight {
		for x := range synthWidth {
			m.SetRGBA(x, y, color.RGBA{uint8(x ^ (y + 17*k)), uint8(x + 2*y + 31*k), uint8(3*x - y + 7*k), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeSynthDataset writes rows rows of synthetic JPEGs with captions and
// labels as an HF save_to_disk folder in dir.
func writeSynthDataset(dir string, rows int) error {
	imgs := make([][]byte, synthDistinct)
	for k := range imgs {
		var err error
		if imgs[k], err = synthJPEG(k); err != nil {
			return err
		}
	}
	names := data.SynthShapeNames()
	w, err := data.CreateDataset(dir, data.WriterOptions{Captions: true, ClassNames: names})
	if err != nil {
		return err
	}
	for i := range rows {
		ex := data.Example{ImageBytes: imgs[i%synthDistinct], Caption: "a photo of a " + names[i%len(names)], Label: i % len(names)}
		if err := w.Write(ex); err != nil {
			w.Abort()
			return err
		}
	}
	_, err = w.Close()
	return err
}

// Loader times the data loader (package data): reading, JPEG decoding,
// CLIP preprocessing to the model's image size and batching, with
// o.Workers decode goroutines and shuffling on. It reads o.Data, or a
// synthetic dataset of 640x480 JPEGs written to a temporary folder. A step
// is the wait for the next batch; the first batch (pipeline start) is
// CompileS. ImagesPerS is the images delivered over the wall time of the
// timed batches (the loader works ahead, so single waits vary widely).
func Loader(opts Options) (Result, error) {
	o, cfg, res, err := opts.start(ModeLoader)
	if err != nil {
		return Result{}, err
	}
	if o.Precision != "f32" {
		return withError(res, unsupportedf("precision %s: the loader produces float32 pixels", o.Precision))
	}
	need := o.Batch * (1 + o.Warmup + o.Steps)
	path := o.Data
	if path == "" {
		tmp, err := os.MkdirTemp("", "qatclip-bench-loader-")
		if err != nil {
			return res, fmt.Errorf("bench loader: %w", err)
		}
		defer os.RemoveAll(tmp)
		path = filepath.Join(tmp, "synth")
		fmt.Fprintf(o.Log, "bench loader: writing %d synthetic %dx%d JPEGs to %s\n", need, synthWidth, synthHeight, path)
		if err := writeSynthDataset(path, need); err != nil {
			return res, fmt.Errorf("bench loader: synthetic dataset: %w", err)
		}
	}
	src, err := data.Open(path, data.SourceOptions{})
	if err != nil {
		return res, fmt.Errorf("bench loader: %w", err)
	}
	defer src.Close()
	pre := data.DefaultPreprocessConfig()
	pre.Size = cfg.Vision.ImageSize
	l, err := data.NewLoader(src, data.LoaderConfig{BatchSize: o.Batch, Preprocess: pre, Workers: o.Workers,
		Shuffle: true, Seed: o.Seed, DropLast: true})
	if err != nil {
		return res, fmt.Errorf("bench loader: %s: %w", path, err)
	}
	defer l.Close()
	if l.StepsPerEpoch() < 1 {
		return res, fmt.Errorf("bench loader: %s has %d rows, fewer than one batch of %d", path, src.NumRows(), o.Batch)
	}
	res.Device = fmt.Sprintf("%d decode workers", l.Config().Workers)
	fmt.Fprintf(o.Log, "bench loader: %s (%d rows), %dx%d pixels, batch %d\n", path, src.NumRows(), pre.Size, pre.Size, o.Batch)

	var it *data.EpochIterator
	epoch := 0
	defer func() {
		if it != nil {
			it.Close()
		}
	}()
	next := func() error {
		for {
			if it == nil {
				var err error
				if it, err = l.Epoch(epoch, 0); err != nil {
					return err
				}
			}
			b, err := it.Next()
			if errors.Is(err, io.EOF) {
				it.Close()
				it = nil
				epoch++
				continue
			}
			if err != nil {
				return err
			}
			b.Release()
			return nil
		}
	}
	compile, timed, err := runSteps(o, next)
	if err != nil {
		return res, fmt.Errorf("bench loader: %w", err)
	}
	res.CompileS = compile.wall.Seconds()
	res.StepStats = stepStats(timed, o.Batch, 0)
	var total float64
	for _, ms := range millis(timed, false) {
		total += ms
	}
	res.ImagesPerS = float64(o.Batch*len(timed)) / (total / 1e3)
	setMemory(&res)
	return res, nil
}
