package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the matrix products of a clip-tiny training step at batch
// 64 (vision width 128, MLP 512, 17 tokens, 2 heads of 64; text width 64):
// Linear forward [M×K]·[K×N], weight gradients [K×M]ᵀ·[M×N] (long
// contraction) and batched attention products.
var benchShapes = []struct {
	name           string
	batch, m, n, k int
	lhs, rhs       string
}{
	{"linear_1088x128x128", 1, 1088, 128, 128, "bxc", "bxc"},
	{"mlp_up_1088x512x128", 1, 1088, 512, 128, "bxc", "bxc"},
	{"mlp_down_1088x128x512", 1, 1088, 128, 512, "bxc", "bxc"},
	{"wgrad_128x128x1088", 1, 128, 128, 1088, "bcx", "bcx"},
	{"wgrad_512x128x1088", 1, 512, 128, 1088, "bcx", "bcx"},
	{"attn_scores_128x17x17x64", 128, 17, 17, 64, "xbc", "xbc"},
	{"attn_values_128x17x64x17", 128, 17, 64, 17, "xbc", "bcx"},
}

// BenchmarkMatMul times MatMul with the best kernel, the pure-Go kernel and
// gonum's Sgemm (2-D shapes only) on the clip-tiny shapes; b.SetBytes is set
// to the multiply-add count so MB/s reads as millions of multiply-adds per
// second.
func BenchmarkMatMul(b *testing.B) {
	for _, s := range benchShapes {
		rng := rand.New(rand.NewPCG(1, 2))
		a, _ := layout(rng, s.lhs, s.batch, s.m, s.k)
		bb, _ := layout(rng, s.rhs, s.batch, s.n, s.k)
		c := make([]float32, s.batch*s.m*s.n)
		macs := int64(s.batch * s.m * s.n * s.k)
		for _, mul := range []*Multiplier{New(0), NewPureGo(0)} {
			b.Run(fmt.Sprintf("%s/%s", s.name, mul.Kernel()), func(b *testing.B) {
				b.SetBytes(macs)
				for b.Loop() {
					if err := mul.MatMul(c, a, bb); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		if s.batch == 1 {
			b.Run(s.name+"/gonum-sgemm", func(b *testing.B) {
				ta, lda := blas.NoTrans, s.k
				if s.lhs == "bcx" {
					ta, lda = blas.Trans, s.m
				}
				tb, ldb := blas.Trans, s.k
				if s.rhs == "bcx" {
					tb, ldb = blas.NoTrans, s.n
				}
				var impl gonum.Implementation
				b.SetBytes(macs)
				for b.Loop() {
					impl.Sgemm(ta, tb, s.m, s.n, s.k, 1, a.Data, lda, bb.Data, ldb, 0, c, s.n)
				}
			})
		}
	}
}
