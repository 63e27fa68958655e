package layers

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
)

// ParamMatMulPrecision is the context hyperparameter that sets the type the
// matrix products of [Linear] and [Attention] run in: "f32" (or unset) keeps
// the operands' own type, "bf16" casts both operands to bfloat16 and the
// product back, as PyTorch's autocast does. Everything else (LayerNorm,
// softmax, quantizers, losses, the optimizer and the stored weights) stays
// float32. Set it with [SetMatMulPrecision]; scopes inherit it.
const ParamMatMulPrecision = "qatclip_matmul_precision"

// SetMatMulPrecision sets [ParamMatMulPrecision] on ctx ("f32" or "bf16").
func SetMatMulPrecision(ctx *context.Context, precision string) error {
	if _, err := precisionDType(precision); err != nil {
		return err
	}
	ctx.SetParam(ParamMatMulPrecision, precision)
	return nil
}

// MatMulDType returns the type matrix products run in under ctx, or
// dtypes.InvalidDType when they keep their operands' type.
func MatMulDType(ctx *context.Context) dtypes.DType {
	dt, err := precisionDType(context.GetParamOr(ctx, ParamMatMulPrecision, "f32"))
	if err != nil {
		return dtypes.InvalidDType
	}
	return dt
}

func precisionDType(precision string) (dtypes.DType, error) {
	switch precision {
	case "", "f32":
		return dtypes.InvalidDType, nil
	case "bf16":
		return dtypes.BFloat16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("precision %q: want f32 or bf16", precision)
}

// dotGeneral is graph.DotGeneral run in ctx's matmul precision: with bf16
// both operands are cast to bfloat16 (the backend accumulates in float32)
// and the product is cast back to lhs's type. The casts' gradients are
// casts too, so the backward matmuls also run in bfloat16.
func dotGeneral(ctx *context.Context, lhs *graph.Node, lhsContracting, lhsBatch []int, rhs *graph.Node, rhsContracting, rhsBatch []int) *graph.Node {
	dt := MatMulDType(ctx)
	if dt == dtypes.InvalidDType || dt == lhs.DType() {
		return graph.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
	}
	out := graph.DotGeneral(graph.ConvertDType(lhs, dt), lhsContracting, lhsBatch, graph.ConvertDType(rhs, dt), rhsContracting, rhsBatch)
	return graph.ConvertDType(out, lhs.DType())
}
