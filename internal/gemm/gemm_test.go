package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// kernels lists the Multipliers under test: the portable kernel always, and
// the best one for this CPU when it differs.
func multipliers(workers int) []*Multiplier {
	ms := []*Multiplier{NewPureGo(workers)}
	if best := New(workers); best.Kernel() != ms[0].Kernel() {
		ms = append(ms, best)
	}
	return ms
}

// layout builds an Operand for a batch×cross×contract matrix stored with the
// given axis order ("bxc": batch, cross, contract row-major; "bcx": the
// matrix transposed; "xbc": batch in the middle) and returns it with a
// function reading element (b, i, p).
func layout(rng *rand.Rand, order string, batch, cross, depth int) (Operand, func(b, i, p int) float32) {
	dims := map[byte]int{'b': batch, 'x': cross, 'c': depth}
	strides := map[byte]int{}
	s := 1
	for i := len(order) - 1; i >= 0; i-- {
		strides[order[i]] = s
		s *= dims[order[i]]
	}
	data := make([]float32, s+3) // slack: tables must not reach past it by accident
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	op := Operand{
		Data:     data,
		Batch:    Strided(batch, strides['b']),
		Cross:    Strided(cross, strides['x']),
		Contract: Strided(depth, strides['c']),
	}
	return op, func(b, i, p int) float32 { return data[op.Batch[b]+op.Cross[i]+op.Contract[p]] }
}

func TestMatMulMatchesNaive(t *testing.T) {
	cases := []struct {
		batch, m, n, k int
		lhs, rhs       string
	}{
		{1, 1, 1, 1, "bxc", "bxc"},
		{1, 6, 16, 8, "bxc", "bcx"},
		{1, 7, 17, 5, "bxc", "bcx"},
		{2, 13, 33, 300, "bxc", "bxc"},  // two depth blocks
		{1, 200, 600, 40, "bcx", "bcx"}, // two column blocks, many row blocks
		{3, 17, 17, 64, "xbc", "xbc"},   // attention-like, batch axis in the middle
		{5, 16, 64, 16, "bxc", "bcx"},
		{1, 130, 128, 517, "bcx", "bxc"}, // weight-gradient-like
	}
	for _, c := range cases {
		name := fmt.Sprintf("%dx%dx%dx%d_%s_%s", c.batch, c.m, c.n, c.k, c.lhs, c.rhs)
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.m*1000+c.n)))
			a, av := layout(rng, c.lhs, c.batch, c.m, c.k)
			b, bv := layout(rng, c.rhs, c.batch, c.n, c.k)
			want := make([]float64, c.batch*c.m*c.n)
			for bi := range c.batch {
				for i := range c.m {
					for j := range c.n {
						var s float64
						for p := range c.k {
							s += float64(av(bi, i, p)) * float64(bv(bi, j, p))
						}
						want[(bi*c.m+i)*c.n+j] = s
					}
				}
			}
			for _, mul := range multipliers(3) {
				got := make([]float32, len(want))
				for i := range got {
					got[i] = float32(math.NaN()) // must be overwritten
				}
				if err := mul.MatMul(got, a, b); err != nil {
					t.Fatal(err)
				}
				tol := 1e-5 * math.Sqrt(float64(c.k)) * 4
				for i, g := range got {
					if d := math.Abs(float64(g) - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
						t.Fatalf("%s: element %d = %g, want %g", mul.Kernel(), i, g, want[i])
					}
				}
			}
		})
	}
}

// TestMatMulDeterministic checks that the result does not depend on the
// number of goroutines (the resume tests need bit-identical training).
func TestMatMulDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	a, _ := layout(rng, "bxc", 2, 301, 700)
	b, _ := layout(rng, "bcx", 2, 129, 700)
	for _, ref := range multipliers(1) {
		want := make([]float32, 2*301*129)
		if err := ref.MatMul(want, a, b); err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{2, 3, 8} {
			mul := newWithKernel(workers, ref.kern)
			for range 3 {
				got := make([]float32, len(want))
				if err := mul.MatMul(got, a, b); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s with %d workers differs from 1 worker", mul.Kernel(), workers)
				}
			}
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	mul := New(1)
	data := make([]float32, 12)
	ok := Operand{Data: data, Batch: []int{0}, Cross: Strided(3, 4), Contract: Strided(4, 1)}
	cases := []struct {
		name string
		c    []float32
		a, b Operand
	}{
		{"depth mismatch", make([]float32, 9), ok, Operand{Data: data, Batch: []int{0}, Cross: Strided(3, 4), Contract: Strided(3, 1)}},
		{"output size", make([]float32, 8), ok, ok},
		{"out of bounds", make([]float32, 9), ok, Operand{Data: data, Batch: []int{0}, Cross: Strided(3, 5), Contract: Strided(4, 1)}},
		{"negative offset", make([]float32, 9), ok, Operand{Data: data, Batch: []int{-1}, Cross: Strided(3, 4), Contract: Strided(4, 1)}},
	}
	for _, c := range cases {
		if err := mul.MatMul(c.c, c.a, c.b); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
