package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchJPEG640x480 returns the 640x480 JPEG the benchmarks (and
// bench/preprocess/pillow_bench.py) use: the shared golden img_0.jpg when
// present, else a synthetic 4:2:0 JPEG of the same size.
func benchJPEG640x480(b *testing.B) []byte {
	b.Helper()
	shared := os.Getenv("QATCLIP_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "shared")
	}
	if data, err := os.ReadFile(filepath.Join(shared, "golden", "preprocess", "img_0.jpg")); err == nil {
		return data
	}
	b.Log("shared img_0.jpg not found: benchmarking a synthetic 640x480 JPEG")
	m := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := range 480 {
		for x := range 640 {
			m.SetRGBA(x, y, color.RGBA{uint8(x ^ y), uint8(x + 2*y), uint8(3*x - y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// preprocessBenchCPU returns the CPU time (user + system) this process has used.
func preprocessBenchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// imageRate reports images/s of wall time and images per CPU-second (the
// per-core rate, robust when other processes share the machine). Call
// start := preprocessBenchCPU(b) before the loop.
func reportPreprocessRate(b *testing.B, start time.Duration) {
	cpu := preprocessBenchCPU(b) - start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "images/cpu-s")
	}
}

// BenchmarkDecodePreprocessJPEG640x480 is the full per-image path of the
// loader: decode a 640x480 JPEG, convert to RGB, resize, crop, normalise
// into a reused batch slot. Run with -cpu 1 for images/s per core.
func BenchmarkDecodePreprocessJPEG640x480(b *testing.B) {
	data := benchJPEG640x480(b)
	p, err := NewPreprocessor(DefaultPreprocessConfig())
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, p.Config().OutputLen())
	start := preprocessBenchCPU(b)
	for b.Loop() {
		if err := p.DecodePreprocessInto(dst, data); err != nil {
			b.Fatal(err)
		}
	}
	reportPreprocessRate(b, start)
}

// BenchmarkDecodeJPEG640x480 is DecodeImage alone (image/jpeg plus
// libjpeg-style upsampling and colour conversion).
func BenchmarkDecodeJPEG640x480(b *testing.B) {
	data := benchJPEG640x480(b)
	start := preprocessBenchCPU(b)
	for b.Loop() {
		if _, err := DecodeImage(data); err != nil {
			b.Fatal(err)
		}
	}
	reportPreprocessRate(b, start)
}

// BenchmarkStdlibJPEGDecode640x480 is image/jpeg.Decode alone, the part of
// DecodeImage this package does not control.
func BenchmarkStdlibJPEGDecode640x480(b *testing.B) {
	data := benchJPEG640x480(b)
	start := preprocessBenchCPU(b)
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	reportPreprocessRate(b, start)
}

// BenchmarkResizeCrop640x480 is the bicubic resize to 298x224 (only the
// 224x224 window computed) of a decoded 640x480 image.
func BenchmarkResizeCrop640x480(b *testing.B) {
	img, err := DecodeImage(benchJPEG640x480(b))
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPreprocessor(DefaultPreprocessConfig())
	if err != nil {
		b.Fatal(err)
	}
	start := preprocessBenchCPU(b)
	for b.Loop() {
		if _, err := p.ResizeCrop(img); err != nil {
			b.Fatal(err)
		}
	}
	reportPreprocessRate(b, start)
}

// BenchmarkNormalize224 is the /255, mean/std, HWC -> CHW step.
func BenchmarkNormalize224(b *testing.B) {
	p, err := NewPreprocessor(DefaultPreprocessConfig())
	if err != nil {
		b.Fatal(err)
	}
	img := NewRGBImage(224, 224)
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	dst := make([]float32, p.Config().OutputLen())
	start := preprocessBenchCPU(b)
	for b.Loop() {
		p.normalize(dst, img)
	}
	reportPreprocessRate(b, start)
}
