package backend

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gopjrt/dtypes"
)

// openBoth returns the pure-Go backend as Open makes it (gemm matmul) and
// plain simplego with the same options.
func openBoth(t *testing.T) (staged, stock backends.Backend) {
	t.Helper()
	staged, err := Open("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := staged.(*goBackend); !ok {
		t.Fatalf("Open(go) = %T, want the gemm-backed backend", staged)
	}
	stock, err = simplego.New(DefaultGoOptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { staged.Finalize(); stock.Finalize() })
	return staged, stock
}

// randomTensor returns a tensor of normal values.
func randomTensor(rng *rand.Rand, dtype dtypes.DType, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	switch dtype {
	case dtypes.Float64:
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	default:
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	}
}

// flat64 copies any float tensor to float64.
func flat64(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	switch x.DType() {
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](x)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](x)
	case dtypes.Int32:
		f := tensors.MustCopyFlatData[int32](x)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out
	}
	t.Fatalf("unexpected dtype %s", x.DType())
	return nil
}

// TestStagedDotGeneralMatchesSimplego runs DotGeneral layouts (batch axes
// first, in the middle, several contracting axes out of order, vectors,
// other dtypes) and their gradients on both backends.
func TestStagedDotGeneralMatchesSimplego(t *testing.T) {
	staged, stock := openBoth(t)
	cases := []struct {
		name           string
		dtype          dtypes.DType
		lhs, rhs       []int
		lc, lb, rc, rb []int
	}{
		{"matmul", dtypes.Float32, []int{13, 40}, []int{40, 21}, []int{1}, nil, []int{0}, nil},
		{"linear x@W^T", dtypes.Float32, []int{4, 17, 64}, []int{96, 64}, []int{2}, nil, []int{1}, nil},
		{"attention scores", dtypes.Float32, []int{3, 17, 2, 16}, []int{3, 17, 2, 16}, []int{3}, []int{0, 2}, []int{3}, []int{0, 2}},
		{"batch not first", dtypes.Float32, []int{6, 2, 4}, []int{4, 2, 5}, []int{2}, []int{1}, []int{0}, []int{1}},
		{"two contracting axes out of order", dtypes.Float32, []int{3, 4, 5}, []int{5, 6, 4}, []int{1, 2}, nil, []int{2, 0}, nil},
		{"negative axes", dtypes.Float32, []int{5, 7}, []int{9, 7}, []int{-1}, nil, []int{-1}, nil},
		{"outer product", dtypes.Float32, []int{3}, []int{4}, nil, nil, nil, nil},
		{"vector dot", dtypes.Float32, []int{300}, []int{300}, []int{0}, nil, []int{0}, nil},
		{"float64 stays on simplego", dtypes.Float64, []int{5, 6}, []int{6, 7}, []int{1}, nil, []int{0}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(len(c.lhs)*10+len(c.rhs))))
			lhs := randomTensor(rng, c.dtype, c.lhs...)
			rhs := randomTensor(rng, c.dtype, c.rhs...)
			run := func(b backends.Backend) [][]float64 {
				exec := graph.MustNewExec(b, func(l, r *graph.Node) []*graph.Node {
					out := graph.DotGeneral(l, c.lc, c.lb, r, c.rc, c.rb)
					loss := graph.ReduceAllSum(graph.Mul(out, graph.Sin(out)))
					return append([]*graph.Node{out}, graph.Gradient(loss, l, r)...)
				})
				var res [][]float64
				for _, x := range exec.MustExec(local(t, lhs), local(t, rhs)) {
					res = append(res, flat64(t, x))
				}
				return res
			}
			want, got := run(stock), run(staged)
			for i := range want {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("output %d: %d values, want %d", i, len(got[i]), len(want[i]))
				}
				tol := 2e-5*maxAbs(want[i]) + 1e-6 // float32 rounding, relative to the output's scale
				for j := range want[i] {
					if d := math.Abs(got[i][j] - want[i][j]); d > tol {
						t.Fatalf("output %d[%d] = %g, simplego %g", i, j, got[i][j], want[i][j])
					}
				}
			}
		})
	}
}

// TestStagedExecutionSemantics covers what splitting a graph into stages
// must preserve: parameters returned as outputs, the same node returned
// twice, constants and random numbers used across products, integer ops, a
// value read by several later stages, and dead branches.
func TestStagedExecutionSemantics(t *testing.T) {
	staged, stock := openBoth(t)
	rng := rand.New(rand.NewPCG(5, 5))
	x := randomTensor(rng, dtypes.Float32, 8, 6)
	w := randomTensor(rng, dtypes.Float32, 6, 6)
	run := func(b backends.Backend) [][]float64 {
		exec := graph.MustNewExec(b, func(x, w *graph.Node) []*graph.Node {
			g := x.Graph()
			c := graph.Const(g, float32(0.5))
			h := graph.Tanh(graph.Dot(x, w))
			h2 := graph.Dot(graph.Mul(h, c), w)        // c and w read again after a product
			_ = graph.Dot(h2, w)                       // dead: never reaches an output
			idx := graph.ArgMax(h2, 1)                 // int32 op after a product
			state := graph.Const(g, []uint64{1, 2, 3}) // RNG: a multi-output op
			_, noise := graph.RandomUniform(state, shapes.Make(dtypes.Float32, 8, 6))
			y := graph.Add(h2, graph.Mul(noise, graph.Const(g, float32(0))))
			return []*graph.Node{x, y, y, graph.ConvertDType(idx, dtypes.Int32), graph.ReduceAllSum(graph.Dot(y, w))}
		})
		var res [][]float64
		for _, o := range exec.MustExec(local(t, x), local(t, w)) {
			res = append(res, flat64(t, o))
		}
		return res
	}
	want, got := run(stock), run(staged)
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		tol := 2e-5*maxAbs(want[i]) + 1e-6
		for j := range want[i] {
			if d := math.Abs(got[i][j] - want[i][j]); d > tol {
				t.Fatalf("output %d[%d] = %g, simplego %g", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestStagedExecuteDonation calls the backend directly: a donated input read
// by several stages and returned, an output listed twice, and a second run
// of the same executable.
func TestStagedExecuteDonation(t *testing.T) {
	staged, _ := openBoth(t)
	bld := staged.Builder("donation")
	p, err := bld.Parameter("p", shapes.Make(dtypes.Float32, 2, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := bld.Add(p, p)
	prod, err := bld.DotGeneral(sum, []int{1}, nil, p, []int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	last, _ := bld.Sub(prod, p)
	exec, err := bld.Compile([]backends.Op{p, last, last, prod}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// p = [[1 2] [3 4]]: sum = 2p, prod = 2p·p = [[14 20] [30 44]], last = prod - p.
	want := [][]float32{{1, 2, 3, 4}, {13, 18, 27, 40}, {13, 18, 27, 40}, {14, 20, 30, 44}}
	for _, donate := range []bool{false, true} {
		in, err := staged.BufferFromFlatData(0, []float32{1, 2, 3, 4}, shapes.Make(dtypes.Float32, 2, 2))
		if err != nil {
			t.Fatal(err)
		}
		outs, err := exec.Execute([]backends.Buffer{in}, []bool{donate}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range outs {
			got := make([]float32, 4)
			if err := staged.BufferToFlatData(o, got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want[i]) {
				t.Errorf("donate=%v output %d = %v, want %v", donate, i, got, want[i])
			}
			for j := range i {
				if outs[j] == o {
					t.Errorf("donate=%v outputs %d and %d share a buffer", donate, j, i)
				}
			}
		}
		if !donate {
			got := make([]float32, 4)
			if err := staged.BufferToFlatData(in, got); err != nil || !slices.Equal(got, want[0]) {
				t.Errorf("input not donated was changed: %v (%v)", got, err)
			}
		}
	}
}

// TestPlainOption checks that plain and simplego's own
// DotGeneral options open plain simplego.
func TestPlainOption(t *testing.T) {
	for _, name := range []string{"go:ops_sequential," + PlainOption, "go:dotgeneral_large"} {
		b, err := Open(name, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		if _, ok := b.(*simplego.Backend); !ok {
			t.Errorf("Open(%q) = %T, want *simplego.Backend", name, b)
		}
		b.Finalize()
	}
}

// local returns a backend-free copy of x, so the same values can be fed to
// two backends.
func local(t *testing.T, x *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	c, err := x.LocalClone()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// TestStagedLateDeadImport builds a stage whose last parameter is read only
// by an op whose result is unused (simplego indexes its per-run tables by
// the last output node, so such a parameter needs care).
func TestStagedLateDeadImport(t *testing.T) {
	staged, _ := openBoth(t)
	bld := staged.Builder("late")
	shape := shapes.Make(dtypes.Float32, 2, 2)
	p, _ := bld.Parameter("p", shape, nil)
	q, _ := bld.Parameter("q", shape, nil)
	prod, err := bld.DotGeneral(p, []int{1}, nil, p, []int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := bld.Add(prod, prod)
	if _, err := bld.Mul(sum, q); err != nil { // dead, and q is imported only here
		t.Fatal(err)
	}
	exec, err := bld.Compile([]backends.Op{sum}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var in []backends.Buffer
	for range 2 {
		buf, err := staged.BufferFromFlatData(0, []float32{1, 2, 3, 4}, shape)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, buf)
	}
	outs, err := exec.Execute(in, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 4)
	if err := staged.BufferToFlatData(outs[0], got); err != nil {
		t.Fatal(err)
	}
	if want := []float32{14, 20, 30, 44}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestIsGo(t *testing.T) {
	staged, stock := openBoth(t)
	if !IsGo(staged) || !IsGo(stock) {
		t.Errorf("IsGo(Open(go)) = %v, IsGo(simplego) = %v, want both true", IsGo(staged), IsGo(stock))
	}
}

// TestStagedReduceSumMatchesSimplego covers the sums run in Go (rows,
// columns, the middle of three groups, all axes, unit axes in between) and
// ones left to simplego (two separate reduced runs, float64).
func TestStagedReduceSumMatchesSimplego(t *testing.T) {
	staged, stock := openBoth(t)
	cases := []struct {
		name  string
		dtype dtypes.DType
		dims  []int
		axes  []int
	}{
		{"rows", dtypes.Float32, []int{6, 17, 33}, []int{2}},
		{"columns", dtypes.Float32, []int{6, 17, 33}, []int{0, 1}},
		{"middle", dtypes.Float32, []int{4, 5, 6, 7}, []int{1, 2}},
		{"all axes", dtypes.Float32, []int{3, 4, 5}, nil},
		{"unit axes between", dtypes.Float32, []int{3, 1, 4, 1, 5}, []int{2, 3, 4}},
		{"only unit axes reduced", dtypes.Float32, []int{3, 1, 5}, []int{1}},
		{"two runs (simplego)", dtypes.Float32, []int{3, 4, 5}, []int{0, 2}},
		{"float64 (simplego)", dtypes.Float64, []int{3, 4}, []int{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, uint64(len(c.dims))))
			x := randomTensor(rng, c.dtype, c.dims...)
			run := func(b backends.Backend) []float64 {
				exec := graph.MustNewExec(b, func(x *graph.Node) *graph.Node {
					if c.axes == nil {
						return graph.ReduceAllSum(x)
					}
					return graph.ReduceSum(x, c.axes...)
				})
				return flat64(t, exec.MustExec(local(t, x))[0])
			}
			want, got := run(stock), run(staged)
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			tol := 2e-6*maxAbs(want) + 1e-6
			for i := range want {
				if d := math.Abs(got[i] - want[i]); d > tol {
					t.Fatalf("[%d] = %g, simplego %g", i, got[i], want[i])
				}
			}
		})
	}
}

func TestReduceGroups(t *testing.T) {
	cases := []struct {
		dims, axes            []int
		outer, reduced, inner int
		ok                    bool
	}{
		{[]int{2, 3, 4}, []int{2}, 6, 4, 1, true},
		{[]int{2, 3, 4}, []int{0}, 1, 2, 12, true},
		{[]int{2, 3, 4}, []int{1}, 2, 3, 4, true},
		{[]int{2, 3, 4}, nil, 1, 24, 1, true},
		{[]int{2, 1, 4}, []int{0, 2}, 1, 8, 1, true},
		{[]int{2, 3, 4}, []int{0, 2}, 0, 0, 0, false},
		{[]int{2, 3, 4}, []int{3}, 0, 0, 0, false},
		{[]int{2, 3, 4}, []int{1, 1}, 0, 0, 0, false},
	}
	for _, c := range cases {
		o, r, i, ok := reduceGroups(shapes.Make(dtypes.Float32, c.dims...), c.axes)
		if ok != c.ok || (ok && (o != c.outer || r != c.reduced || i != c.inner)) {
			t.Errorf("reduceGroups(%v, %v) = %d, %d, %d, %v; want %d, %d, %d, %v",
				c.dims, c.axes, o, r, i, ok, c.outer, c.reduced, c.inner, c.ok)
		}
	}
}
