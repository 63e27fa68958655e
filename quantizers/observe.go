package quantizers

import (
	"math"

	"github.com/gomlx/gopjrt/dtypes"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// MSEGridSize is how many candidate ranges the mse method tries: the
// observed range shrunk by factors i/MSEGridSize, i = 1..MSEGridSize.
const MSEGridSize = 100

// percentileIterations is the number of bisection steps of the percentile
// search: the result is within (max-min)/2^24 of the order statistic, the
// float32 resolution of the range.
const percentileIterations = 24

// scaleEpsilon is the smallest scale an observer or learned range gives,
// float32's machine epsilon as in PyTorch's observers.
const scaleEpsilon = 1.1920928955078125e-07

// batchMinMax returns the minimum and maximum of x over the layout's
// reduced axes, with the view's rank.
func batchMinMax(x *Node, l layout) (mn, mx *Node) {
	return l.reduce(x, ReduceMin), l.reduce(x, ReduceMax)
}

// batchPercentile returns the range the percentile method uses: for a
// symmetric scheme [-t, t] with t the p-th percentile of |x|, otherwise the
// (100-p)-th and p-th percentiles of x, over the layout's reduced axes.
// Percentiles are nearest-rank (the smallest value t with at least
// ceil(p/100*n) elements <= t), found by bisection inside the graph.
func batchPercentile(x *Node, l layout, p float64, symmetric bool) (mn, mx *Node) {
	if symmetric {
		t := quantile(Abs(x), l, p/100)
		return Neg(t), t
	}
	return quantile(x, l, 1-p/100), quantile(x, l, p/100)
}

// quantile returns, per parameter, the smallest t with at least
// max(1, ceil(q*n)) of the n reduced elements <= t, to within the bisection
// resolution (from above).
func quantile(x *Node, l layout, q float64) *Node {
	n := l.reduced()
	k := int(math.Ceil(q * float64(n)))
	lo, hi := batchMinMax(x, l)
	if k <= 1 {
		return lo
	}
	if k >= n {
		return hi
	}
	g := x.Graph()
	kNode := Scalar(g, dtypes.Int32, k)
	count := func(t *Node) *Node {
		return l.reduce(ConvertDType(LessOrEqual(x, t), dtypes.Int32), ReduceSum)
	}
	lo0 := lo
	for range percentileIterations {
		mid := MulScalar(Add(lo, hi), 0.5)
		ok := GreaterOrEqual(count(mid), kNode)
		hi = Where(ok, mid, hi)
		lo = Where(ok, lo, mid)
	}
	// Many values equal to the minimum (zeros after a ReLU) make the
	// minimum itself the answer.
	return Where(GreaterOrEqual(count(lo0), kNode), lo0, hi)
}

// batchMSERange returns the range, among the observed [mn, mx] shrunk by
// i/MSEGridSize (i = 1..MSEGridSize), whose quantization of x has the least
// squared error, per parameter. Ties keep the wider range.
func batchMSERange(x *Node, l layout, mn, mx *Node, cfg Config) (bestMn, bestMx *Node) {
	qmin, qmax := cfg.QRange()
	var bestErr *Node
	for i := MSEGridSize; i >= 1; i-- {
		f := float64(i) / MSEGridSize
		cmn, cmx := MulScalar(mn, f), MulScalar(mx, f)
		s, z := qparamsFromRange(cmn, cmx, cfg)
		y := fakeQuantForward(x, s, z, qmin, qmax, false).y
		err := l.reduce(Square(Sub(y, x)), ReduceSum)
		if bestErr == nil {
			bestErr, bestMn, bestMx = err, cmn, cmx
			continue
		}
		better := LessThan(err, bestErr)
		bestErr = Where(better, err, bestErr)
		bestMn = Where(better, cmn, bestMn)
		bestMx = Where(better, cmx, bestMx)
	}
	return bestMn, bestMx
}

// qparamsFromRange returns scale and zero point for the range [mn, mx]
// (widened to include 0) as PyTorch's MinMaxObserver computes them:
//
//	symmetric:  scale = max(-mn, mx) / ((qmax-qmin)/2), zp = 0 when signed,
//	            (qmin+qmax+1)/2 when unsigned
//	asymmetric: scale = (mx - mn) / (qmax - qmin),
//	            zp = clamp(qmin - round(mn/scale), qmin, qmax)
//
// with scale at least scaleEpsilon. z is nil for signed symmetric schemes
// (zero point 0).
func qparamsFromRange(mn, mx *Node, cfg Config) (s, z *Node) {
	qmin, qmax := cfg.QRange()
	mn, mx = MinScalar(mn, 0), MaxScalar(mx, 0)
	if cfg.Symmetric {
		s = MaxScalar(Div(Max(Neg(mn), mx), Scalar(mn.Graph(), mn.DType(), float64(qmax-qmin)/2)), scaleEpsilon)
		if cfg.IsSigned() {
			return s, nil
		}
		return s, AddScalar(ZerosLike(s), float64((qmin+qmax+1)/2))
	}
	s = MaxScalar(Div(Sub(mx, mn), Scalar(mn.Graph(), mn.DType(), float64(qmax-qmin))), scaleEpsilon)
	z = ClipScalar(Sub(Scalar(mn.Graph(), mn.DType(), float64(qmin)), RoundHalfEven(Div(mn, s))), float64(qmin), float64(qmax))
	return s, z
}

// lsqInitScale returns LSQ's initial step 2*mean(|x|)/sqrt(qmax) over the
// layout's reduced axes, at least scaleEpsilon.
func lsqInitScale(x *Node, l layout, qmax int) *Node {
	m := l.reduce(Abs(x), ReduceMean)
	return MaxScalar(MulScalar(m, 2/math.Sqrt(float64(qmax))), scaleEpsilon)
}
