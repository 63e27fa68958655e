package backend

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkEwKernel times the element-wise kernels alone on a clip-tiny
// MLP activation (64x17x512 = 557056 values, larger than L2) and on an
// L2-resident slice (16384 values); MB/s reads as millions of values per
// second. Logistic runs on one goroutine and on all.
func BenchmarkEwKernel(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{16384, 64 * 17 * 512} {
		x, y, out := make([]float32, n), make([]float32, n), make([]float32, n)
		cond := make([]bool, n)
		for i := range x {
			x[i], y[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			cond[i] = rng.IntN(2) == 0
		}
		flat := newStridePlan([]int{n}, []int{n}, []int{n})
		scalar := newStridePlan([]int{n}, []int{n}, nil)
		perChannel := newStridePlan([]int{n / 128, 128}, []int{n / 128, 128}, []int{n / 128, 1})
		row := newStridePlan([]int{n / 128, 128}, []int{n / 128, 128}, []int{1, 128})
		// [B,16,2,64] -> [B,2,16,64], attention heads first.
		transpose := planStrides([]int{n / 2048, 2, 16, 64}, []int{2048, 64, 128, 1})
		cases := []struct {
			name string
			fn   func()
		}{
			{"Mul/same", func() { binaryF32(binMul, &flat, out, x, y) }},
			{"Mul/scalar", func() { binaryF32(binMul, &scalar, out, x, y[:1]) }},
			{"Mul/per-channel", func() { binaryF32(binMul, &perChannel, out, x, y[:n/128]) }},
			{"Add/row", func() { binaryF32(binAdd, &row, out, x, y[:128]) }},
			{"Max/scalar", func() { binaryF32(binMax, &scalar, out, x, y[:1]) }},
			{"Equal/same", func() { compareF32(cmpEq, &flat, cond, x, y) }},
			{"Where/same", func() { whereF32(out, cond, x, y) }},
			{"Where/scalar", func() { whereF32(out, cond, x, y[:1]) }},
			{"Sign", func() { unaryF32(1, unSign, out, x) }},
			{"Broadcast/per-channel", func() { broadcastF32(&perChannel, out, y[:n/128]) }},
			{"Transpose/heads", func() { broadcastF32(&transpose, out, x) }},
			{"Logistic/workers=1", func() { unaryF32(1, unLogistic, out, x) }},
			{"Logistic/workers=all", func() { unaryF32(defaultWorkers(), unLogistic, out, x) }},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/n=%d", c.name, n), func(b *testing.B) {
				b.SetBytes(int64(n))
				for range b.N {
					c.fn()
				}
			})
		}
	}
}
