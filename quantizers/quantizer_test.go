package quantizers

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// site is the quantizer scope the tests use.
const site = "x_quant"

// phase selects how a test graph is built.
type phase int

const (
	evalPhase phase = iota
	trainPhase
	calibratePhase
)

// harness runs one quantizer on a context.
type harness struct {
	t       *testing.T
	backend backends.Backend
	ctx     *context.Context
	q       Quantizer
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	q, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return &harness{t: t, backend: newTestBackend(t), ctx: context.New(), q: q}
}

// run builds a fresh graph in the given phase and returns y.
func (h *harness) run(p phase, x *tensors.Tensor) *tensors.Tensor {
	h.t.Helper()
	exec, err := context.NewExec(h.backend, h.ctx, func(ctx *context.Context, x *Node) *Node {
		g := x.Graph()
		ctx.SetTraining(g, p == trainPhase)
		SetCalibrating(ctx, g, p == calibratePhase)
		return h.q.Quantize(ctx.In(site), x)
	})
	if err != nil {
		h.t.Fatalf("exec: %v", err)
	}
	out, err := exec.Exec(x)
	if err != nil {
		h.t.Fatalf("exec: %v", err)
	}
	return out[0]
}

// grads builds a training graph computing y, and the gradients of
// sum(y*gy) with respect to x and to the named quantizer variables.
func (h *harness) grads(x, gy *tensors.Tensor, vars ...string) []*tensors.Tensor {
	h.t.Helper()
	exec, err := context.NewExec(h.backend, h.ctx, func(ctx *context.Context, x, gy *Node) []*Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		qctx := ctx.In(site)
		y := h.q.Quantize(qctx, x)
		wrt := []*Node{x}
		for _, name := range vars {
			wrt = append(wrt, qctx.GetVariable(name).ValueGraph(g))
		}
		return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, gy)), wrt...)...)
	})
	if err != nil {
		h.t.Fatalf("exec: %v", err)
	}
	out, err := exec.Exec(x, gy)
	if err != nil {
		h.t.Fatalf("exec: %v", err)
	}
	return out
}

// v returns a quantizer variable's value as float32s.
func (h *harness) v(name string) []float32 {
	h.t.Helper()
	vr := h.ctx.In(site).GetVariable(name)
	if vr == nil {
		h.t.Fatalf("variable %s/%s not found", site, name)
	}
	return tensors.MustCopyFlatData[float32](vr.MustValue())
}

func flat(t *tensors.Tensor) []float32 { return tensors.MustCopyFlatData[float32](t) }

// refFakeQuant is PyTorch's per-element fake quantization in float32.
func refFakeQuant(x, s, zp float32, qmin, qmax int) float32 {
	inv := 1 / s
	q := zp + float32(math.RoundToEven(float64(x*inv)))
	q = min(max(q, float32(qmin)), float32(qmax))
	return (q - zp) * s
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestMinMaxObserver(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Symmetric = false // uint8 affine
	h := newHarness(t, cfg)
	b1 := tensors.FromValue([]float32{-1, 0.5, 2, 0})
	b2 := tensors.FromValue([]float32{-3, 1, 0.25, 0})
	h.run(trainPhase, b1)
	if mn, mx := h.v(VarMin)[0], h.v(VarMax)[0]; mn != -1 || mx != 2 {
		t.Errorf("after batch 1: range [%v, %v], want [-1, 2]", mn, mx)
	}
	h.run(trainPhase, b2)
	if mn, mx := h.v(VarMin)[0], h.v(VarMax)[0]; mn != -3 || mx != 2 {
		t.Errorf("after batch 2: range [%v, %v], want [-3, 2]", mn, mx)
	}
	s := float32(5) / 255
	if got := h.v(VarScale)[0]; !near(float64(got), float64(s), 1e-9) {
		t.Errorf("scale = %v, want %v", got, s)
	}
	if got := h.v(VarZeroPoint)[0]; got != float32(math.RoundToEven(float64(3/s))) {
		t.Errorf("zero point = %v, want %v", got, math.RoundToEven(float64(3/s)))
	}
	// Evaluation reads the state without changing it.
	y := flat(h.run(evalPhase, tensors.FromValue([]float32{-10, 10, 1})))
	if mn := h.v(VarMin)[0]; mn != -3 {
		t.Errorf("eval changed the running min to %v", mn)
	}
	if y[0] != -3 && !near(float64(y[0]), -3, 1e-6) || !near(float64(y[1]), float64(s)*float64(255-153), 1e-5) {
		t.Errorf("eval y = %v: want clipped to the observed range", y)
	}
	// Calibration graphs observe too; frozen observers do not.
	h.run(calibratePhase, tensors.FromValue([]float32{-4, 1}))
	if mn := h.v(VarMin)[0]; mn != -4 {
		t.Errorf("calibration did not observe: min %v", mn)
	}
	if err := SetFrozen(h.ctx, FreezeObservers, true); err != nil {
		t.Fatal(err)
	}
	h.run(trainPhase, tensors.FromValue([]float32{-9, 9}))
	if mn, mx := h.v(VarMin)[0], h.v(VarMax)[0]; mn != -4 || mx != 2 {
		t.Errorf("frozen observer moved to [%v, %v]", mn, mx)
	}
}

func TestEMAObserverPerChannel(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Momentum = 0.9
	cfg.Granularity = PerChannel
	cfg.Axis = -1
	h := newHarness(t, cfg)
	h.run(trainPhase, tensors.FromValue([][]float32{{-1, 4}, {2, -2}}))
	h.run(trainPhase, tensors.FromValue([][]float32{{-3, 1}, {1, 0}}))
	wantMin := []float64{0.9*-1 + 0.1*-3, 0.9*-2 + 0.1*0}
	wantMax := []float64{0.9*2 + 0.1*1, 0.9*4 + 0.1*1}
	mn, mx := h.v(VarMin), h.v(VarMax)
	for c := range 2 {
		if !near(float64(mn[c]), wantMin[c], 1e-6) || !near(float64(mx[c]), wantMax[c], 1e-6) {
			t.Errorf("channel %d: range [%v, %v], want [%v, %v]", c, mn[c], mx[c], wantMin[c], wantMax[c])
		}
		// Symmetric signed: scale = max(|min|, max) / 127.5.
		want := math.Max(-wantMin[c], wantMax[c]) / 127.5
		if s := h.v(VarScale)[c]; !near(float64(s), want, 1e-7) {
			t.Errorf("channel %d: scale %v, want %v", c, s, want)
		}
	}
}

func TestPercentileObserver(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1000
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i) - 500 // -500 .. 499
	}
	rng.Shuffle(n, func(i, j int) { x[i], x[j] = x[j], x[i] })
	for _, tc := range []struct {
		name      string
		symmetric bool
		p         float64
	}{{"symmetric 99", true, 99}, {"asymmetric 99", false, 99}, {"asymmetric 90", false, 90}} {
		cfg := DefaultConfig()
		cfg.Method, cfg.Percentile, cfg.Symmetric = MethodPercentile, tc.p, tc.symmetric
		h := newHarness(t, cfg)
		h.run(trainPhase, tensors.FromValue(x))
		mn, mx := float64(h.v(VarMin)[0]), float64(h.v(VarMax)[0])
		var wantMin, wantMax float64
		if tc.symmetric {
			abs := make([]float64, n)
			for i, v := range x {
				abs[i] = math.Abs(float64(v))
			}
			wantMax = nearestRank(abs, tc.p/100)
			wantMin = -wantMax
		} else {
			vals := make([]float64, n)
			for i, v := range x {
				vals[i] = float64(v)
			}
			wantMin, wantMax = nearestRank(vals, 1-tc.p/100), nearestRank(vals, tc.p/100)
		}
		tol := 1000.0 / (1 << 23)
		if !near(mn, wantMin, tol) || !near(mx, wantMax, tol) {
			t.Errorf("%s: range [%v, %v], want [%v, %v]", tc.name, mn, mx, wantMin, wantMax)
		}
	}
}

// nearestRank returns the smallest value with at least ceil(q*n) values <= it.
func nearestRank(v []float64, q float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := max(1, int(math.Ceil(q*float64(len(s)))))
	return s[k-1]
}

func TestMSEObserver(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 512)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	x[0] = 12 // an outlier that min/max would keep
	cfg := DefaultConfig()
	cfg.Method, cfg.Bits = MethodMSE, 4
	h := newHarness(t, cfg)
	h.run(calibratePhase, tensors.FromValue(x))
	gotMax := float64(h.v(VarMax)[0])
	// Brute force over the same grid in float64.
	_, absMax := 0.0, 0.0
	minV := 0.0
	for _, v := range x {
		absMax = math.Max(absMax, float64(v))
		minV = math.Min(minV, float64(v))
	}
	qmin, qmax := cfg.QRange()
	mse := func(f float64) float64 {
		s := math.Max(-minV*f, absMax*f) / (float64(qmax-qmin) / 2)
		e := 0.0
		for _, v := range x {
			q := math.Min(math.Max(math.RoundToEven(float64(v)/s), float64(qmin)), float64(qmax))
			e += (q*s - float64(v)) * (q*s - float64(v))
		}
		return e
	}
	best, bestF := math.Inf(1), 0.0
	for i := MSEGridSize; i >= 1; i-- {
		f := float64(i) / MSEGridSize
		if e := mse(f); e < best {
			best, bestF = e, f
		}
	}
	gotF := gotMax / absMax
	if e := mse(gotF); e > best*(1+1e-4) {
		t.Errorf("mse range factor %.3f has error %.6g, brute force picks %.3f with %.6g", gotF, e, bestF, best)
	}
	if gotF > 0.9 {
		t.Errorf("mse kept the outlier's range (factor %.3f)", gotF)
	}
}

func TestDynamicObserver(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dynamic = true
	h := newHarness(t, cfg)
	x := []float32{-2.55, 1, 0.3}
	y := flat(h.run(evalPhase, tensors.FromValue(x)))
	s := float32(2.55) / 127.5
	for i := range x {
		if want := refFakeQuant(x[i], s, 0, -128, 127); y[i] != want {
			t.Errorf("y[%d] = %v, want %v", i, y[i], want)
		}
	}
	if h.ctx.In(site).GetVariable(VarMin) != nil {
		t.Error("a dynamic quantizer created observer state")
	}
}

func TestLSQInit(t *testing.T) {
	x := [][]float32{{0.5, -1, 2, 0}, {0.1, 0.2, -0.3, 0.4}, {3, 3, -3, 3}}
	for _, tc := range []struct {
		name string
		gran Granularity
		want []float64
	}{
		{"per-tensor", PerTensor, []float64{2 * (3.5 + 1.0 + 12) / 12 / math.Sqrt(7)}},
		{"per-channel", PerChannel, []float64{2 * 3.5 / 4 / math.Sqrt(7), 2 * 1.0 / 4 / math.Sqrt(7), 2 * 12.0 / 4 / math.Sqrt(7)}},
	} {
		cfg := DefaultConfig()
		cfg.Method, cfg.Bits, cfg.Granularity = MethodLSQ, 4, tc.gran
		h := newHarness(t, cfg)
		// Evaluation before initialisation uses the batch but stores nothing.
		h.run(evalPhase, tensors.FromValue(x))
		if h.v(VarInitialized)[0] != 0 {
			t.Errorf("%s: evaluation initialised the quantizer", tc.name)
		}
		h.run(trainPhase, tensors.FromValue(x))
		if h.v(VarInitialized)[0] != 1 {
			t.Errorf("%s: training did not initialise the quantizer", tc.name)
		}
		got := h.v(VarScale)
		for i, w := range tc.want {
			if !near(float64(got[i]), w, 1e-6) {
				t.Errorf("%s: scale[%d] = %v, want %v", tc.name, i, got[i], w)
			}
		}
		// A second batch does not re-initialise.
		h.run(trainPhase, tensors.FromValue([][]float32{{9, 9, 9, 9}, {9, 9, 9, 9}, {9, 9, 9, 9}}))
		if got2 := h.v(VarScale); got2[0] != got[0] {
			t.Errorf("%s: scale re-initialised to %v", tc.name, got2[0])
		}
	}
}

func TestLSQPlusInitAndGradients(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Method, cfg.Symmetric = MethodLSQPlus, false
	h := newHarness(t, cfg)
	x := tensors.FromValue([]float32{-1, 0.25, 0.5, 4, 6, -2})
	h.run(trainPhase, x)
	s, z := h.v(VarScale)[0], h.v(VarZeroPoint)[0]
	if !near(float64(s), 8.0/255, 1e-8) || z != float32(math.RoundToEven(2/(8.0/255))) {
		t.Errorf("lsq+ minmax init: scale %v zp %v, want %v %v", s, z, 8.0/255, math.RoundToEven(2/(8.0/255)))
	}
	learned := LearnedVariables(h.ctx)
	if len(learned) != 2 {
		t.Fatalf("LearnedVariables = %v, want scale and zero_point", learned)
	}
	gy := tensors.FromValue([]float32{1, 1, 1, 1, 1, 1})
	x2 := tensors.FromValue([]float32{-3, 0.25, 0.5, 4, 7, -2}) // -3 and 7 are outside
	out := h.grads(x2, gy, VarScale, VarZeroPoint)
	dx, ds, dz := flat(out[1]), flat(out[2])[0], flat(out[3])[0]
	wantDx := []float32{0, 1, 1, 1, 0, 1}
	for i := range wantDx {
		if dx[i] != wantDx[i] {
			t.Errorf("dx = %v, want %v", dx, wantDx)
			break
		}
	}
	if ds == 0 || dz == 0 {
		t.Errorf("learned parameters got no gradient: dscale %v dzero_point %v", ds, dz)
	}
	if err := SetFrozen(h.ctx, FreezeLearned, true); err != nil {
		t.Fatal(err)
	}
	out = h.grads(x2, gy, VarScale, VarZeroPoint)
	if ds, dz := flat(out[2])[0], flat(out[3])[0]; ds != 0 || dz != 0 {
		t.Errorf("frozen parameters got gradients: dscale %v dzero_point %v", ds, dz)
	}
}

func TestPACTQuantizer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Method, cfg.Symmetric, cfg.Bits, cfg.Percentile, cfg.AlphaL2 = MethodPACT, false, 4, 90, 0.01
	h := newHarness(t, cfg)
	x := make([]float32, 100)
	for i := range x {
		x[i] = float32(i) / 10 // 0 .. 9.9
	}
	var reg []float32
	exec, err := context.NewExec(h.backend, h.ctx, func(ctx *context.Context, x *Node) (*Node, *Node) {
		ctx.SetTraining(x.Graph(), true)
		y := h.q.Quantize(ctx.In(site), x)
		r := RegularizationLoss(ctx, x.Graph())
		if r == nil {
			t.Fatal("RegularizationLoss is nil with alpha_l2 set")
		}
		return y, r
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromValue(x))
	if err != nil {
		t.Fatal(err)
	}
	reg = flat(out[1])
	alpha := h.v(VarAlpha)[0]
	if !near(float64(alpha), 8.9, 1e-5) { // 90th nearest-rank value of 0..9.9
		t.Errorf("alpha init = %v, want 8.9", alpha)
	}
	if !near(float64(reg[0]), 0.01*float64(alpha)*float64(alpha), 1e-6) {
		t.Errorf("regularization = %v, want %v", reg[0], 0.01*alpha*alpha)
	}
	y := flat(out[0])
	if y[99] != alpha || y[0] != 0 {
		t.Errorf("y[0], y[99] = %v, %v, want 0 and alpha %v", y[0], y[99], alpha)
	}
}

func TestEnabledAndVariables(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Bits = 2
	h := newHarness(t, cfg)
	x := tensors.FromValue([]float32{0.3, -0.7, 1.1})
	y := flat(h.run(trainPhase, x))
	if y[0] == 0.3 {
		t.Fatalf("2-bit quantizer left 0.3 unchanged: %v", y)
	}
	if err := SetEnabled(h.ctx, false); err != nil {
		t.Fatal(err)
	}
	y = flat(h.run(trainPhase, tensors.FromValue([]float32{0.3, -0.7, 5})))
	for i, want := range []float32{0.3, -0.7, 5} {
		if y[i] != want {
			t.Errorf("disabled quantizer changed x[%d] to %v", i, y[i])
		}
	}
	if mx := h.v(VarMax)[0]; mx != 5 {
		t.Errorf("disabled observer did not observe: max %v", mx)
	}
	vars := Variables(h.ctx)
	names := map[string]bool{}
	for _, v := range vars {
		names[v.Name()] = true
		if v.Trainable {
			t.Errorf("observer variable %s is trainable", v.Name())
		}
	}
	for _, n := range []string{VarMin, VarMax, VarScale, VarZeroPoint, VarInitialized, VarFrozen, VarEnabled} {
		if !names[n] {
			t.Errorf("Variables() lacks %s", n)
		}
	}
	// Variables outside a *_quant scope are not quantizer state.
	other := h.ctx.In("fc1").VariableWithValue(VarScale, float32(1))
	if IsQuantizerVariable(other) {
		t.Error("fc1/scale counted as a quantizer variable")
	}
}

func TestPerGroupQuantizer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Granularity, cfg.GroupSize, cfg.Bits = PerGroup, 2, 4
	h := newHarness(t, cfg)
	x := tensors.FromValue([][]float32{{1, -0.5, 8, 4}, {0.1, 0.05, -2, 1}})
	y := flat(h.run(calibratePhase, x))
	if got := h.ctx.In(site).GetVariable(VarScale).Shape().Dimensions; len(got) != 2 || got[0] != 2 || got[1] != 2 {
		t.Fatalf("per-group scale shape %v, want [2 2]", got)
	}
	// Each group's largest magnitude is representable exactly (it maps to
	// -8 or 7.5 steps; 7.5 rounds to 8 and clips to 7).
	sc := h.v(VarScale)
	for i, want := range []float64{1.0 / 7.5, 8.0 / 7.5, 0.1 / 7.5, 2.0 / 7.5} {
		if !near(float64(sc[i]), want, 1e-7) {
			t.Errorf("scale[%d] = %v, want %v", i, sc[i], want)
		}
	}
	xs := flat(x)
	for i := range xs {
		if want := refFakeQuant(xs[i], sc[i/2], 0, -8, 7); y[i] != want {
			t.Errorf("y[%d] = %v, want %v", i, y[i], want)
		}
	}
	bad := newHarness(t, cfg)
	exec, err := context.NewExec(bad.backend, bad.ctx, func(ctx *context.Context, x *Node) *Node {
		return bad.q.Quantize(ctx.In(site), x)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Exec(tensors.FromValue([]float32{1, 2, 3})); err == nil {
		t.Error("per-group quantization of 3 inputs with group size 2 did not fail")
	}
}

func TestLearnedInitVariants(t *testing.T) {
	x := make([]float32, 200)
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range x {
		x[i] = float32(rng.NormFloat64()) + 1
	}
	x[0] = 30 // outlier
	mn, mx := 0.0, 0.0
	sumAbs := 0.0
	for _, v := range x {
		mn, mx = math.Min(mn, float64(v)), math.Max(mx, float64(v))
		sumAbs += math.Abs(float64(v))
	}
	t.Run("lsq asymmetric", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Method, cfg.Symmetric, cfg.Bits = MethodLSQ, false, 4
		h := newHarness(t, cfg)
		h.run(trainPhase, tensors.FromValue(x))
		s := 2 * sumAbs / 200 / math.Sqrt(15)
		if got := h.v(VarScale)[0]; !near(float64(got), s, 1e-6) {
			t.Errorf("scale %v, want %v", got, s)
		}
		wantZ := math.Min(math.Max(-math.RoundToEven(float64(float32(mn)/float32(s))), 0), 15)
		if got := h.v(VarZeroPoint)[0]; float64(got) != wantZ {
			t.Errorf("zero point %v, want %v", got, wantZ)
		}
		if len(LearnedVariables(h.ctx)) != 1 {
			t.Errorf("lsq learns %d variables, want the scale only", len(LearnedVariables(h.ctx)))
		}
	})
	t.Run("lsq+ mse", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Method, cfg.Symmetric, cfg.Bits, cfg.Init = MethodLSQPlus, false, 4, InitMSE
		h := newHarness(t, cfg)
		h.run(calibratePhase, tensors.FromValue(x))
		// The same range as the mse observer, narrower than min/max.
		ocfg := DefaultConfig()
		ocfg.Method, ocfg.Symmetric, ocfg.Bits = MethodMSE, false, 4
		o := newHarness(t, ocfg)
		o.run(calibratePhase, tensors.FromValue(x))
		s, z := h.v(VarScale)[0], h.v(VarZeroPoint)[0]
		if s != o.v(VarScale)[0] || z != o.v(VarZeroPoint)[0] {
			t.Errorf("lsq+ mse init (%v, %v) differs from the mse observer (%v, %v)", s, z, o.v(VarScale)[0], o.v(VarZeroPoint)[0])
		}
		if full := (mx - mn) / 15; float64(s) >= full {
			t.Errorf("mse-initialised scale %v, want below the min/max scale %v", s, full)
		}
		if len(LearnedVariables(h.ctx)) != 2 {
			t.Errorf("asymmetric lsq+ learns %d variables, want scale and zero point", len(LearnedVariables(h.ctx)))
		}
	})
}
