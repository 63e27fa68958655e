package eval

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpNonPos(t *testing.T) {
	xs := []float64{0, math.Copysign(0, -1), -1e-300, -1e-9, -0.0054, -0.34657359, -1, -37, -700, -707.9}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200_000 {
		xs = append(xs, -r.Float64()*708, -r.Float64()*0.01)
	}
	for _, x := range xs {
		want, got := math.Exp(x), expNonPos(x)
		if rel := math.Abs(got-want) / want; rel > 5e-16 {
			t.Fatalf("expNonPos(%v) = %v, want %v (rel %.3g)", x, got, want, rel)
		}
	}
	for _, x := range []float64{-708.5, -745, -1e6, math.Inf(-1)} {
		if got := expNonPos(x); got != 0 {
			t.Errorf("expNonPos(%v) = %v, want 0", x, got)
		}
	}
}

func BenchmarkExpNonPos(b *testing.B) {
	xs := make([]float64, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range xs {
		xs[i] = -r.Float64() * 30
	}
	var s float64
	for b.Loop() {
		for _, x := range xs {
			s += expNonPos(x)
		}
	}
	_ = s
}
