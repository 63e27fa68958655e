package quantizers

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
)

// panicf raises a graph-building error; context.Exec and the trainer return
// it as an error.
func panicf(format string, args ...any) {
	panic(fmt.Errorf("quantizers: "+format, args...))
}

// observer implements minmax, percentile and mse: the range comes from data
// statistics, kept as a running range (min of mins / max of maxes, or an
// EMA when Momentum > 0) in non-trainable variables, or recomputed per
// batch when Dynamic.
type observer struct{ cfg Config }

func newObserver(cfg Config) (Quantizer, error) { return observer{cfg: cfg}, nil }

// Config implements Quantizer.
func (q observer) Config() Config { return q.cfg }

// batchRange returns the method's range estimate for the batch view x.
func (q observer) batchRange(x *Node, l layout) (mn, mx *Node) {
	switch q.cfg.Method {
	case MethodPercentile:
		return batchPercentile(x, l, q.cfg.Percentile, q.cfg.Symmetric)
	case MethodMSE:
		mn, mx = batchMinMax(x, l)
		return batchMSERange(x, l, mn, mx, q.cfg)
	default:
		return batchMinMax(x, l)
	}
}

// Quantize implements Quantizer.
func (q observer) Quantize(ctx *context.Context, x *Node) *Node {
	cfg := q.cfg
	l, err := newLayout(cfg, x.Shape())
	if err != nil {
		panicf("%s: %v", ctx.Scope(), err)
	}
	g := x.Graph()
	xc, back := toComputeDType(x)
	view := l.view(xc)
	qmin, qmax := cfg.QRange()
	f := newFlags(ctx)
	spec := affineSpec{qmin: qmin, qmax: qmax}

	var s, z *Node
	if cfg.Dynamic {
		mn, mx := q.batchRange(StopGradient(view), l)
		s, z = qparamsFromRange(f32(mn), f32(mx), cfg)
	} else {
		vMin := paramVar(ctx, VarMin, l.paramDims, 0, false)
		vMax := paramVar(ctx, VarMax, l.paramDims, 0, false)
		vScale := paramVar(ctx, VarScale, l.paramDims, 1, false)
		vZero := paramVar(ctx, VarZeroPoint, l.paramDims, 0, false)
		obs := observing(ctx, g)
		if !obs && hostFlag(f.initialized) {
			s, z = l.toB(vScale.ValueGraph(g)), l.toB(vZero.ValueGraph(g))
		} else {
			bmn, bmx := q.batchRange(StopGradient(view), l)
			bmn, bmx = l.toParam(f32(bmn)), l.toParam(f32(bmx))
			init := isSet(f.initialized, g)
			runMin, runMax := vMin.ValueGraph(g), vMax.ValueGraph(g)
			if obs {
				var updMin, updMax *Node
				if m := cfg.Momentum; m > 0 {
					updMin = Add(MulScalar(runMin, m), MulScalar(bmn, 1-m))
					updMax = Add(MulScalar(runMax, m), MulScalar(bmx, 1-m))
				} else {
					updMin, updMax = Min(runMin, bmn), Max(runMax, bmx)
				}
				frozen := isSet(f.frozen, g)
				runMin = Where(init, Where(frozen, runMin, updMin), bmn)
				runMax = Where(init, Where(frozen, runMax, updMax), bmx)
				vMin.SetValueGraph(runMin)
				vMax.SetValueGraph(runMax)
				f.initialized.SetValueGraph(OnesLike(f.initialized.ValueGraph(g)))
			} else {
				runMin, runMax = Where(init, runMin, bmn), Where(init, runMax, bmx)
			}
			s, z = qparamsFromRange(l.toB(runMin), l.toB(runMax), cfg)
			if z == nil {
				z = ZerosLike(s)
			}
			if obs {
				vScale.SetValueGraph(l.toParam(s))
				vZero.SetValueGraph(l.toParam(z))
			}
		}
		if cfg.Symmetric && cfg.IsSigned() {
			z = nil
		}
	}
	y := fakeQuantAffine(view, ConvertDType(s, view.DType()), convertOrNil(z, view.DType()), spec)
	return back(f.gate(xc, l.back(y)))
}

// lsq implements lsq (learned scale; zero point fixed after
// initialisation) and lsq+ (learned scale and, for asymmetric schemes,
// learned zero point), with PyTorch's learnable fake-quant gradients and
// grad factor 1/sqrt(numel*qmax).
type lsq struct{ cfg Config }

func newLSQ(cfg Config) (Quantizer, error) {
	if cfg.Init == "" {
		cfg.Init = InitLSQ
		if cfg.Method == MethodLSQPlus {
			cfg.Init = InitMinMax
		}
	}
	return lsq{cfg: cfg}, nil
}

// Config implements Quantizer.
func (q lsq) Config() Config { return q.cfg }

// initRange returns the initial scale and zero point from the batch view.
func (q lsq) initRange(x *Node, l layout) (s, z *Node) {
	cfg := q.cfg
	_, qmax := cfg.QRange()
	switch cfg.Init {
	case InitMSE:
		mn, mx := batchMinMax(x, l)
		mn, mx = batchMSERange(x, l, mn, mx, cfg)
		s, z = qparamsFromRange(mn, mx, cfg)
	case InitMinMax:
		mn, mx := batchMinMax(x, l)
		s, z = qparamsFromRange(mn, mx, cfg)
	default:
		s = lsqInitScale(x, l, qmax)
		if !cfg.Symmetric {
			// The zero point that puts the batch minimum at qmin.
			qmin, _ := cfg.QRange()
			mn, _ := batchMinMax(x, l)
			z = ClipScalar(Sub(Scalar(x.Graph(), x.DType(), float64(qmin)),
				RoundHalfEven(Div(MinScalar(mn, 0), s))), float64(qmin), float64(qmax))
		} else if !cfg.IsSigned() {
			_, z = qparamsFromRange(ZerosLike(s), ZerosLike(s), cfg)
		}
	}
	if z == nil {
		z = ZerosLike(s)
	}
	return s, z
}

// Quantize implements Quantizer.
func (q lsq) Quantize(ctx *context.Context, x *Node) *Node {
	cfg := q.cfg
	l, err := newLayout(cfg, x.Shape())
	if err != nil {
		panicf("%s: %v", ctx.Scope(), err)
	}
	g := x.Graph()
	xc, back := toComputeDType(x)
	view := l.view(xc)
	qmin, qmax := cfg.QRange()
	f := newFlags(ctx)
	learnZero := cfg.Method == MethodLSQPlus && !cfg.Symmetric
	vScale := paramVar(ctx, VarScale, l.paramDims, 1, true)
	vZero := paramVar(ctx, VarZeroPoint, l.paramDims, 0, learnZero)

	s, z := vScale.ValueGraph(g), vZero.ValueGraph(g)
	if !hostFlag(f.initialized) {
		is, iz := q.initRange(f32(StopGradient(view)), l)
		init := isSet(f.initialized, g)
		s = Where(init, s, l.toParam(is))
		z = Where(init, z, l.toParam(iz))
		if observing(ctx, g) {
			vScale.SetValueGraph(s)
			vZero.SetValueGraph(z)
			f.initialized.SetValueGraph(OnesLike(f.initialized.ValueGraph(g)))
		}
	}
	frozen := isSet(f.frozen, g)
	s = MaxScalar(Where(frozen, StopGradient(s), s), scaleEpsilon)
	if learnZero {
		z = Where(frozen, StopGradient(z), z)
	} else {
		z = StopGradient(z)
	}
	if cfg.Symmetric && cfg.IsSigned() {
		z = nil
	}
	gradFactor := 1 / math.Sqrt(float64(x.Shape().Size())*float64(qmax))
	spec := affineSpec{qmin: qmin, qmax: qmax, learnable: true, learnZero: learnZero, gradFactor: gradFactor,
		perTensorBackwardZP: cfg.Granularity == PerTensor}
	y := fakeQuantAffine(view, ConvertDType(l.toB(s), view.DType()), convertOrNil(bOrNil(l, z), view.DType()), spec)
	return back(f.gate(xc, l.back(y)))
}

// pact implements PACT: a learned clipping level alpha per tensor,
// initialised to the Percentile-th percentile of the first batch, with an
// optional L2 penalty AlphaL2*alpha^2 added to the training loss.
type pact struct{ cfg Config }

func newPACT(cfg Config) (Quantizer, error) { return pact{cfg: cfg}, nil }

// Config implements Quantizer.
func (q pact) Config() Config { return q.cfg }

// pactMinAlpha is the smallest initial alpha (a batch with no positive
// values would otherwise give 0).
const pactMinAlpha = 1e-5

// Quantize implements Quantizer.
func (q pact) Quantize(ctx *context.Context, x *Node) *Node {
	cfg := q.cfg
	l, err := newLayout(cfg, x.Shape())
	if err != nil {
		panicf("%s: %v", ctx.Scope(), err)
	}
	g := x.Graph()
	xc, back := toComputeDType(x)
	_, n := cfg.QRange()
	f := newFlags(ctx)
	vAlpha := paramVar(ctx, VarAlpha, []int{1}, 1, true)
	a := vAlpha.ValueGraph(g)
	if !hostFlag(f.initialized) {
		ia := MaxScalar(quantile(f32(StopGradient(xc)), l, cfg.Percentile/100), pactMinAlpha)
		a = Where(isSet(f.initialized, g), a, Reshape(ia, 1))
		if observing(ctx, g) {
			vAlpha.SetValueGraph(a)
			f.initialized.SetValueGraph(OnesLike(f.initialized.ValueGraph(g)))
		}
	}
	a = MaxScalar(Where(isSet(f.frozen, g), StopGradient(a), a), pactMinAlpha)
	if cfg.AlphaL2 > 0 && ctx.IsTraining(g) {
		addRegularization(ctx, MulScalar(ReduceAllSum(Square(a)), cfg.AlphaL2))
	}
	y := pactLevels(xc, ConvertDType(a, xc.DType()), n)
	return back(f.gate(xc, y))
}

// f32 converts a node to float32 (quantizer state is float32).
func f32(n *Node) *Node {
	if n.DType() == dtypes.Float32 {
		return n
	}
	return ConvertDType(n, dtypes.Float32)
}

// convertOrNil converts n to dt, keeping nil.
func convertOrNil(n *Node, dt dtypes.DType) *Node {
	if n == nil {
		return nil
	}
	return ConvertDType(n, dt)
}

// bOrNil reshapes a stored-shape parameter to the view's rank, keeping nil.
func bOrNil(l layout, n *Node) *Node {
	if n == nil {
		return nil
	}
	return l.toB(n)
}
