package quantizers

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gopjrt/dtypes"
)

// RoundHalfEven rounds x to the nearest integer, ties to even (0.5 -> 0,
// 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -2.5 -> -2), the rounding of PyTorch's
// fake-quant ops (std::nearbyint) and of XLA's Round. It gives the same
// result on every backend, where graph.Round does not (the pure-Go backend
// rounds ties away from zero).
//
// x must be float32 or float64 (other dtypes are rounded in float32). The
// result has no gradient: use it under a straight-through construction.
//
// It adds 2^p (p = mantissa bits) to |x| so that the hardware's
// round-to-nearest-even addition drops the fraction, subtracts it again and
// restores the sign; values with |x| >= 2^p are integers already and pass
// through, as do NaN and infinities.
func RoundHalfEven(x *Node) *Node {
	g := x.Graph()
	x, back := toComputeDType(x)
	dt := x.DType()
	big := Scalar(g, dt, magicInteger(dt))
	ax := Abs(x)
	r := Mul(Sign(x), Sub(Add(ax, big), big))
	return back(Where(LessThan(ax, big), r, x))
}

// roundSmall rounds half to even values known to satisfy |x| <= 2^(p-1)
// (p = mantissa bits; 4194304 for float32), such as values already clamped
// to a quantization range. It costs two element-wise ops: adding 1.5*2^p
// puts every such value in [2^p, 2^(p+1)], where float spacing is exactly
// 1, so the addition itself rounds half to even.
func roundSmall(x *Node) *Node {
	m := Scalar(x.Graph(), x.DType(), 1.5*magicInteger(x.DType()))
	return Sub(Add(x, m), m)
}

// magicInteger returns 2^p, the smallest power of two from which the dtype
// represents only integers.
func magicInteger(dt dtypes.DType) float64 {
	if dt == dtypes.Float64 {
		return 1 << 52
	}
	return 1 << 23
}

// toComputeDType returns x as float32 or float64 (converting other dtypes to
// float32) and a function converting a result back to x's dtype.
func toComputeDType(x *Node) (*Node, func(*Node) *Node) {
	dt := x.DType()
	if dt == dtypes.Float32 || dt == dtypes.Float64 {
		return x, func(n *Node) *Node { return n }
	}
	return ConvertDType(x, dtypes.Float32), func(n *Node) *Node { return ConvertDType(n, dt) }
}
