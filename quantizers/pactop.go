package quantizers

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// PACT fake-quantizes x to bits unsigned bits over the learnable clipping
// range [0, alpha] (Choi et al. 2018):
//
//	y = round(clip(x, 0, alpha) * n / alpha) * alpha / n,  n = 2^bits - 1
//
// evaluated left to right in x's float dtype, with ties rounded to even.
// Gradients: dx = g where 0 <= x < alpha (0 elsewhere) and
// dalpha = sum of g where x >= alpha. alpha holds one value (shape [] or
// [1]) or has x's rank with dimensions equal to x's or 1 (one alpha per
// channel).
func PACT(x, alpha *Node, bits int) *Node {
	if bits < 1 || bits > 16 {
		panic(fmt.Errorf("quantizers: PACT bits must be in [1, 16], got %d", bits))
	}
	return pactLevels(x, alpha, int(1)<<bits-1)
}

// pactLevels is PACT with n quantization steps over [0, alpha].
func pactLevels(x, alpha *Node, n int) *Node {
	x, back := toComputeDType(x)
	g := x.Graph()
	dt := x.DType()
	a := ConvertDType(alpha, dt)
	switch {
	case a.Shape().Size() == 1:
		a = Reshape(a) // a scalar
	case a.Rank() != x.Rank():
		panic(fmt.Errorf("quantizers: PACT alpha of shape %s does not broadcast to x %s", alpha.Shape(), x.Shape()))
	}
	nS := Scalar(g, dt, float64(n))
	aS := StopGradient(a)
	zero := ScalarZero(g, dt)
	c := Min(Max(StopGradient(x), zero), aS)
	r := roundSmall(Div(Mul(c, nS), aS))
	y := Div(Mul(r, aS), nS)

	xs := IdentityWithCustomGradient(x, func(_, gv *Node) *Node {
		inside := LogicalAnd(GreaterOrEqual(x, zero), LessThan(x, aS))
		return Where(inside, gv, zero)
	})
	aF := IdentityWithCustomGradient(BroadcastToDims(a, x.Shape().Dimensions...), func(_, gv *Node) *Node {
		return Where(GreaterOrEqual(x, aS), gv, zero)
	})
	carrier := Add(xs, aF)
	return back(Add(y, Sub(carrier, StopGradient(carrier))))
}
