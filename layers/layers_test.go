package layers

import (
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

func newBackend(t testing.TB) backends.Backend {
	return testbackend.Go(t)
}

// run executes fn on a context with preset variables and returns the flat result.
func run(t *testing.T, vars map[string]map[string]*tensors.Tensor, fn func(ctx *context.Context, x *graph.Node) *graph.Node, x *tensors.Tensor) []float32 {
	t.Helper()
	ctx := context.New()
	for scope, vs := range vars {
		for name, v := range vs {
			ctx.In(scope).VariableWithValue(name, v)
		}
	}
	exec, err := context.NewExec(newBackend(t), ctx.Checked(false), fn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(x)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func near(t *testing.T, name string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol {
			t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
		}
	}
}

func TestLinear(t *testing.T) {
	// W [out=2, in=3], b [2]; x [2, 1, 3].
	w := tensors.FromValue([][]float32{{1, 2, 3}, {-1, 0, 0.5}})
	b := tensors.FromValue([]float32{0.5, -1})
	x := tensors.FromValue([][][]float32{{{1, 1, 1}}, {{2, 0, -2}}})
	got := run(t, map[string]map[string]*tensors.Tensor{"m.fc": {"weight": w, "bias": b}},
		func(ctx *context.Context, x *graph.Node) *graph.Node { return Linear(ctx, nil, "m.fc", x, 2, true) }, x)
	near(t, "linear", got, []float32{6.5, -1.5, -3.5, -4}, 1e-6)
}

func TestLayerNorm(t *testing.T) {
	x := tensors.FromValue([][]float32{{1, 2, 3, 6}})
	g := tensors.FromValue([]float32{1, 2, 1, 1})
	b := tensors.FromValue([]float32{0, 0, 1, 0})
	got := run(t, map[string]map[string]*tensors.Tensor{"ln": {"weight": g, "bias": b}},
		func(ctx *context.Context, x *graph.Node) *graph.Node { return LayerNorm(ctx, "ln", x, 1e-5) }, x)
	// mean 3, biased variance 3.5.
	s := math.Sqrt(3.5 + 1e-5)
	want := []float32{float32(-2 / s), float32(2 * -1 / s), 1, float32(3 / s)}
	near(t, "layernorm", got, want, 1e-6)
}

func TestActivations(t *testing.T) {
	xs := []float32{-3, -1, -0.25, 0, 0.5, 2}
	for _, c := range []struct {
		act Activation
		f   func(x float64) float64
	}{
		{QuickGELU, func(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) }},
		{GELU, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }},
		{GELUTanh, func(x float64) float64 {
			return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
		}},
		{ReLU, func(x float64) float64 { return math.Max(x, 0) }},
	} {
		got := run(t, nil, func(ctx *context.Context, x *graph.Node) *graph.Node { return Activate(c.act, x) }, tensors.FromValue(xs))
		want := make([]float32, len(xs))
		for i, x := range xs {
			want[i] = float32(c.f(float64(x)))
		}
		near(t, string(c.act), got, want, 1e-6)
	}
	if _, err := ParseActivation("swish"); err == nil {
		t.Error("ParseActivation(swish) gave no error")
	}
	if a, err := ParseActivation("gelu_new"); err != nil || a != GELUTanh {
		t.Errorf("ParseActivation(gelu_new) = %v, %v", a, err)
	}
}

// TestAttentionCausal checks that a causal attention output at position i
// ignores later positions, and that a non-causal one does not.
func TestAttentionCausal(t *testing.T) {
	const seq, width = 4, 6
	xa := make([]float32, seq*width)
	for i := range xa {
		xa[i] = float32(math.Sin(float64(i) * 0.7))
	}
	xb := append([]float32(nil), xa...)
	for i := 2 * width; i < len(xb); i++ { // change positions 2 and 3
		xb[i] += 1
	}
	for _, causal := range []bool{true, false} {
		attn := func(ctx *context.Context, x *graph.Node) *graph.Node {
			return Attention(ctx, nil, "attn", x, 2, causal)
		}
		ctx := context.New().Checked(false)
		exec, err := context.NewExec(newBackend(t), ctx, attn)
		if err != nil {
			t.Fatal(err)
		}
		outA, err := exec.Exec(tensors.FromFlatDataAndDimensions(xa, 1, seq, width))
		if err != nil {
			t.Fatal(err)
		}
		outB, err := exec.Exec(tensors.FromFlatDataAndDimensions(xb, 1, seq, width))
		if err != nil {
			t.Fatal(err)
		}
		a := tensors.MustCopyFlatData[float32](outA[0])
		b := tensors.MustCopyFlatData[float32](outB[0])
		same := true
		for i := range 2 * width {
			same = same && a[i] == b[i]
		}
		if same != causal {
			t.Errorf("causal=%v: first positions unchanged = %v", causal, same)
		}
	}
}
