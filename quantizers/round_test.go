package quantizers

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestRoundHalfEven(t *testing.T) {
	backend := newTestBackend(t)
	tests := []struct {
		in, want float64
	}{
		{0.5, 0}, {1.5, 2}, {2.5, 2}, {3.5, 4}, {-0.5, 0}, {-1.5, -2}, {-2.5, -2},
		{0.49999997, 0}, {0.50000006, 1}, {-0.49999997, 0}, {1.4999999, 1},
		{0, 0}, {7, 7}, {-7.25, -7}, {-7.75, -8},
		{4194304.5, 4194304}, {4194305.5, 4194306}, // 2^22 + 0.5: spacing 0.5
		{8388609, 8388609}, {-8388609, -8388609}, {1e30, 1e30}, {-1e30, -1e30},
	}
	in32 := make([]float32, len(tests))
	in64 := make([]float64, len(tests))
	for i, tc := range tests {
		in32[i], in64[i] = float32(tc.in), tc.in
	}
	got32 := MustExecOnce(backend, RoundHalfEven, tensors.FromValue(in32))
	got64 := MustExecOnce(backend, RoundHalfEven, tensors.FromValue(in64))
	g32, g64 := tensors.MustCopyFlatData[float32](got32), tensors.MustCopyFlatData[float64](got64)
	for i, tc := range tests {
		if float64(g32[i]) != float64(float32(tc.want)) {
			t.Errorf("float32 RoundHalfEven(%v) = %v, want %v", float32(tc.in), g32[i], tc.want)
		}
		if g64[i] != tc.want {
			t.Errorf("float64 RoundHalfEven(%v) = %v, want %v", tc.in, g64[i], tc.want)
		}
	}
	// NaN and infinities pass through.
	special := MustExecOnce(backend, RoundHalfEven, tensors.FromValue([]float32{
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}))
	s := tensors.MustCopyFlatData[float32](special)
	if !math.IsNaN(float64(s[0])) || !math.IsInf(float64(s[1]), 1) || !math.IsInf(float64(s[2]), -1) {
		t.Errorf("RoundHalfEven(NaN, +Inf, -Inf) = %v", s)
	}
}

// TestRoundHalfEvenMatchesGo compares every float32 of a dense sweep of
// half-integers and their neighbours with Go's math.RoundToEven.
func TestRoundHalfEvenMatchesGo(t *testing.T) {
	backend := newTestBackend(t)
	var in []float32
	for k := -300; k <= 300; k++ {
		h := float32(k) + 0.5
		in = append(in, h, math.Nextafter32(h, -1e9), math.Nextafter32(h, 1e9), float32(k))
	}
	got := tensors.MustCopyFlatData[float32](MustExecOnce(backend, RoundHalfEven, tensors.FromValue(in)))
	small := tensors.MustCopyFlatData[float32](MustExecOnce(backend, roundSmall, tensors.FromValue(in)))
	for i, v := range in {
		want := float32(math.RoundToEven(float64(v)))
		if got[i] != want {
			t.Errorf("RoundHalfEven(%v) = %v, want %v", v, got[i], want)
		}
		if small[i] != want {
			t.Errorf("roundSmall(%v) = %v, want %v", v, small[i], want)
		}
	}
}
