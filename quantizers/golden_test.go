package quantizers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// envGoldenQuantizers names the folder of golden fake-quant cases.
const envGoldenQuantizers = "QATCLIP_GOLDEN_QUANTIZERS"

// goldenTol is the largest accepted error, relative to the quantization
// scale (for y) or to the gradient's own magnitude (for the gradients).
const goldenTol = 1e-6

// newTestBackend returns a pure-Go backend, failing the test when it cannot
// be created.
func newTestBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := simplego.New("")
	if err != nil {
		t.Fatalf("simplego backend: %v", err)
	}
	return b
}

// TestGoldenQuantizers checks forward and backward of every case in the
// shared golden folder (PyTorch 1.13's own fake-quant ops) against this
// package's ops on the pure-Go backend. The folder is
// $QATCLIP_GOLDEN_QUANTIZERS, default ../shared/golden/quantizers beside the
// repository.
func TestGoldenQuantizers(t *testing.T) {
	dir := os.Getenv(envGoldenQuantizers)
	if dir == "" {
		dir = filepath.Join(testutil.SharedDir(t), "golden", "quantizers")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("golden quantizer cases %s not found (set %s): skipping", dir, envGoldenQuantizers)
	}
	runCaseFolder(t, dir)
}

// TestFixtureQuantizers runs the same checks over this package's own
// fixtures (testdata/quantizers, written by testdata/gen_quant_fixtures.py
// with PyTorch): more shapes, axes, bit widths, narrow ranges and per-group
// cases. It needs nothing outside the repository.
func TestFixtureQuantizers(t *testing.T) {
	runCaseFolder(t, filepath.Join("testdata", "quantizers"))
}

// runCaseFolder runs one subtest per case folder under dir on the pure-Go
// backend.
func runCaseFolder(t *testing.T, dir string) {
	runCaseFolderOn(t, dir, newTestBackend(t))
}

// runCaseFolderOn runs one subtest per case folder under dir on backend.
func runCaseFolderOn(t *testing.T, dir string, backend backends.Backend) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read case folder: %v", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatalf("no case folders in %s", dir)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, err := loadCase(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, backend)
		})
	}
}

// caseSpec is a case.json: the op and its scalar parameters.
type caseSpec struct {
	Op         string   `json:"op"`
	Scale      *float64 `json:"scale"`
	ZeroPoint  *float64 `json:"zero_point"`
	QMin       *int     `json:"qmin"`
	QMax       *int     `json:"qmax"`
	Axis       *int     `json:"axis"`
	GradFactor *float64 `json:"grad_factor"`
	Alpha      *float64 `json:"alpha"`
	Bits       *int     `json:"bits"`
	GroupSize  *int     `json:"group_size"`
	// Observer cases: the scheme.
	Symmetric   *bool `json:"symmetric"`
	Signed      *bool `json:"signed"`
	NarrowRange *bool `json:"narrow_range"`
}

// goldenCase is one loaded case folder.
type goldenCase struct {
	dir  string
	spec caseSpec
	info opInfo
	// arrays by file stem: x, g, y, dx, scale, zero_point, dscale, ...
	arrays map[string]npy.Array
}

// opInfo says which parameters and files an op needs.
type opInfo struct {
	params    []string // required case.json keys
	inputs    []string // required input arrays besides x and g
	gradients []string // required expected gradients besides dx
	// observer cases run a Quantizer forward and compare the scale and
	// zero point it computes (no g, no gradients).
	observer bool
}

// caseOp returns what op needs, and false for an unknown op.
func caseOp(op string) (opInfo, bool) {
	info, ok := map[string]opInfo{
		"fake_quant_per_tensor":  {params: []string{"scale", "zero_point", "qmin", "qmax"}},
		"fake_quant_per_channel": {params: []string{"axis", "qmin", "qmax"}, inputs: []string{"scale", "zero_point"}},
		"fake_quant_per_group":   {params: []string{"group_size", "qmin", "qmax"}, inputs: []string{"scale", "zero_point"}},
		"lsq_per_tensor": {params: []string{"scale", "zero_point", "qmin", "qmax", "grad_factor"},
			gradients: []string{"dscale", "dzero_point"}},
		"lsq_per_channel": {params: []string{"axis", "qmin", "qmax", "grad_factor"}, inputs: []string{"scale", "zero_point"},
			gradients: []string{"dscale", "dzero_point"}},
		"lsq_per_group": {params: []string{"group_size", "qmin", "qmax", "grad_factor"}, inputs: []string{"scale", "zero_point"},
			gradients: []string{"dscale", "dzero_point"}},
		"pact": {params: []string{"alpha", "bits"}, gradients: []string{"dalpha"}},
		"observer_minmax": {params: []string{"bits", "symmetric", "signed", "narrow_range"},
			inputs: []string{"scale", "zero_point"}, observer: true},
	}[op]
	return info, ok
}

// loadCase reads and validates a case folder.
func loadCase(dir string) (*goldenCase, error) {
	path := filepath.Join(dir, "case.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("case folder %s: %w", dir, err)
	}
	var spec caseSpec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	info, ok := caseOp(spec.Op)
	if !ok {
		return nil, fmt.Errorf("%s: unknown op %q", path, spec.Op)
	}
	present := map[string]bool{
		"scale": spec.Scale != nil, "zero_point": spec.ZeroPoint != nil, "qmin": spec.QMin != nil,
		"qmax": spec.QMax != nil, "axis": spec.Axis != nil, "grad_factor": spec.GradFactor != nil,
		"alpha": spec.Alpha != nil, "bits": spec.Bits != nil, "group_size": spec.GroupSize != nil,
		"symmetric": spec.Symmetric != nil, "signed": spec.Signed != nil, "narrow_range": spec.NarrowRange != nil,
	}
	for _, p := range info.params {
		if !present[p] {
			return nil, fmt.Errorf("%s: op %q needs key %q", path, spec.Op, p)
		}
	}
	c := &goldenCase{dir: dir, spec: spec, info: info, arrays: map[string]npy.Array{}}
	files := []string{"x", "y"}
	if !info.observer {
		files = append(files, "g", "dx")
	}
	files = append(files, info.inputs...)
	files = append(files, info.gradients...)
	for _, f := range files {
		a, err := npy.ReadFile(filepath.Join(dir, f+".npy"))
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", dir, err)
		}
		c.arrays[f] = a
	}
	return c, nil
}

// f32 returns the named array as float32.
func (c *goldenCase) f32(t *testing.T, name string) *tensors.Tensor {
	t.Helper()
	a := c.arrays[name]
	d, err := a.Float32()
	if err != nil {
		t.Fatalf("case %s, %s.npy: %v", c.dir, name, err)
	}
	return tensors.FromFlatDataAndDimensions(d, a.Shape...)
}

// check runs the op forward and backward and compares every output.
func (c *goldenCase) check(t *testing.T, backend backends.Backend) {
	if c.info.observer {
		c.checkObserver(t, backend)
		return
	}
	s := c.spec
	x, gIn := c.f32(t, "x"), c.f32(t, "g")
	var params []*tensors.Tensor
	var scales []float64 // quantization step(s), the unit of y's tolerance
	switch s.Op {
	case "fake_quant_per_tensor", "lsq_per_tensor":
		params = []*tensors.Tensor{
			tensors.FromFlatDataAndDimensions([]float32{float32(*s.Scale)}, 1),
			tensors.FromFlatDataAndDimensions([]float32{float32(*s.ZeroPoint)}, 1),
		}
		scales = []float64{float64(float32(*s.Scale))}
	case "pact":
		params = []*tensors.Tensor{tensors.FromFlatDataAndDimensions([]float32{float32(*s.Alpha)}, 1)}
		scales = []float64{*s.Alpha / float64(int(1)<<*s.Bits-1)}
	default:
		sc := c.f32(t, "scale")
		params = []*tensors.Tensor{sc, c.f32(t, "zero_point")}
		for _, v := range tensors.MustCopyFlatData[float32](sc) {
			scales = append(scales, float64(v))
		}
	}
	minScale := math.Inf(1)
	for _, v := range scales {
		minScale = math.Min(minScale, v)
	}

	fn := func(inputs []*Node) []*Node {
		xn, gn, ps := inputs[0], inputs[1], inputs[2:]
		var y *Node
		switch s.Op {
		case "fake_quant_per_tensor":
			y = FakeQuantPerTensor(xn, ps[0], ps[1], *s.QMin, *s.QMax)
		case "fake_quant_per_channel":
			y = FakeQuantPerChannel(xn, ps[0], ps[1], *s.Axis, *s.QMin, *s.QMax)
		case "fake_quant_per_group":
			y = FakeQuantPerGroup(xn, ps[0], ps[1], *s.GroupSize, *s.QMin, *s.QMax)
		case "lsq_per_tensor":
			y = LearnableFakeQuantPerTensor(xn, ps[0], ps[1], *s.QMin, *s.QMax, *s.GradFactor)
		case "lsq_per_channel":
			y = LearnableFakeQuantPerChannel(xn, ps[0], ps[1], *s.Axis, *s.QMin, *s.QMax, *s.GradFactor)
		case "lsq_per_group":
			y = LearnableFakeQuantPerGroup(xn, ps[0], ps[1], *s.GroupSize, *s.QMin, *s.QMax, *s.GradFactor)
		case "pact":
			y = PACT(xn, ps[0], *s.Bits)
		}
		loss := ReduceAllSum(Mul(y, gn))
		grads := Gradient(loss, append([]*Node{xn}, ps...)...)
		return append([]*Node{y}, grads...)
	}
	exec, err := NewExec(backend, fn)
	if err != nil {
		t.Fatalf("build exec: %v", err)
	}
	args := append([]any{x, gIn}, anySlice(params)...)
	outs, err := exec.Exec(args...)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	got := func(i int) []float32 { return tensors.MustCopyFlatData[float32](outs[i]) }
	want := func(name string) []float32 {
		d, err := c.arrays[name].Float32()
		if err != nil {
			t.Fatalf("%s.npy: %v", name, err)
		}
		return d
	}
	compare(t, "y", got(0), want("y"), goldenTol*minScale)
	compare(t, "dx", got(1), want("dx"), goldenTol*maxAbs(want("dx")))
	switch s.Op {
	case "pact":
		compareGrad(t, "dalpha", got(2), want("dalpha"))
	case "lsq_per_tensor", "lsq_per_channel", "lsq_per_group":
		compareGrad(t, "dscale", got(2), want("dscale"))
		compareGrad(t, "dzero_point", got(3), want("dzero_point"))
	}
}

// checkObserver runs a minmax Quantizer in a calibration graph and
// compares its output, scale and zero point with PyTorch's observer.
func (c *goldenCase) checkObserver(t *testing.T, backend backends.Backend) {
	s := c.spec
	cfg := DefaultConfig()
	cfg.Bits, cfg.Symmetric, cfg.Signed, cfg.NarrowRange = *s.Bits, *s.Symmetric, s.Signed, *s.NarrowRange
	if s.Axis != nil {
		cfg.Granularity, cfg.Axis = PerChannel, *s.Axis
	}
	q, err := New(cfg)
	if err != nil {
		t.Fatalf("%s: %v", c.dir, err)
	}
	ctx := context.New()
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, x *Node) *Node {
		SetCalibrating(ctx, x.Graph(), true)
		return q.Quantize(ctx.In(site), x)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(c.f32(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []float32 {
		d, err := c.arrays[name].Float32()
		if err != nil {
			t.Fatalf("%s.npy: %v", name, err)
		}
		return d
	}
	variable := func(name string) []float32 {
		return tensors.MustCopyFlatData[float32](ctx.In(site).GetVariable(name).MustValue())
	}
	wantScale := read("scale")
	minScale := math.Inf(1)
	for _, v := range wantScale {
		minScale = math.Min(minScale, float64(v))
	}
	compare(t, "scale", variable(VarScale), wantScale, goldenTol*minScale)
	compare(t, "zero_point", variable(VarZeroPoint), read("zero_point"), 0)
	compare(t, "y", tensors.MustCopyFlatData[float32](out[0]), read("y"), goldenTol*minScale)
}

// compare fails when two arrays differ in length or by more than tol.
func compare(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return
	}
	worst, at := 0.0, -1
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	t.Logf("%s: max abs error %.3g (tolerance %.3g)", name, worst, tol)
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: max abs error %.3g at flat index %d (got %.9g, want %.9g), tolerance %.3g",
			name, worst, at, got[at], want[at], tol)
	}
}

// compareGrad compares parameter gradients (sums over many elements, whose
// order of summation differs from PyTorch's) to goldenTol of their own
// magnitude, with a floor of goldenTol.
func compareGrad(t *testing.T, name string, got, want []float32) {
	t.Helper()
	compare(t, name, got, want, goldenTol*math.Max(1, maxAbs(want)))
}

// maxAbs returns the largest absolute value, at least 1e-30.
func maxAbs(v []float32) float64 {
	m := 1e-30
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// anySlice converts tensors to Exec arguments.
func anySlice(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}
