package pipeline

import (
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"strings"
	"sync"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/eval"
)

// DataSet names an image set on disk.
type DataSet struct {
	// Name labels the set in reports (e.g. "imagenet-val", "textures").
	Name string
	// Path is anything data.Open reads: an HF save_to_disk folder, Arrow or
	// Parquet files, a folder of shards or a glob.
	Path string
	// Split picks a split of a DatasetDict folder ("" reads data.Open's
	// default, "train").
	Split string
	// ImageColumn and LabelColumn name the columns ("" auto-detects).
	// LabelColumn matters only for labelled (ID and fit) sets.
	ImageColumn string
	LabelColumn string
	// Hint says what to download and where; errors about a missing Path
	// repeat it.
	Hint string
}

// describe names the set for errors: `role "name" (path)`.
func (d DataSet) describe(role string) string {
	s := role + " set"
	if d.Name != "" && d.Name != role {
		s += fmt.Sprintf(" %q", d.Name)
	}
	return s
}

// Check reports a set whose path is empty or does not exist, in one line
// naming the role ("id", "fit", "ood"), the set and the path, followed by
// the set's Hint. Globs are not checked.
func (d DataSet) Check(role string) error {
	if d.Path == "" {
		return fmt.Errorf("%s: no path given", d.describe(role))
	}
	if strings.ContainsAny(d.Path, "*?[") {
		return nil
	}
	if _, err := os.Stat(d.Path); err != nil {
		msg := fmt.Sprintf("%s: %s does not exist", d.describe(role), d.Path)
		if !errors.Is(err, os.ErrNotExist) {
			msg = fmt.Sprintf("%s: %v", d.describe(role), err)
		}
		if d.Hint != "" {
			msg += "; " + d.Hint
		}
		return errors.New(msg)
	}
	return nil
}

// open opens the set, checking first that its path exists so that a
// missing download gives one line saying what to fetch.
func (d DataSet) open(role string) (*data.Source, error) {
	if err := d.Check(role); err != nil {
		return nil, err
	}
	src, err := data.Open(d.Path, data.SourceOptions{Split: d.Split, ImageColumn: d.ImageColumn, LabelColumn: d.LabelColumn})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.describe(role), err)
	}
	if src.NumRows() == 0 {
		src.Close()
		return nil, fmt.Errorf("%s: %s holds no rows", d.describe(role), d.Path)
	}
	return src, nil
}

// Corruption alters the images of a set before they are embedded: Gaussian
// noise on the normalised pixels, or a JPEG round trip of the decoded image
// before preprocessing. The zero value changes nothing.
type Corruption struct {
	// NoiseSigma > 0 adds sigma * N(0, 1) to every normalised pixel value
	// (eval.AddGaussianNoise); each image draws from its own generator,
	// seeded by the run seed and the image's position, so results do not
	// depend on batching or workers.
	NoiseSigma float64
	// JPEGQuality in [1, 100] re-encodes each decoded image as JPEG at that
	// quality (eval.JPEGReencode) before resizing.
	JPEGQuality int
}

// String describes the corruption, e.g. "gaussian noise σ=0.1".
func (c Corruption) String() string {
	switch {
	case c.NoiseSigma > 0:
		return fmt.Sprintf("gaussian noise σ=%g", c.NoiseSigma)
	case c.JPEGQuality > 0:
		return fmt.Sprintf("JPEG q=%d", c.JPEGQuality)
	}
	return "clean"
}

// Key is a short file- and JSON-friendly name, e.g. "noise0.1", "jpeg30".
func (c Corruption) Key() string {
	switch {
	case c.NoiseSigma > 0:
		return fmt.Sprintf("noise%g", c.NoiseSigma)
	case c.JPEGQuality > 0:
		return fmt.Sprintf("jpeg%d", c.JPEGQuality)
	}
	return "clean"
}

// imageBatch is one batch of preprocessed images, padded to the batch size
// with zeros (rows n..batch-1).
type imageBatch struct {
	pixels []float32
	labels []int
	ids    []string
	n      int
}

// readSpec says how to read a set.
type readSpec struct {
	src     *data.Source
	what    string // for errors
	limit   int    // <= 0: all rows
	batch   int
	workers int
	pcfg    data.PreprocessConfig
	corrupt Corruption
	seed    uint64
}

// readImages streams the set's images in storage order as padded batches:
// a producer goroutine reads rows and preprocesses each batch with
// spec.workers goroutines while the caller embeds the previous one. fn is
// called for each batch in order; when it returns an error reading stops.
func readImages(spec readSpec, fn func(b *imageBatch) error) error {
	type result struct {
		b   *imageBatch
		err error
	}
	ch := make(chan result, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		pre := make([]*data.Preprocessor, spec.workers)
		for i := range pre {
			p, err := data.NewPreprocessor(spec.pcfg)
			if err != nil {
				ch <- result{err: err}
				return
			}
			pre[i] = p
		}
		var pending []data.Example
		index := 0 // position of pending[0] in the set
		send := func(exs []data.Example) bool {
			b, err := preprocessBatch(spec, pre, exs, index)
			index += len(exs)
			select {
			case ch <- result{b, err}:
				return err == nil
			case <-done:
				return false
			}
		}
		read := 0
		for shard, info := range spec.src.Shards() {
			for start := 0; start < info.Rows; start += spec.batch {
				end := min(start+spec.batch, info.Rows)
				exs, err := spec.src.ReadRange(shard, start, end)
				if err != nil {
					select {
					case ch <- result{err: fmt.Errorf("%s: %w", spec.what, err)}:
					case <-done:
					}
					return
				}
				if spec.limit > 0 && read+len(exs) > spec.limit {
					exs = exs[:spec.limit-read]
				}
				read += len(exs)
				pending = append(pending, exs...)
				for len(pending) >= spec.batch {
					if !send(pending[:spec.batch]) {
						return
					}
					pending = append(pending[:0], pending[spec.batch:]...)
				}
				if spec.limit > 0 && read >= spec.limit {
					break
				}
			}
			if spec.limit > 0 && read >= spec.limit {
				break
			}
		}
		if len(pending) > 0 {
			send(pending)
		}
	}()
	var err error
	for r := range ch {
		if err != nil {
			continue
		}
		if r.err != nil {
			err = r.err
		} else {
			err = fn(r.b)
		}
		if err != nil {
			close(done)
		}
	}
	wg.Wait()
	return err
}

// preprocessBatch decodes, corrupts and preprocesses exs in parallel into a
// batch padded to spec.batch rows. first is the position of exs[0] in the
// set (it seeds the noise).
func preprocessBatch(spec readSpec, pre []*data.Preprocessor, exs []data.Example, first int) (*imageBatch, error) {
	per := spec.pcfg.OutputLen()
	b := &imageBatch{pixels: make([]float32, spec.batch*per), labels: make([]int, len(exs)), ids: make([]string, len(exs)), n: len(exs)}
	errs := make([]error, len(exs))
	var wg sync.WaitGroup
	for w := range min(len(pre), len(exs)) {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(exs); i += len(pre) {
				ex := &exs[i]
				b.labels[i], b.ids[i] = ex.Label, ex.ID
				if err := preprocessOne(spec, pre[w], ex, b.pixels[i*per:(i+1)*per], first+i); err != nil {
					errs[i] = fmt.Errorf("%s: example %s: %w", spec.what, ex.ID, err)
				}
			}
		}(w)
	}
	wg.Wait()
	return b, errors.Join(errs...)
}

// preprocessOne fills dst with one example's preprocessed, corrupted image.
func preprocessOne(spec readSpec, p *data.Preprocessor, ex *data.Example, dst []float32, index int) error {
	raw, err := ex.ImageData()
	if err != nil {
		return err
	}
	if q := spec.corrupt.JPEGQuality; q > 0 {
		img, err := data.DecodeImage(raw)
		if err != nil {
			return err
		}
		out, err := eval.JPEGReencode(rgbaOf(img), q)
		if err != nil {
			return err
		}
		if err := p.PreprocessInto(dst, data.ToRGB(out)); err != nil {
			return err
		}
	} else if err := p.DecodePreprocessInto(dst, raw); err != nil {
		return err
	}
	if s := spec.corrupt.NoiseSigma; s > 0 {
		r := rand.New(rand.NewPCG(spec.seed, uint64(index)))
		return eval.AddGaussianNoise(dst, s, r)
	}
	return nil
}

// rgbaOf converts an 8-bit RGB image to an opaque image.RGBA.
func rgbaOf(img *data.RGBImage) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, img.Width, img.Height))
	for i, j := 0, 0; i < len(img.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = img.Pix[i], img.Pix[i+1], img.Pix[i+2], 255
	}
	return out
}
