package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestEffectiveRank(t *testing.T) {
	cases := []struct {
		name string
		s    []float64
		want float64
	}{
		{"one direction", []float64{3, 0, 0}, 1},
		{"equal values", []float64{2, 2, 2, 2}, 4},
		{"two to one", []float64{2, 1}, math.Exp(-(2.0/3*math.Log(2.0/3) + 1.0/3*math.Log(1.0/3)))},
		{"all zero", []float64{0, 0}, 0},
	}
	for _, c := range cases {
		if got := EffectiveRank(c.s); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: EffectiveRank(%v) = %v, want %v", c.name, c.s, got, c.want)
		}
	}
}

func TestEmbeddingSpectrum(t *testing.T) {
	// Rows of a scaled orthonormal basis: singular values are known exactly.
	const n, d = 6, 3
	data := make([]float32, n*d)
	scales := []float32{4, 2, 1}
	for i := 0; i < n; i++ {
		data[i*d+i%d] = scales[i%d]
	}
	sp, err := EmbeddingSpectrum(data, n, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{4 * math.Sqrt2, 2 * math.Sqrt2, math.Sqrt2}
	for i, w := range want {
		if math.Abs(sp.Singular[i]-w) > 1e-9 {
			t.Errorf("singular value %d = %v, want %v", i, sp.Singular[i], w)
		}
	}
	if math.Abs(sp.EffectiveRank-EffectiveRank(want)) > 1e-9 {
		t.Errorf("effective rank %v, want %v", sp.EffectiveRank, EffectiveRank(want))
	}
	if _, err := EmbeddingSpectrum(data[:5], 2, 3); err == nil || err.Error() != "embedding data has 5 values, want 2*3 = 6" {
		t.Errorf("short data: %v", err)
	}
	data[4] = float32(math.NaN())
	if _, err := EmbeddingSpectrum(data, n, d); err == nil || err.Error() != "embedding row 1, dim 1 is NaN (want a finite number)" {
		t.Errorf("NaN: %v", err)
	}
}

// BenchmarkEmbeddingSpectrum10kx512 is the spectrum of 10,000 CLIP-sized
// embeddings.
func BenchmarkEmbeddingSpectrum10kx512(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, d = 10_000, 512
	data := make([]float32, n*d)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	for b.Loop() {
		if _, err := EmbeddingSpectrum(data, n, d); err != nil {
			b.Fatal(err)
		}
	}
}
