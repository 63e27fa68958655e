package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gopjrt/dtypes"
)

// openPlain opens plain simplego as `go:ops_sequential,plain` gives it.
func openPlain(t testing.TB) backends.Backend {
	t.Helper()
	b, err := Open("go:"+DefaultGoOptions+","+PlainOption, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Finalize)
	return b
}

// runBoth runs fn on qatclip's pure-Go backend and on plain simplego and
// returns both results as float64.
func runBoth(t *testing.T, fn func(in []*graph.Node) []*graph.Node, inputs ...*tensors.Tensor) (got, want [][]float64) {
	t.Helper()
	staged, _ := openBoth(t)
	plain := openPlain(t)
	run := func(b backends.Backend) [][]float64 {
		exec := graph.MustNewExec(b, fn)
		args := make([]any, len(inputs))
		for i, x := range inputs {
			args[i] = local(t, x)
		}
		var res [][]float64
		for _, o := range exec.MustExec(args...) {
			res = append(res, flat64(t, o))
		}
		return res
	}
	return run(staged), run(plain)
}

// withTies returns a tensor with normal values, a few of them repeated at
// other positions and some zeros, so that Min, Max, Equal and Sign see ties.
func withTies(rng *rand.Rand, dims ...int) *tensors.Tensor {
	x := randomTensor(rng, dtypes.Float32, dims...)
	v := tensors.MustCopyFlatData[float32](x)
	for i := range v {
		switch rng.IntN(8) {
		case 0:
			v[i] = 0
		case 1:
			v[i] = 1
		}
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// checkExact fails unless every forward value is bit-identical.
func checkExact(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Fatalf("%s[%d] = %g, plain simplego %g", name, i, got[i], want[i])
		}
	}
}

// checkClose allows the rounding of sums (qatclip sums in another order).
func checkClose(t *testing.T, name string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	tol := 1e-5*maxAbs(want) + 1e-6
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > tol {
			t.Fatalf("%s[%d] = %g, plain simplego %g", name, i, got[i], want[i])
		}
	}
}

// broadcastCases are operand shapes of binary ops: the same shape, a
// column or a row against a matrix (either side), scalars, a rank-3
// mixture, and sizes over minParallel so that goroutines split rows.
var broadcastCases = []struct {
	name     string
	lhs, rhs []int
}{
	{"same", []int{7, 9}, []int{7, 9}},
	{"matrix op column", []int{7, 9}, []int{7, 1}},
	{"column op matrix", []int{7, 1}, []int{7, 9}},
	{"matrix op row", []int{7, 9}, []int{1, 9}},
	{"row op matrix", []int{1, 9}, []int{7, 9}},
	{"matrix op scalar", []int{7, 9}, []int{}},
	{"scalar op matrix", []int{}, []int{7, 9}},
	{"size-1 op matrix", []int{1, 1}, []int{7, 9}},
	{"rank 3 mixed", []int{4, 1, 6}, []int{4, 5, 1}},
	{"rank 4 middle", []int{3, 1, 5, 1}, []int{3, 4, 5, 2}},
	{"column op row", []int{6, 1}, []int{1, 8}},
	{"large same", []int{300, 129}, []int{300, 129}},
	{"large per-channel", []int{300, 129}, []int{300, 1}},
	{"large row", []int{301, 129}, []int{1, 129}},
	{"large rank 3", []int{33, 17, 64}, []int{1, 17, 1}},
}

// TestStagedBinaryMatchesSimplego compares every float32 binary op and
// comparison run in Go with plain simplego on each broadcast pattern: the
// forward values must be bit-identical, the gradients (which go through
// Where, comparisons, BroadcastInDim and sums) equal up to the sums'
// rounding.
func TestStagedBinaryMatchesSimplego(t *testing.T) {
	binary := []struct {
		name string
		fn   func(x, y *graph.Node) *graph.Node
	}{
		{"Add", graph.Add}, {"Sub", graph.Sub}, {"Mul", graph.Mul}, {"Div", graph.Div},
		{"Min", graph.Min}, {"Max", graph.Max},
	}
	compare := []struct {
		name string
		fn   func(x, y *graph.Node) *graph.Node
	}{
		{"Equal", graph.Equal}, {"NotEqual", graph.NotEqual}, {"LessThan", graph.LessThan},
		{"LessOrEqual", graph.LessOrEqual}, {"GreaterThan", graph.GreaterThan}, {"GreaterOrEqual", graph.GreaterOrEqual},
	}
	for ci, c := range broadcastCases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, uint64(ci)))
			x, y := withTies(rng, c.lhs...), withTies(rng, c.rhs...)
			got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
				var outs []*graph.Node
				for _, op := range binary {
					outs = append(outs, op.fn(in[0], in[1]))
				}
				for _, op := range compare {
					outs = append(outs, graph.ConvertDType(op.fn(in[0], in[1]), dtypes.Float32))
				}
				// Gradients of every binary op together.
				loss := graph.ScalarZero(in[0].Graph(), dtypes.Float32)
				for i, op := range binary {
					if op.name == "Div" {
						continue // zeros in y
					}
					w := graph.Scalar(in[0].Graph(), dtypes.Float32, float64(i+1))
					loss = graph.Add(loss, graph.ReduceAllSum(graph.Mul(w, graph.Sin(op.fn(in[0], in[1])))))
				}
				return append(outs, graph.Gradient(loss, in[0], in[1])...)
			}, x, y)
			nf := len(binary) + len(compare)
			for i := range nf {
				name := fmt.Sprintf("op %d", i)
				if i < len(binary) {
					name = binary[i].name
				} else {
					name = compare[i-len(binary)].name
				}
				checkExact(t, name, got[i], want[i])
			}
			checkClose(t, "d/dx", got[nf], want[nf])
			checkClose(t, "d/dy", got[nf+1], want[nf+1])
		})
	}
}

// TestStagedUnaryWhereBroadcastMatchesSimplego covers the unary functions,
// Where with every operand shape mix, BroadcastInDim and graph constants
// returned as outputs, on small and large inputs.
func TestStagedUnaryWhereBroadcastMatchesSimplego(t *testing.T) {
	unary := []struct {
		name string
		fn   func(x *graph.Node) *graph.Node
	}{
		{"Neg", graph.Neg}, {"Abs", graph.Abs}, {"Sign", graph.Sign}, {"Exp", graph.Exp},
		{"Sigmoid", graph.Sigmoid}, {"Tanh", graph.Tanh}, {"Sqrt", func(x *graph.Node) *graph.Node { return graph.Sqrt(graph.Abs(x)) }},
		{"Log", func(x *graph.Node) *graph.Node { return graph.Log(graph.AddScalar(graph.Abs(x), 0.5)) }},
		// Without a gradient in GoMLX: keep last.
		{"Rsqrt", func(x *graph.Node) *graph.Node { return graph.Rsqrt(graph.AddScalar(graph.Abs(x), 0.5)) }},
		{"Floor", graph.Floor},
	}
	for _, dims := range [][]int{{5, 7}, {200, 190}} {
		t.Run(fmt.Sprint(dims), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(13, uint64(dims[0])))
			x, y := withTies(rng, dims...), withTies(rng, dims...)
			col := withTies(rng, dims[0])
			got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
				g := in[0].Graph()
				var outs []*graph.Node
				for _, op := range unary {
					outs = append(outs, op.fn(in[0]))
				}
				cond := graph.GreaterThan(in[0], in[1])
				zero := graph.ScalarZero(g, dtypes.Float32)
				two := graph.Scalar(g, dtypes.Float32, 2)
				outs = append(outs,
					graph.Where(cond, in[0], in[1]),
					graph.Where(cond, in[0], zero),
					graph.Where(cond, two, in[1]),
					graph.Where(cond, two, zero),
					graph.Where(graph.Const(g, true), in[0], in[1]),
					graph.Where(graph.Const(g, false), in[0], zero),
					graph.Where(cond, graph.BroadcastToDims(two, dims...), in[1]), // read as a scalar
					graph.BroadcastToDims(in[2], dims[0], 3, dims[1]),
					graph.BroadcastToDims(graph.Reshape(in[2], dims[0], 1), dims...),
					graph.BroadcastToDims(graph.Reshape(in[2], 1, dims[0]), dims[1], dims[0]),
					graph.BroadcastToDims(two, dims...),
					two,                       // a constant as an output
					graph.StopGradient(in[0]), // an identity of a parameter
				)
				var loss *graph.Node
				for _, o := range outs[:len(unary)-2] {
					if loss == nil {
						loss = graph.ReduceAllSum(o)
					} else {
						loss = graph.Add(loss, graph.ReduceAllSum(graph.Mul(o, o)))
					}
				}
				loss = graph.Add(loss, graph.ReduceAllSum(graph.Mul(graph.Where(cond, in[0], zero), in[1])))
				return append(outs, graph.Gradient(loss, in[0], in[1])...)
			}, x, y, col)
			for i := range len(got) - 2 {
				checkExact(t, fmt.Sprintf("output %d", i), got[i], want[i])
			}
			checkClose(t, "d/dx", got[len(got)-2], want[len(want)-2])
			checkClose(t, "d/dy", got[len(got)-1], want[len(want)-1])
		})
	}
}

// TestStagedElementwiseOtherDTypes checks that ops simplego alone handles
// (float64, int32, bool) still run there and agree.
func TestStagedElementwiseOtherDTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	x := randomTensor(rng, dtypes.Float64, 6, 5)
	got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
		i := graph.ConvertDType(graph.MulScalar(in[0], 10), dtypes.Int32)
		return []*graph.Node{
			graph.Sigmoid(graph.Mul(in[0], in[0])),
			graph.ConvertDType(graph.Max(i, graph.Neg(i)), dtypes.Float64),
			graph.ConvertDType(graph.LogicalAnd(graph.GreaterThan(in[0], graph.ScalarZero(in[0].Graph(), dtypes.Float64)), graph.Const(in[0].Graph(), true)), dtypes.Float64),
			graph.BroadcastPrefix(graph.ReduceSum(in[0], 1), 2),
		}
	}, x)
	for i := range want {
		checkExact(t, fmt.Sprintf("output %d", i), got[i], want[i])
	}
}

// TestStagedInPlaceChain runs a chain of element-wise ops whose
// intermediate buffers are reused in place, with a donated input and an
// input read again after the chain; the executable runs twice.
func TestStagedInPlaceChain(t *testing.T) {
	staged, _ := openBoth(t)
	shape := shapes.Make(dtypes.Float32, 3, 4)
	bld := staged.Builder("inplace")
	p, _ := bld.Parameter("p", shape, nil)
	q, _ := bld.Parameter("q", shape, nil)
	a, _ := bld.Add(p, q)  // may reuse p when donated
	b2, _ := bld.Mul(a, a) // reuses a
	c, _ := bld.Sub(b2, q) // reuses b2; q read again below
	d, _ := bld.Neg(c)
	e, _ := bld.Add(d, q)
	exec, err := bld.Compile([]backends.Op{e, q}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pv := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	qv := []float32{-1, 0.5, 2, 0, 1, -2, 3, 1, 0, 0.25, -3, 2}
	want := make([]float32, len(pv))
	for i := range pv {
		s := pv[i] + qv[i]
		want[i] = -(s*s - qv[i]) + qv[i]
	}
	for _, donate := range []bool{false, true} {
		pb, _ := staged.BufferFromFlatData(0, slices.Clone(pv), shape)
		qb, _ := staged.BufferFromFlatData(0, slices.Clone(qv), shape)
		outs, err := exec.Execute([]backends.Buffer{pb, qb}, []bool{donate, donate}, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(pv))
		if err := staged.BufferToFlatData(outs[0], got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("donate=%v: got %v, want %v", donate, got, want)
		}
		if err := staged.BufferToFlatData(outs[1], got); err != nil || !slices.Equal(got, qv) {
			t.Errorf("donate=%v: q returned as %v (%v), want %v", donate, got, err, qv)
		}
		if !donate {
			if err := staged.BufferToFlatData(pb, got); err != nil || !slices.Equal(got, pv) {
				t.Errorf("input p not donated was changed: %v (%v)", got, err)
			}
		}
	}
}

func TestNewStridePlan(t *testing.T) {
	cases := []struct {
		out      []int
		a, b     []int
		dims     []int
		sa, sb   []int
		rowInner [2]int
	}{
		{[]int{4, 5}, []int{4, 5}, []int{4, 5}, []int{20}, []int{1}, []int{1}, [2]int{1, 1}},
		{[]int{4, 5}, []int{4, 5}, []int{4, 1}, []int{4, 5}, []int{5, 1}, []int{1, 0}, [2]int{1, 0}},
		{[]int{4, 5}, []int{4, 5}, []int{1, 5}, []int{4, 5}, []int{5, 1}, []int{0, 1}, [2]int{1, 1}},
		{[]int{4, 5}, []int{4, 5}, nil, []int{20}, []int{1}, []int{0}, [2]int{1, 0}},
		{[]int{2, 1, 3, 4}, []int{2, 1, 3, 4}, []int{2, 1, 1, 1}, []int{2, 12}, []int{12, 1}, []int{1, 0}, [2]int{1, 0}},
		{[]int{2, 3, 4}, []int{2, 3, 4}, []int{1, 3, 4}, []int{2, 12}, []int{12, 1}, []int{0, 1}, [2]int{1, 1}},
	}
	for _, c := range cases {
		p := newStridePlan(c.out, c.a, c.b)
		if !slices.Equal(p.dims, c.dims) || !slices.Equal(p.strides[0], c.sa) || !slices.Equal(p.strides[1], c.sb) ||
			p.inner(0) != c.rowInner[0] || p.inner(1) != c.rowInner[1] {
			t.Errorf("newStridePlan(%v, %v, %v) = %v %v %v, want %v %v %v", c.out, c.a, c.b,
				p.dims, p.strides[0], p.strides[1], c.dims, c.sa, c.sb)
		}
	}
}

// TestStridePlanRowsSplit checks that any split of the output range visits
// every element once with the right operand offsets.
func TestStridePlanRowsSplit(t *testing.T) {
	out, a, b := []int{3, 4, 5}, []int{3, 1, 5}, []int{1, 4, 1}
	p := newStridePlan(out, a, b)
	want := func(i int) (int, int) {
		x, y, z := i/20, i/5%4, i%5
		return x*5 + z, y
	}
	for _, split := range []int{1, 3, 7, 20, 59} {
		seen := make([]int, 60)
		for lo := 0; lo < 60; lo += split {
			p.rows(lo, min(lo+split, 60), func(o int, off []int, n int) {
				for k := range n {
					seen[o+k]++
					wa, wb := want(o + k)
					if ga, gb := off[0]+k*p.inner(0), off[1]+k*p.inner(1); ga != wa || gb != wb {
						t.Fatalf("split %d: element %d reads %d, %d; want %d, %d", split, o+k, ga, gb, wa, wb)
					}
				}
			})
		}
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("split %d: element %d visited %d times", split, i, s)
			}
		}
	}
}

// TestBinaryKernelsSpecialValues checks the vector kernels (and the
// scalar tails after them) against one operation at a time on NaN, ±0,
// ±Inf, subnormals and ordinary values, for every length up to 40: the
// bits must match Go's own float32 arithmetic, min and max.
func TestBinaryKernelsSpecialValues(t *testing.T) {
	special := []float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		1e-40, -1e-40, 1, -1, 2.5, -3.75, 1e30, -1e-30}
	rng := rand.New(rand.NewPCG(19, 1))
	pick := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = special[rng.IntN(len(special))]
		}
		return v
	}
	same := func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
	}
	ops := []binOp{binAdd, binSub, binMul, binDiv, binMin, binMax}
	for n := range 41 {
		for _, op := range ops {
			a, b := pick(n), pick(n)
			out := make([]float32, n)
			binVV(op, out, a, b)
			for i := range n {
				if want := binScalar(op, a[i], b[i]); !same(out[i], want) {
					t.Fatalf("op %d VV n=%d [%d]: %g op %g = %g, want %g", op, n, i, a[i], b[i], out[i], want)
				}
			}
			for _, c := range special {
				binVS(op, out, a, c)
				for i := range n {
					if want := binScalar(op, a[i], c); !same(out[i], want) {
						t.Fatalf("op %d VS n=%d [%d]: %g op %g = %g, want %g", op, n, i, a[i], c, out[i], want)
					}
				}
				binSV(op, out, c, b)
				for i := range n {
					if want := binScalar(op, c, b[i]); !same(out[i], want) {
						t.Fatalf("op %d SV n=%d [%d]: %g op %g = %g, want %g", op, n, i, c, b[i], out[i], want)
					}
				}
			}
		}
	}
}

// TestSignAbsSpecialValues checks the branch-free Sign and Abs against
// simplego's definitions (v < 0, v > 0 tests) on NaN, ±0, ±Inf and
// subnormals.
func TestSignAbsSpecialValues(t *testing.T) {
	nan := float32(math.NaN())
	negNaN := math.Float32frombits(math.Float32bits(nan) | 1<<31)
	x := []float32{nan, negNaN, 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		1e-45, -1e-45, 1.5, -2.5, math.MaxFloat32, -math.MaxFloat32}
	sign, abs := make([]float32, len(x)), make([]float32, len(x))
	unaryF32(1, unSign, sign, x)
	unaryF32(1, unAbs, abs, x)
	for i, v := range x {
		var ws, wa float32 = 0, v
		switch {
		case v < 0:
			ws, wa = -1, -v
		case v > 0:
			ws = 1
		}
		if math.Float32bits(sign[i]) != math.Float32bits(ws) {
			t.Errorf("Sign(%g) = %g, want %g", v, sign[i], ws)
		}
		if math.Float32bits(abs[i]) != math.Float32bits(wa) {
			t.Errorf("Abs(%g) bits %#x, want %#x", v, math.Float32bits(abs[i]), math.Float32bits(wa))
		}
	}
}

// TestStagedTransposeAndBroadcastViews compares transposes (last axis kept
// or moved, unit axes, an identity permutation) and binary ops that read a
// broadcast through strides (the broadcast alone, and also returned) with
// plain simplego, with gradients.
func TestStagedTransposeAndBroadcastViews(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	x := withTies(rng, 4, 17, 2, 8)
	col := withTies(rng, 4, 17)
	scale := withTies(rng)
	got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
		x, col, s := in[0], in[1], in[2]
		sb := graph.BroadcastToDims(s, 4, 17, 2, 8) // read only by Mul: never computed
		cb := graph.BroadcastToShape(graph.Reshape(col, 4, 17, 1, 1), x.Shape())
		outs := []*graph.Node{
			graph.TransposeAllDims(x, 0, 2, 1, 3),
			graph.TransposeAllDims(x, 3, 1, 2, 0),
			graph.TransposeAllDims(x, 0, 1, 2, 3),
			graph.TransposeAllDims(graph.Reshape(x, 4, 17, 1, 16), 2, 0, 3, 1),
			graph.Mul(x, sb),
			graph.Sub(cb, x),
			cb, // the broadcast is also an output
		}
		loss := graph.ReduceAllSum(graph.Mul(graph.Sin(outs[0]), graph.TransposeAllDims(graph.Add(graph.Mul(x, sb), cb), 0, 2, 1, 3)))
		return append(outs, graph.Gradient(loss, x, col, s)...)
	}, x, col, scale)
	n := len(got) - 3
	for i := range n {
		checkExact(t, fmt.Sprintf("output %d", i), got[i], want[i])
	}
	for i := n; i < len(got); i++ {
		checkClose(t, fmt.Sprintf("gradient %d", i-n), got[i], want[i])
	}
}

// TestLogisticSpecialValues checks the branch-free Logistic against
// simplego's formula on NaN, ±0, ±Inf, large and tiny values.
func TestLogisticSpecialValues(t *testing.T) {
	x := []float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		1e-45, -1e-45, 0.5, -0.5, 3, -3, 20, -20, 100, -100, 89, -104, math.MaxFloat32, -math.MaxFloat32}
	got := make([]float32, len(x))
	unaryF32(1, unLogistic, got, x)
	for i, v := range x {
		var want float32
		if v >= 0 {
			want = float32(1.0 / (1.0 + math.Exp(-float64(v))))
		} else {
			e := math.Exp(float64(v))
			want = float32(e / (1.0 + e))
		}
		if math.Float32bits(got[i]) != math.Float32bits(want) && !(got[i] != got[i] && want != want) {
			t.Errorf("Logistic(%g) = %g, want %g", v, got[i], want)
		}
	}
}

// TestCompareWhereKernelsSpecialValues checks the vector comparisons and
// Where (and the scalar tails after them) against Go's own operators on
// NaN, ±0, ±Inf and ordinary values, for every length up to 80.
func TestCompareWhereKernelsSpecialValues(t *testing.T) {
	special := []float32{float32(math.NaN()), 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		1e-40, 1, -1, 2.5, -3.75}
	rng := rand.New(rand.NewPCG(29, 1))
	pick := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = special[rng.IntN(len(special))]
		}
		return v
	}
	same := func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || (x != x && y != y)
	}
	for n := range 81 {
		a, b := pick(n), pick(n)
		out := make([]bool, n)
		for op := cmpEq; op <= cmpGe; op++ {
			cmpVV(op, out, a, b)
			for i := range n {
				if want := cmpScalar(op, a[i], b[i]); out[i] != want {
					t.Fatalf("cmp %d VV n=%d [%d]: %g, %g gives %v, want %v", op, n, i, a[i], b[i], out[i], want)
				}
			}
			for _, c := range special {
				cmpVS(op, out, a, c)
				for i := range n {
					if want := cmpScalar(op, a[i], c); out[i] != want {
						t.Fatalf("cmp %d VS n=%d [%d]: %g, %g gives %v, want %v", op, n, i, a[i], c, out[i], want)
					}
				}
			}
		}
		cond := make([]bool, n)
		for i := range cond {
			cond[i] = rng.IntN(2) == 0
		}
		res := make([]float32, n)
		for _, tv := range [][]float32{a, {2.5}} {
			for _, fv := range [][]float32{b, {float32(math.Copysign(0, -1))}} {
				if n == 0 && (len(tv) == 0 || len(fv) == 0) {
					continue
				}
				whereF32(res, cond, tv, fv)
				for i := range n {
					want := fv[0]
					if len(fv) > 1 {
						want = fv[i]
					}
					if cond[i] {
						want = tv[0]
						if len(tv) > 1 {
							want = tv[i]
						}
					}
					if !same(res[i], want) {
						t.Fatalf("Where n=%d (t %d values, f %d) [%d] = %g, want %g", n, len(tv), len(fv), i, res[i], want)
					}
				}
			}
		}
	}
}

// TestStagedEmptyTensors runs element-wise ops on tensors with no values.
func TestStagedEmptyTensors(t *testing.T) {
	x := tensors.FromShape(shapes.Make(dtypes.Float32, 0, 3))
	col := tensors.FromShape(shapes.Make(dtypes.Float32, 0, 1))
	got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
		s := graph.Scalar(in[0].Graph(), dtypes.Float32, 2)
		return []*graph.Node{
			graph.Add(in[0], in[1]), graph.Mul(in[0], s), graph.Sigmoid(in[0]),
			graph.ConvertDType(graph.GreaterThan(in[0], s), dtypes.Float32),
			graph.BroadcastToDims(in[1], 0, 3), graph.TransposeAllDims(in[0], 1, 0),
		}
	}, x, col)
	for i := range want {
		checkExact(t, fmt.Sprint(i), got[i], want[i])
	}
	// Where, which plain simplego cannot run on empty tensors.
	staged, _ := openBoth(t)
	exec := graph.MustNewExec(staged, func(x *graph.Node) *graph.Node {
		s := graph.Scalar(x.Graph(), dtypes.Float32, 2)
		return graph.Where(graph.GreaterThan(x, s), x, s)
	})
	if out := exec.MustExec(local(t, x))[0]; out.Shape().Size() != 0 {
		t.Errorf("Where on an empty tensor gave %s", out.Shape())
	}
}

// TestStagedElementwiseChain runs a chain of element-wise ops on a large
// tensor where values computed in the chain are read several times,
// buffers are reused in place, a broadcast operand and a comparison join
// in, and an op of another size sits in the middle; results must be
// bit-identical to plain simplego.
func TestStagedElementwiseChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 1))
	x, y := withTies(rng, 131, 257), withTies(rng, 131, 257)
	col := withTies(rng, 131, 1)
	got, want := runBoth(t, func(in []*graph.Node) []*graph.Node {
		x, y, col := in[0], in[1], in[2]
		a := graph.MulScalar(x, 2)
		b := graph.Add(a, y)
		c := graph.Max(b, a)
		d := graph.Where(graph.GreaterThan(c, graph.ScalarZero(x.Graph(), dtypes.Float32)), c, b)
		e := graph.Mul(graph.Neg(d), col)
		small := graph.ReduceMax(e, 1) // another size
		f := graph.Sub(graph.Mul(graph.Sign(e), a), graph.Reshape(small, 131, 1))
		g := graph.Div(f, graph.AddScalar(graph.Abs(c), 1))
		return []*graph.Node{a, d, g, graph.Add(g, g)}
	}, x, y, col)
	for i := range want {
		checkExact(t, fmt.Sprint("output ", i), got[i], want[i])
	}
}
