package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/internal/npy"
)

// newPreprocessCmd builds `qatclip preprocess`, which decodes images and
// writes their CLIP-preprocessed pixels as one float32 .npy array.
func newPreprocessCmd() *cobra.Command {
	var (
		size    int
		out     string
		layout  string
		workers int
	)
	cmd := &cobra.Command{
		Use:   "preprocess [--size 224] --out F.npy IMAGE...",
		Short: "Write CLIP-preprocessed pixels of images as an (N, 3, S, S) float32 .npy",
		Long: `Preprocess decodes each IMAGE (JPEG, PNG, GIF, BMP or WebP), converts it to
RGB as Pillow's convert("RGB") does, resizes its shorter side to --size with
Pillow's bicubic filter, center-crops --size x --size, scales to [0, 1] and
normalises with CLIP's mean and std. The result, in argument order, is written
to --out as an (N, 3, S, S) float32 array, or (N, S, S, 3) with --layout hwc.`,
		RunE: func(cmd *cobra.Command, images []string) error {
			if out == "" {
				return errors.New("preprocess: --out is required")
			}
			if len(images) == 0 {
				return errors.New("preprocess: no images given")
			}
			cfg := data.DefaultPreprocessConfig()
			cfg.Size = size
			switch strings.ToLower(layout) {
			case "chw", "nchw":
				cfg.Layout = data.LayoutCHW
			case "hwc", "nhwc":
				cfg.Layout = data.LayoutHWC
			default:
				return fmt.Errorf("preprocess: --layout %q: want chw or hwc", layout)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("preprocess: --size: %w", err)
			}
			if workers <= 0 {
				workers = runtime.GOMAXPROCS(0)
			}
			pixels, err := preprocessFiles(images, cfg, workers)
			if err != nil {
				return fmt.Errorf("preprocess: %w", err)
			}
			shape := []int{len(images), 3, size, size}
			if cfg.Layout == data.LayoutHWC {
				shape = []int{len(images), size, size, 3}
			}
			if err := npy.WriteFile(out, npy.Array{Shape: shape, Data: pixels}); err != nil {
				return fmt.Errorf("preprocess: write %s: %w", out, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&size, "size", 224, "side of the square output in pixels")
	f.StringVar(&out, "out", "", "output .npy file (required)")
	f.StringVar(&layout, "layout", "chw", "per-image layout: chw (N,3,S,S) or hwc (N,S,S,3)")
	f.IntVar(&workers, "workers", 0, "images decoded in parallel (0: one per CPU)")
	return cmd
}

// preprocessFiles decodes and preprocesses the files with up to workers
// goroutines, each with its own Preprocessor, into one batch buffer. The
// error of the first failing file (in argument order) is returned.
func preprocessFiles(paths []string, cfg data.PreprocessConfig, workers int) ([]float32, error) {
	per := cfg.OutputLen()
	pixels := make([]float32, len(paths)*per)
	errs := make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(paths)) {
		p, err := data.NewPreprocessor(cfg)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = p.PreprocessFileInto(pixels[i*per:(i+1)*per], paths[i])
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pixels, nil
}
