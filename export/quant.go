package export

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/quantizers"
	"github.com/qatclip/qatclip/recipes"
)

// Values the quantizers use internally, reproduced here so that exported
// parameters are the ones the fake-quant graph used.
const (
	// scaleEpsilon is the smallest scale an lsq quantizer uses.
	scaleEpsilon float32 = 1.1920928955078125e-07
	// pactMinAlpha is the smallest clipping level PACT uses.
	pactMinAlpha float32 = 1e-5
)

// site is one quantized site of a model and its quantizer state, read from
// the model's context.
type site struct {
	module string
	site   layers.Site
	cfg    quantizers.Config
	// scale is the effective step, shaped paramDims; nil when dynamic.
	scale     []float32
	paramDims []int
	// zero is the effective zero point (rounded and clamped, in the
	// scheme's own range); nil when the scheme has none (symmetric signed).
	zero []float32
	// alpha is PACT's clipping level.
	alpha float32
}

// static reports whether the site has stored parameters.
func (s *site) static() bool { return !s.cfg.Dynamic }

// shift is what is added to the scheme's integers to store them signed, as
// compressed-tensors' int type is: -2^(b-1) for unsigned schemes, else 0.
func shift(cfg quantizers.Config) int {
	if cfg.IsSigned() {
		return 0
	}
	return -(1 << (cfg.Bits - 1))
}

// signedRange returns the stored integers' range: the scheme's range
// shifted by shift(cfg).
func signedRange(cfg quantizers.Config) (lo, hi int) {
	lo, hi = cfg.QRange()
	return lo + shift(cfg), hi + shift(cfg)
}

// collectSites lists the quantized sites of plan with their state from ctx
// (the scope holding the model's variables). Sites whose quantizer is
// disabled are left out: the model runs them in float.
func collectSites(ctx *context.Context, plan *recipes.Plan) ([]*site, error) {
	var out []*site
	add := func(module string, s layers.Site, cfg *quantizers.Config) error {
		if cfg == nil || cfg.Method == quantizers.MethodNone {
			return nil
		}
		st, on, err := readSite(ctx, module, s, *cfg)
		if err != nil {
			return err
		}
		if on {
			out = append(out, st)
		}
		return nil
	}
	for _, l := range plan.Layers {
		if err := add(l.Module, layers.SiteWeight, l.Weights); err != nil {
			return nil, err
		}
		if err := add(l.Module, layers.SiteInput, l.Activations); err != nil {
			return nil, err
		}
	}
	for _, a := range plan.Attention {
		for _, s := range []layers.Site{layers.SiteAttnQuery, layers.SiteAttnKey, layers.SiteAttnProbs, layers.SiteAttnValue} {
			if err := add(a.Module, s, a.Activations); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// readSite reads the state of one quantizer. It reports false when the
// quantizer is disabled.
func readSite(ctx *context.Context, module string, s layers.Site, cfg quantizers.Config) (*site, bool, error) {
	scope := ctx.In(module).In(quantizers.ScopeName(s.String())).Scope()
	read := func(name string) ([]float32, []int, error) {
		v := ctx.GetVariableByScopeAndName(scope, name)
		if v == nil {
			return nil, nil, fmt.Errorf("quantizer %s: variable %q is missing (was the model calibrated or trained with this recipe?)", scope, name)
		}
		t, err := v.Value()
		if err != nil {
			return nil, nil, fmt.Errorf("quantizer %s: %s: %w", scope, name, err)
		}
		data, err := floats(t)
		if err != nil {
			return nil, nil, fmt.Errorf("quantizer %s: %s: %w", scope, name, err)
		}
		return data, t.Shape().Dimensions, nil
	}
	st := &site{module: module, site: s, cfg: cfg}
	if v := ctx.GetVariableByScopeAndName(scope, quantizers.VarEnabled); v != nil {
		on, _, err := read(quantizers.VarEnabled)
		if err != nil {
			return nil, false, err
		}
		if len(on) == 1 && on[0] == 0 {
			return nil, false, nil
		}
	}
	if cfg.Dynamic {
		return st, true, nil
	}
	init, _, err := read(quantizers.VarInitialized)
	if err != nil {
		return nil, false, err
	}
	if len(init) != 1 || init[0] == 0 {
		return nil, false, fmt.Errorf("quantizer %s (%s) is not calibrated: run ptq or train first", scope, cfg.Method)
	}
	if cfg.Method == quantizers.MethodPACT {
		a, _, err := read(quantizers.VarAlpha)
		if err != nil {
			return nil, false, err
		}
		if len(a) != 1 {
			return nil, false, fmt.Errorf("quantizer %s: alpha has %d values, want 1", scope, len(a))
		}
		if cfg.NarrowRange {
			return nil, false, fmt.Errorf("quantizer %s: pact with narrow_range cannot be exported exactly", scope)
		}
		st.alpha = max(a[0], pactMinAlpha)
		_, n := cfg.QRange()
		st.scale = []float32{st.alpha / float32(n)}
		st.paramDims = []int{1}
		st.zero = []float32{0}
		return st, true, nil
	}
	scale, dims, err := read(quantizers.VarScale)
	if err != nil {
		return nil, false, err
	}
	if cfg.Method == quantizers.MethodLSQ || cfg.Method == quantizers.MethodLSQPlus {
		for i, v := range scale {
			scale[i] = max(v, scaleEpsilon)
		}
	}
	st.scale, st.paramDims = scale, dims
	if cfg.Symmetric && cfg.IsSigned() {
		return st, true, nil
	}
	zero, zdims, err := read(quantizers.VarZeroPoint)
	if err != nil {
		return nil, false, err
	}
	if !slices.Equal(zdims, dims) {
		return nil, false, fmt.Errorf("quantizer %s: zero_point shape %v differs from scale shape %v", scope, zdims, dims)
	}
	qmin, qmax := cfg.QRange()
	for i, z := range zero {
		zero[i] = min(max(roundHalfEven(z), float32(qmin)), float32(qmax))
	}
	st.zero = zero
	return st, true, nil
}

// floats returns the data of a float32 tensor.
func floats(t *tensors.Tensor) ([]float32, error) {
	var out []float32
	err := t.ConstFlatData(func(flat any) {
		if f, ok := flat.([]float32); ok {
			out = slices.Clone(f)
		}
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("dtype %s, want float32", t.DType())
	}
	return out, nil
}

// roundHalfEven rounds a float32 to the nearest integer, ties to even.
func roundHalfEven(x float32) float32 { return float32(math.RoundToEven(float64(x))) }

// roundMagic is 1.5*2^23: adding it to a float32 of magnitude at most 2^22
// leaves a value whose spacing is 1, so the addition rounds half to even.
const roundMagic float32 = 1.5 * (1 << 23)

// roundSmall rounds x (|x| <= 2^22) half to even as the fake-quant graph
// does, by adding and subtracting roundMagic; unlike math.RoundToEven it
// returns +0 for small negative x, as the graph does.
func roundSmall(x float32) float32 {
	y := float32(x + roundMagic)
	return float32(y - roundMagic)
}

// paramIndexer returns, for a tensor of shape dims quantized by cfg, the
// function mapping a flat element index to its parameter (scale) index,
// and the number of parameters.
func paramIndexer(cfg quantizers.Config, dims []int) (func(i int) int, int, error) {
	total := 1
	for _, d := range dims {
		total *= d
	}
	switch cfg.Granularity {
	case quantizers.PerTensor:
		return func(int) int { return 0 }, 1, nil
	case quantizers.PerChannel:
		a := cfg.Axis
		if a < 0 {
			a += len(dims)
		}
		if a < 0 || a >= len(dims) {
			return nil, 0, fmt.Errorf("axis %d out of range for shape %v", cfg.Axis, dims)
		}
		stride := 1
		for _, d := range dims[a+1:] {
			stride *= d
		}
		c := dims[a]
		return func(i int) int { return (i / stride) % c }, c, nil
	case quantizers.PerGroup:
		if len(dims) == 0 {
			return nil, 0, fmt.Errorf("per-group quantization of a scalar")
		}
		in := dims[len(dims)-1]
		g := cfg.GroupSize
		if g <= 0 || in%g != 0 {
			return nil, 0, fmt.Errorf("last axis %d of shape %v is not a multiple of group size %d", in, dims, g)
		}
		per := in / g
		return func(i int) int { return (i/in)*per + (i%in)/g }, total / g, nil
	}
	return nil, 0, fmt.Errorf("unknown granularity %q", cfg.Granularity)
}

// quantizeWeight quantizes w (shape dims, the variable's layout) with the
// site's parameters exactly as the fake-quant graph does, in float32:
// r = roundHalfEven(clamp(w * (1/scale), qmin-zp, qmax-zp)). It returns the
// stored integers r+zp+shift (signed, see shift) and the dequantized
// values r*scale, which equal the fake-quantized weight bit for bit.
func (s *site) quantizeWeight(w []float32, dims []int) (q []int8, deq []float32, err error) {
	idx, n, err := paramIndexer(s.cfg, dims)
	if err != nil {
		return nil, nil, fmt.Errorf("%s weight: %w", s.module, err)
	}
	if len(s.scale) != n {
		return nil, nil, fmt.Errorf("%s weight: quantizer has %d scales, want %d for shape %v (%s)", s.module, len(s.scale), n, dims, s.cfg.Granularity)
	}
	qmin, qmax := s.cfg.QRange()
	off := float32(shift(s.cfg))
	q = make([]int8, len(w))
	deq = make([]float32, len(w))
	// one quantizes w[lo:hi] with parameter p.
	one := func(lo, hi, p int) {
		sc := s.scale[p]
		var z float32
		if s.zero != nil {
			z = s.zero[p]
		}
		inv := float32(1) / sc
		qlo, qhi := float32(qmin)-z, float32(qmax)-z
		zo := z + off
		for i := lo; i < hi; i++ {
			v := float32(w[i] * inv)
			r := roundSmall(min(max(v, qlo), qhi))
			deq[i] = float32(r * sc)
			q[i] = int8(r + zo)
		}
	}
	if run := contiguousRun(s.cfg, dims, len(w), n); run > 0 {
		for p := range n {
			one(p*run, (p+1)*run, p)
		}
		return q, deq, nil
	}
	for i := range w {
		one(i, i+1, idx(i))
	}
	return q, deq, nil
}

// contiguousRun returns the number of consecutive elements each parameter
// covers when parameter p covers elements [p*run, (p+1)*run) (per tensor,
// per channel along axis 0, per group), else 0.
func contiguousRun(cfg quantizers.Config, dims []int, total, n int) int {
	switch cfg.Granularity {
	case quantizers.PerTensor, quantizers.PerGroup:
		return total / n
	case quantizers.PerChannel:
		if a := cfg.Axis; a == 0 || (a < 0 && a+len(dims) == 0) {
			return total / n
		}
	}
	return 0
}

// dequantize returns (q - zero) * scale for stored integers q of a tensor
// with shape dims (the variable's layout); zero is the stored (shifted)
// zero point, nil for symmetric.
func dequantize(cfg quantizers.Config, dims []int, q []int32, scale []float32, zero []int32) ([]float32, error) {
	idx, n, err := paramIndexer(cfg, dims)
	if err != nil {
		return nil, err
	}
	if len(scale) != n {
		return nil, fmt.Errorf("%d scales, want %d for shape %v (%s)", len(scale), n, dims, cfg.Granularity)
	}
	if zero != nil && len(zero) != n {
		return nil, fmt.Errorf("%d zero points, want %d for shape %v (%s)", len(zero), n, dims, cfg.Granularity)
	}
	out := make([]float32, len(q))
	for i, v := range q {
		p := idx(i)
		r := v
		if zero != nil {
			r -= zero[p]
		}
		out[i] = float32(float32(r) * scale[p])
	}
	return out, nil
}

// storedZero returns the site's zero point shifted into the stored signed
// range, and whether the stored scheme is symmetric in compressed-tensors'
// terms: a symmetric qatclip scheme whose stored zero point is 0
// everywhere. Asymmetric schemes always keep their zero point, even when
// calibration happened to put it at 0.
func (s *site) storedZero() ([]int8, bool) {
	n := len(s.scale)
	out := make([]int8, n)
	off := float32(shift(s.cfg))
	allZero := true
	for i := range out {
		var z float32
		if s.zero != nil {
			z = s.zero[i]
		}
		out[i] = int8(z + off)
		if out[i] != 0 {
			allZero = false
		}
	}
	return out, allZero && s.cfg.Symmetric
}
