package layers

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
)

// TestMatMulPrecision runs a Linear and its input gradient in f32 and in
// bf16: bf16 rounds the operands (the results differ, by about bfloat16's
// 2^-8 relative precision) while the output and gradient stay float32.
func TestMatMulPrecision(t *testing.T) {
	const in, out, n = 64, 16, 8
	wv, xv := make([]float32, out*in), make([]float32, n*in)
	for i := range wv {
		wv[i] = float32(math.Sin(float64(i)*0.37)) * 0.3
	}
	for i := range xv {
		xv[i] = float32(math.Cos(float64(i) * 0.11))
	}
	results := map[string][2][]float32{}
	for _, prec := range []string{"f32", "bf16"} {
		ctx := context.New()
		if err := SetMatMulPrecision(ctx, prec); err != nil {
			t.Fatal(err)
		}
		ctx.In("fc").VariableWithValue("weight", tensors.FromFlatDataAndDimensions(wv, out, in))
		exec, err := context.NewExec(newBackend(t), ctx.Checked(false), func(ctx *context.Context, x *graph.Node) []*graph.Node {
			y := Linear(ctx, nil, "fc", x, out, false)
			if y.DType() != dtypes.Float32 {
				t.Errorf("%s: Linear output is %s, want Float32", prec, y.DType())
			}
			loss := graph.ReduceAllSum(graph.Square(y))
			return []*graph.Node{y, graph.Gradient(loss, x)[0]}
		})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(xv, n, in))
		if err != nil {
			t.Fatal(err)
		}
		results[prec] = [2][]float32{tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])}
	}
	for i, name := range []string{"output", "input gradient"} {
		f, b := results["f32"][i], results["bf16"][i]
		var maxF, maxD float64
		for j := range f {
			maxF = math.Max(maxF, math.Abs(float64(f[j])))
			maxD = math.Max(maxD, math.Abs(float64(f[j]-b[j])))
		}
		rel := maxD / maxF
		t.Logf("%s: max |f32 - bf16| / max |f32| = %.2g", name, rel)
		if rel == 0 || rel > 3e-2 {
			t.Errorf("%s: bf16 differs from f32 by %.2g of its range, want (0, 0.03]", name, rel)
		}
	}
}

func TestSetMatMulPrecisionRejects(t *testing.T) {
	ctx := context.New()
	if err := SetMatMulPrecision(ctx, "f16"); err == nil || !strings.Contains(err.Error(), `"f16"`) {
		t.Errorf("f16: %v", err)
	}
	if got := MatMulDType(ctx); got != dtypes.InvalidDType {
		t.Errorf("unset precision: MatMulDType = %s, want none", got)
	}
	if err := SetMatMulPrecision(ctx, "bf16"); err != nil || MatMulDType(ctx.In("a").In("b")) != dtypes.BFloat16 {
		t.Errorf("bf16 is not inherited by sub-scopes: %v", err)
	}
}
