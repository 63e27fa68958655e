package eval

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Spectrum describes the singular values of an embedding matrix [N, D].
type Spectrum struct {
	N int `json:"n"`
	D int `json:"d"`
	// Singular holds the singular values, descending.
	Singular []float64 `json:"singular_values"`
	// EffectiveRank is exp(H(p)) with p_i = s_i / sum(s), the Shannon
	// entropy of the normalised singular values (Roy & Vetterli 2007); it
	// lies in [1, min(N, D)].
	EffectiveRank float64 `json:"effective_rank"`
}

// EmbeddingSpectrum computes the singular values and effective rank of the
// row-major embedding matrix data [n, d] (not centred: the spectrum of the
// embeddings as the zero-shot head sees them).
func EmbeddingSpectrum(data []float32, n, d int) (*Spectrum, error) {
	if n <= 0 || d <= 0 {
		return nil, fmt.Errorf("empty embedding matrix [%d, %d]", n, d)
	}
	if len(data) != n*d {
		return nil, fmt.Errorf("embedding data has %d values, want %d*%d = %d", len(data), n, d, n*d)
	}
	for k, v := range data {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("embedding row %d, dim %d is %v (want a finite number)", k/d, k%d, f)
		}
	}
	s, err := singularValues(data, n, d)
	if err != nil {
		return nil, err
	}
	return &Spectrum{N: n, D: d, Singular: s, EffectiveRank: EffectiveRank(s)}, nil
}

// singularValues returns the singular values of data [n, d], descending:
// the square roots of the eigenvalues of the Gram matrix X^T X (or X X^T,
// whichever is smaller), accumulated in float64. Squaring limits the
// relative resolution of the smallest values to about 1e-8 of the largest,
// far below what the effective rank or a log-scale spectrum plot can show,
// and is several times faster than a full SVD for N >> D.
func singularValues(data []float32, n, d int) ([]float64, error) {
	var g *mat.SymDense
	if d <= n {
		g = gramColumns(data, n, d)
	} else {
		x := mat.NewDense(n, d, nil)
		for k, v := range data {
			x.Set(k/d, k%d, float64(v))
		}
		g = mat.NewSymDense(n, nil)
		g.SymRankK(g, 1, x) // X X^T
	}
	k := g.SymmetricDim()
	var eig mat.EigenSym
	if !eig.Factorize(g, false) {
		return nil, fmt.Errorf("eigendecomposition of the [%d, %d] Gram matrix did not converge", k, k)
	}
	ev := eig.Values(nil) // ascending
	s := make([]float64, k)
	for i, v := range ev {
		s[k-1-i] = math.Sqrt(max(v, 0))
	}
	return s, nil
}

// gramColumns returns X^T X for data [n, d], summing the Gram matrices of
// row blocks computed in parallel (in block order, so the result does not
// depend on scheduling).
func gramColumns(data []float32, n, d int) *mat.SymDense {
	const blockRows = 1024
	blocks := (n + blockRows - 1) / blockRows
	parts := make([]*mat.SymDense, blocks)
	parallelRange(blocks, 0, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			r0, r1 := b*blockRows, min((b+1)*blockRows, n)
			x := mat.NewDense(r1-r0, d, nil)
			for k, v := range data[r0*d : r1*d] {
				x.Set(k/d, k%d, float64(v))
			}
			parts[b] = mat.NewSymDense(d, nil)
			parts[b].SymRankK(parts[b], 1, x.T())
		}
	})
	g := parts[0]
	for _, p := range parts[1:] {
		g.AddSym(g, p)
	}
	return g
}

// EffectiveRank returns exp(-sum p_i log p_i) for p_i = s_i / sum(s) over
// the non-zero singular values s; 0 when all are zero.
func EffectiveRank(s []float64) float64 {
	var sum float64
	for _, v := range s {
		sum += math.Abs(v)
	}
	if sum == 0 {
		return 0
	}
	var h float64
	for _, v := range s {
		if p := math.Abs(v) / sum; p > 0 {
			h -= p * math.Log(p)
		}
	}
	return math.Exp(h)
}
