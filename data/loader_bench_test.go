package data

import (
	"fmt"
	"io"
	"path/filepath"
	"testing"
)

// loaderBenchRows is the size of the loader benchmark dataset.
const loaderBenchRows = 256

// loaderBenchDataset writes loaderBenchRows rows of the 640x480 JPEG of
// the preprocessing benchmarks (about 106 KB each) with captions and
// labels as an HF save_to_disk folder, and opens it.
func loaderBenchDataset(b *testing.B) *Source {
	b.Helper()
	data := benchJPEG640x480(b)
	dir := filepath.Join(b.TempDir(), "jpeg640")
	w, err := CreateDataset(dir, WriterOptions{Captions: true, ClassNames: SynthShapeNames()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < loaderBenchRows; i++ {
		if err := w.Write(Example{ImageBytes: data, Caption: "a photo of a thing", Label: i % 5}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	src, err := Open(dir, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	return src
}

// loaderBenchConfig is CLIP 224 preprocessing in batches of 32, shuffled.
func loaderBenchConfig(workers int) LoaderConfig {
	return LoaderConfig{
		BatchSize:  32,
		Preprocess: DefaultPreprocessConfig(),
		Fields:     FieldPixels | FieldLabels,
		Workers:    workers,
		Shuffle:    true,
		Seed:       1,
	}
}

// consumeEpochs reads epochs [first, first+n) of l whole, returning the
// number of images delivered.
func consumeEpochs(b *testing.B, l *Loader, first, n int) int {
	got := 0
	for epoch := first; epoch < first+n; epoch++ {
		it, err := l.Epoch(epoch, 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			batch, err := it.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			got += batch.N
			batch.Release()
		}
		it.Close()
	}
	return got
}

// benchLoader times whole epochs of l (b.N is the number of epochs, so no
// prefetched work is wasted) and reports images per wall second and per
// CPU second of the whole process (workers, planner, garbage collector).
func benchLoader(b *testing.B, l *Loader) {
	b.ResetTimer()
	start := preprocessBenchCPU(b)
	n := consumeEpochs(b, l, 1, b.N)
	b.StopTimer()
	cpu := preprocessBenchCPU(b) - start
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "images/cpu-s")
}

// BenchmarkLoaderJPEG640x480 is the loader from an Arrow dataset of
// 640x480 JPEGs through decode, CLIP 224 preprocessing and batching, with
// 1 and 2 workers. Compare images/s with N x Pillow's single-core rate
// (bench/preprocess/pillow_bench.py) measured at the same time.
func BenchmarkLoaderJPEG640x480(b *testing.B) {
	src := loaderBenchDataset(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(src, loaderBenchConfig(workers))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			benchLoader(b, l)
		})
	}
}

// BenchmarkLoaderCached is the same dataset from the pre-decoded pixel
// cache (224x224 uint8 RGB crops, in memory or in a file), filled by one
// epoch before timing: later epochs only normalise and batch.
func BenchmarkLoaderCached(b *testing.B) {
	src := loaderBenchDataset(b)
	for _, file := range []bool{false, true} {
		for _, workers := range []int{1, 2} {
			kind := "memory"
			if file {
				kind = "file"
			}
			b.Run(fmt.Sprintf("%s/workers=%d", kind, workers), func(b *testing.B) {
				cfg := loaderBenchConfig(workers)
				cfg.Cache = true
				if file {
					cfg.CacheFile = filepath.Join(b.TempDir(), "pixels.cache")
				}
				l, err := NewLoader(src, cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				consumeEpochs(b, l, 0, 1)
				if l.CachedRows() != loaderBenchRows {
					b.Fatalf("cache holds %d rows after an epoch", l.CachedRows())
				}
				benchLoader(b, l)
			})
		}
	}
}

// BenchmarkLoaderPlan is the planning and reading alone: batches of
// labels only, no image decoding.
func BenchmarkLoaderPlan(b *testing.B) {
	src := loaderBenchDataset(b)
	cfg := loaderBenchConfig(1)
	cfg.Fields = FieldLabels
	l, err := NewLoader(src, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	benchLoader(b, l)
}
