package quantizers

import (
	"fmt"
	"slices"

	"github.com/gomlx/gopjrt/dtypes"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// This file holds the fake-quantization graph ops. They follow PyTorch
// 1.13's CPU kernels operation by operation, in float32 (or float64 when x
// is float64), so that forward values match bit for bit on every backend:
//
//	inv = 1 / scale
//	y   = (clamp(zp + nearbyint(x*inv), qmin, qmax) - zp) * scale
//
// computed here as round(clamp(x*inv, qmin-zp, qmax-zp)) * scale (the same
// value: the bounds are integers and rounding is monotone).
//
// Gradients are written by hand (GoMLX has none for Round or Clamp) and
// attached with graph.IdentityWithCustomGradient on "carrier" terms whose
// forward value is exactly zero (c - StopGradient(c)), so the forward value
// stays bit-exact while the backward follows PyTorch's formulas.

// affineSpec fixes the integer range and the gradient behaviour of one
// affine fake-quant call.
type affineSpec struct {
	qmin, qmax int
	// learnable attaches gradients to scale and zero point
	// (torch._fake_quantize_learnable_*); otherwise they get none.
	learnable bool
	// learnZero gives the zero point a gradient (learnable ops only);
	// otherwise it is a constant.
	learnZero  bool
	gradFactor float64
	// perTensorBackwardZP reproduces the zero point PyTorch's per-tensor
	// learnable backward uses: int64(clamp(zp + 0.5, qmin, qmax)), which
	// differs from the forward's nearbyint only for non-integer zero points.
	perTensorBackwardZP bool
}

// FakeQuantPerTensor fake-quantizes x with one scale and zero point, as
// torch.fake_quantize_per_tensor_affine: y = (clamp(round(x/scale)+zp,
// qmin, qmax) - zp) * scale with ties rounded to even. scale and zeroPoint
// hold one value (shape [] or [1]); zeroPoint may be nil (0) and is rounded
// and clamped to [qmin, qmax]. The gradient passes to x where
// round(x/scale)+zp lies in [qmin, qmax] and is zero elsewhere; scale and
// zero point get no gradient.
func FakeQuantPerTensor(x, scale, zeroPoint *Node, qmin, qmax int) *Node {
	s, z := perTensorParams(x, scale, zeroPoint)
	return fakeQuantAffine(x, s, z, affineSpec{qmin: qmin, qmax: qmax})
}

// FakeQuantPerChannel fake-quantizes x with one scale and zero point per
// slice along axis (negative counts from the end), as
// torch.fake_quantize_per_channel_affine. scale and zeroPoint have shape
// [x.Shape().Dimensions[axis]]; zeroPoint may be nil. Gradients as
// FakeQuantPerTensor.
func FakeQuantPerChannel(x, scale, zeroPoint *Node, axis, qmin, qmax int) *Node {
	s, z := perChannelParams(x, scale, zeroPoint, axis)
	return fakeQuantAffine(x, s, z, affineSpec{qmin: qmin, qmax: qmax})
}

// FakeQuantPerGroup fake-quantizes x with one scale and zero point per
// group of groupSize consecutive elements along the last axis: for x of
// shape [..., in], scale and zeroPoint have shape [..., in/groupSize]
// (zeroPoint may be nil). in must be a multiple of groupSize. Gradients as
// FakeQuantPerTensor.
func FakeQuantPerGroup(x, scale, zeroPoint *Node, groupSize, qmin, qmax int) *Node {
	xv, s, z, back := perGroupParams(x, scale, zeroPoint, groupSize)
	return back(fakeQuantAffine(xv, s, z, affineSpec{qmin: qmin, qmax: qmax}))
}

// LearnableFakeQuantPerTensor is FakeQuantPerTensor with gradients for the
// scale and the zero point, as torch._fake_quantize_learnable_per_tensor_affine
// (LSQ, and LSQ+ when the zero point is learned). With q = round(zp +
// x/scale) and g the incoming gradient:
//
//	dx     = g                              where qmin <= q <= qmax, else 0
//	dscale = sum g*(xq - x)/scale           inside, with xq the fake-quantized x
//	       + sum g*(qmin - zp) or g*(qmax - zp)  below / above the range
//	dzp    = sum -g*scale                   outside the range, 0 inside
//
// both parameter gradients multiplied by gradFactor (LSQ's 1/sqrt(numel*qmax)).
// zeroPoint may be nil (fixed at 0, no gradient).
func LearnableFakeQuantPerTensor(x, scale, zeroPoint *Node, qmin, qmax int, gradFactor float64) *Node {
	s, z := perTensorParams(x, scale, zeroPoint)
	return fakeQuantAffine(x, s, z, affineSpec{qmin: qmin, qmax: qmax, learnable: true, learnZero: z != nil,
		gradFactor: gradFactor, perTensorBackwardZP: true})
}

// LearnableFakeQuantPerChannel is FakeQuantPerChannel with gradients for
// scale and zero point, as torch._fake_quantize_learnable_per_channel_affine
// (formulas in LearnableFakeQuantPerTensor, summed per channel).
func LearnableFakeQuantPerChannel(x, scale, zeroPoint *Node, axis, qmin, qmax int, gradFactor float64) *Node {
	s, z := perChannelParams(x, scale, zeroPoint, axis)
	return fakeQuantAffine(x, s, z, affineSpec{qmin: qmin, qmax: qmax, learnable: true, learnZero: z != nil,
		gradFactor: gradFactor})
}

// LearnableFakeQuantPerGroup is FakeQuantPerGroup with gradients for scale
// and zero point (formulas in LearnableFakeQuantPerTensor, summed per group).
func LearnableFakeQuantPerGroup(x, scale, zeroPoint *Node, groupSize, qmin, qmax int, gradFactor float64) *Node {
	xv, s, z, back := perGroupParams(x, scale, zeroPoint, groupSize)
	return back(fakeQuantAffine(xv, s, z, affineSpec{qmin: qmin, qmax: qmax, learnable: true, learnZero: z != nil,
		gradFactor: gradFactor}))
}

// perTensorParams reshapes a one-value scale and zero point to scalars.
func perTensorParams(x, scale, zeroPoint *Node) (s, z *Node) {
	if scale.Shape().Size() != 1 {
		panic(fmt.Errorf("quantizers: per-tensor scale must hold one value, got shape %s", scale.Shape()))
	}
	s = Reshape(scale) // a scalar: the backends' fast broadcasting path
	if zeroPoint != nil {
		if zeroPoint.Shape().Size() != 1 {
			panic(fmt.Errorf("quantizers: per-tensor zero point must hold one value, got shape %s", zeroPoint.Shape()))
		}
		z = Reshape(zeroPoint)
	}
	return s, z
}

// perChannelParams reshapes [C] scale and zero point to x's rank with C on
// axis.
func perChannelParams(x, scale, zeroPoint *Node, axis int) (s, z *Node) {
	a, err := normalizeAxis(axis, x.Rank())
	if err != nil {
		panic(err)
	}
	c := x.Shape().Dimensions[a]
	dims := ones(x.Rank())
	dims[a] = c
	check := func(name string, n *Node) *Node {
		if n.Rank() != 1 || n.Shape().Dimensions[0] != c {
			panic(fmt.Errorf("quantizers: per-channel %s must have shape [%d] (axis %d of %s), got %s",
				name, c, axis, x.Shape(), n.Shape()))
		}
		return Reshape(n, dims...)
	}
	s = check("scale", scale)
	if zeroPoint != nil {
		z = check("zero point", zeroPoint)
	}
	return s, z
}

// perGroupParams reshapes x [..., in] to [..., in/G, G] and scale and zero
// point [..., in/G] to [..., in/G, 1]; back restores x's shape.
func perGroupParams(x, scale, zeroPoint *Node, groupSize int) (xv, s, z *Node, back func(*Node) *Node) {
	dims, err := groupedDims(x.Shape().Dimensions, groupSize)
	if err != nil {
		panic(err)
	}
	xv = Reshape(x, dims...)
	pdims := append([]int(nil), dims...)
	pdims[len(pdims)-1] = 1
	want := dims[:len(dims)-1]
	check := func(name string, n *Node) *Node {
		if !slices.Equal(n.Shape().Dimensions, want) {
			panic(fmt.Errorf("quantizers: per-group %s must have shape %v for x %s and group size %d, got %s",
				name, want, x.Shape(), groupSize, n.Shape()))
		}
		return Reshape(n, pdims...)
	}
	s = check("scale", scale)
	if zeroPoint != nil {
		z = check("zero point", zeroPoint)
	}
	orig := x.Shape().Dimensions
	return xv, s, z, func(n *Node) *Node { return Reshape(n, orig...) }
}

// groupedDims returns dims with the last axis split into [in/G, G].
func groupedDims(dims []int, groupSize int) ([]int, error) {
	if len(dims) == 0 {
		return nil, fmt.Errorf("quantizers: per-group quantization needs a tensor of rank >= 1, got a scalar")
	}
	if groupSize <= 0 {
		return nil, fmt.Errorf("quantizers: group size must be positive, got %d", groupSize)
	}
	in := dims[len(dims)-1]
	if in%groupSize != 0 {
		return nil, fmt.Errorf("quantizers: last axis (%d) of shape %v is not a multiple of group size %d", in, dims, groupSize)
	}
	out := append([]int(nil), dims[:len(dims)-1]...)
	return append(out, in/groupSize, groupSize), nil
}

// fakeQuantAffine is the shared affine fake quantization. s and z (z may be
// nil) are scalars or have x's rank with dimensions equal to x's or 1.
func fakeQuantAffine(x, s, z *Node, spec affineSpec) *Node {
	x, back := toComputeDType(x)
	g := x.Graph()
	dt := x.DType()
	s = ConvertDType(s, dt)
	sS := StopGradient(s)
	qminF, qmaxF := float64(spec.qmin), float64(spec.qmax)
	if z != nil {
		z = ConvertDType(z, dt)
	}

	f := fakeQuantForward(x, sS, z, spec.qmin, spec.qmax, true)
	inv := f.inv

	// Backward zero point.
	zB := f.zF
	if spec.learnable && spec.perTensorBackwardZP && z != nil {
		zp := ClipScalar(AddScalar(StopGradient(z), 0.5), qminF, qmaxF)
		zB = Mul(Sign(zp), Floor(Abs(zp))) // int64 cast truncates toward zero.
	}
	// inside marks where the gradient passes to x. PyTorch tests
	// qmin <= zp + nearbyint(x*inv) <= qmax in the plain ops: that is
	// rv == r. The learnable ops test qmin <= xqi <= qmax with
	// xqi = nearbyint(zp + x*inv), where PyTorch's CPU and CUDA builds
	// contract zp + x*inv into one fused multiply-add (a single rounding);
	// without a zero point xqi is rv again. d = clamp(xqi) - zp is the
	// integer offset and xfq = d*scale the fake-quantized value the scale
	// gradient uses: r and y when xqi is rv. All of it is built lazily, in
	// the backward pass only.
	var inside, d, xfq *Node
	lazy := func() {
		if inside != nil {
			return
		}
		if !spec.learnable || z == nil {
			inside = Equal(f.rv, f.r)
			d, xfq = f.r, f.y
			return
		}
		// Clamped to one step beyond the range: enough to tell below,
		// inside and above apart, and small for roundSmall.
		xqi := roundSmall(ClipScalar(fusedMulAdd(StopGradient(x), inv, zB), qminF-1, qmaxF+1))
		inside = LogicalAnd(GreaterOrEqual(xqi, Scalar(g, dt, qminF)), LessOrEqual(xqi, Scalar(g, dt, qmaxF)))
		d = Sub(ClipScalar(xqi, qminF, qmaxF), zB)
		xfq = Mul(d, sS)
	}
	zero := ScalarZero(g, dt)
	xs := IdentityWithCustomGradient(x, func(_, gv *Node) *Node {
		lazy()
		return Where(inside, gv, zero)
	})
	carrier := xs
	if spec.learnable {
		gf := spec.gradFactor
		sW := IdentityWithCustomGradient(s, func(_, gv *Node) *Node { return MulScalar(gv, gf) })
		sF := IdentityWithCustomGradient(BroadcastToDims(sW, x.Shape().Dimensions...), func(_, gv *Node) *Node {
			lazy()
			// (xfq - x)/scale inside the range, (qmin-zp) or (qmax-zp)
			// outside.
			return Mul(gv, Where(inside, Mul(Sub(xfq, StopGradient(x)), inv), d))
		})
		carrier = Add(carrier, sF)
		if z != nil && spec.learnZero {
			zW := IdentityWithCustomGradient(z, func(_, gv *Node) *Node {
				return Mul(gv, MulScalar(sS, gf))
			})
			zFull := IdentityWithCustomGradient(BroadcastToDims(zW, x.Shape().Dimensions...), func(_, gv *Node) *Node {
				lazy()
				return Where(inside, zero, Neg(gv))
			})
			carrier = Add(carrier, zFull)
		}
	}
	return back(Add(f.y, Sub(carrier, StopGradient(carrier))))
}

// forward holds the fake-quantized value y and the intermediate values the
// backward pass reuses.
type forward struct {
	y   *Node
	inv *Node // 1/scale
	v   *Node // x*inv
	// r = round(clamp(v, qmin-zp, qmax-zp)), so y = r*scale; rv is v
	// rounded and clamped one step beyond that range (set on request).
	r, rv *Node
	zF    *Node // the rounded and clamped zero point, nil when z is nil
}

// fakeQuantForward computes the fake-quantized x (no gradient). s and z
// have x's dtype and are scalars or have x's rank; z may be nil. withRV
// also computes rv (two more element-wise ops, one fewer in the backward).
func fakeQuantForward(x, s, z *Node, qmin, qmax int, withRV bool) forward {
	g := x.Graph()
	dt := x.DType()
	qminF, qmaxF := float64(qmin), float64(qmax)
	f := forward{inv: Div(ScalarOne(g, dt), s)}
	lo, hi := Scalar(g, dt, qminF), Scalar(g, dt, qmaxF)
	if z != nil {
		// nearbyint then clamp, as PyTorch treats a float zero point.
		f.zF = ClipScalar(RoundHalfEven(StopGradient(z)), qminF, qmaxF)
		lo, hi = Sub(lo, f.zF), Sub(hi, f.zF)
	}
	f.v = Mul(StopGradient(x), f.inv)
	if withRV {
		f.rv = roundSmall(Min(Max(f.v, AddScalar(lo, -1)), AddScalar(hi, 1)))
		f.r = Min(Max(f.rv, lo), hi)
	} else {
		f.r = roundSmall(Min(Max(f.v, lo), hi))
	}
	// No gradient flows through y: the callers attach their own. Without
	// the stop, reverse-mode autodiff would still differentiate the clamp
	// and rounding chain above (every node on a path to a differentiated
	// variable is visited, even when the path ends in a stopped node).
	f.y = StopGradient(Mul(f.r, s))
	return f
}

// fusedMulAdd returns a*b + c (c may be nil) rounded once, as a fused
// multiply-add does. For float32 it computes in float64, where the product
// of two float32 values is exact and adding a small integer-valued c is
// too, then rounds to float32. float64 inputs are computed directly.
func fusedMulAdd(a, b, c *Node) *Node {
	dt := a.DType()
	if dt != dtypes.Float32 {
		r := Mul(a, b)
		if c != nil {
			r = Add(r, c)
		}
		return r
	}
	r := Mul(ConvertDType(a, dtypes.Float64), ConvertDType(b, dtypes.Float64))
	if c != nil {
		r = Add(r, ConvertDType(c, dtypes.Float64))
	}
	return ConvertDType(r, dt)
}

// ones returns n ones.
func ones(n int) []int {
	d := make([]int, n)
	for i := range d {
		d[i] = 1
	}
	return d
}

// normalizeAxis maps a possibly negative axis into [0, rank).
func normalizeAxis(axis, rank int) (int, error) {
	a := axis
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("quantizers: axis %d out of range for a tensor of rank %d", axis, rank)
	}
	return a, nil
}
