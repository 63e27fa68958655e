package export

import (
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/quantizers"
)

// benchModel calibrates clip-tiny (shared/golden) with the W8A8 min-max
// recipe.
func benchModel(b *testing.B) *quantModel {
	dir := testutil.SharedPath(b, "golden", "clip-tiny")
	return calibrated(b, newBackend(b), dir, "w8a8-minmax-ptq.yaml")
}

// BenchmarkWriteClipTiny measures export.Write of clip-tiny W8A8
// (compressed-tensors, int8) to a temporary folder.
func BenchmarkWriteClipTiny(b *testing.B) {
	for _, packed := range []bool{false, true} {
		b.Run("packed="+strconv.FormatBool(packed), func(b *testing.B) {
			q := benchModel(b)
			out := filepath.Join(b.TempDir(), "export")
			b.ResetTimer()
			for range b.N {
				if _, err := Write(out, q.source(), Options{Force: true, PackInt4: packed}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadClipTiny measures export.Load of a clip-tiny W8A8 export:
// reading, dequantizing and setting the variables, and building the hook.
func BenchmarkLoadClipTiny(b *testing.B) {
	q := benchModel(b)
	out := filepath.Join(b.TempDir(), "export")
	if _, err := Write(out, q.source(), Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Load(out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQuantizeWeight measures the host-side, bit-exact weight
// quantization of a 768x768 per-channel int8 weight (ViT-B/32 q_proj size).
func BenchmarkQuantizeWeight(b *testing.B) {
	const rows, cols = 768, 768
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
	}
	cfg := quantizers.DefaultConfig()
	cfg.Granularity = quantizers.PerChannel
	s := &site{module: "m", cfg: cfg, scale: make([]float32, rows), paramDims: []int{rows}}
	for i := range s.scale {
		s.scale[i] = 0.1 / 127
	}
	b.SetBytes(int64(4 * len(w)))
	b.ResetTimer()
	for range b.N {
		if _, _, err := s.quantizeWeight(w, []int{rows, cols}); err != nil {
			b.Fatal(err)
		}
	}
}
