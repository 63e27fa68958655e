package backend

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gopjrt/dtypes"
)

// This file runs float32 element-wise ops (arithmetic, comparisons, Where,
// the common unary functions, BroadcastInDim) in Go between stages, with
// the kernels of ewkernel.go. Consecutive host ops need no simplego stage
// between them, so a chain of element-wise ops (fake quantization, its
// gradients, LayerNorm, AdamW) runs as a sequence of Go loops; ops of other
// dtypes and shapes simplego alone accepts go to simplego unchanged.

// simplegoOp runs build on the current stage's simplego builder, with ops
// moved into that stage.
func (b *stagedBuilder) simplegoOp(ops []backends.Op, build func(bld backends.Builder, in []backends.Op) (backends.Op, error)) (backends.Op, error) {
	s, err := b.stage()
	if err != nil {
		return nil, err
	}
	in := b.ins(s, ops)
	if err := b.takeErr(); err != nil {
		return nil, err
	}
	op, err := build(s.builder, in)
	if err != nil {
		return nil, err
	}
	return b.out(s, op), nil
}

// nodesOf converts ops to nodes.
func (b *stagedBuilder) nodesOf(ops ...backends.Op) ([]*node, error) {
	out := make([]*node, len(ops))
	for i, op := range ops {
		n, err := b.node(op)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// aliasable lists the inputs whose shape is out's (nil entries are skipped).
func aliasable(out shapes.Shape, in ...*node) []int {
	var idx []int
	for i, n := range in {
		if n != nil && n.shape.Equal(out) {
			idx = append(idx, i)
		}
	}
	return idx
}

// operandDims returns the dimensions an operand of a broadcasting binary op
// is read with: nil for a single value, else its own.
func operandDims(s shapes.Shape) []int {
	if s.Size() == 1 {
		return nil
	}
	return s.Dimensions
}

// binary runs a float32 binary op in Go, or in simplego for other dtypes
// and invalid shapes.
func (b *stagedBuilder) binary(opType backends.OpType, op binOp, lhs, rhs backends.Op,
	fallback func(bld backends.Builder, in []backends.Op) (backends.Op, error)) (backends.Op, error) {
	ns, err := b.nodesOf(lhs, rhs)
	if err != nil {
		return nil, err
	}
	l, r := ns[0], ns[1]
	shape, err := shapeinference.BinaryOp(opType, l.shape, r.shape)
	if err != nil || shape.DType != dtypes.Float32 {
		return b.simplegoOp([]backends.Op{lhs, rhs}, fallback)
	}
	// A broadcast operand is read from its source through the plan's
	// strides; the broadcast itself is then computed only if something
	// else reads it.
	ld, rd := operandDims(l.shape), operandDims(r.shape)
	if v := l.broadcast; v != nil && ld != nil {
		l, ld = v.src, v.dims
	}
	if v := r.broadcast; v != nil && rd != nil {
		r, rd = v.src, v.dims
	}
	plan := newStridePlan(shape.Dimensions, ld, rd)
	return b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("%s %s, %s", opType, l.shape, r.shape),
		inputs: []*node{l, r},
		alias:  aliasable(shape, l, r),
		run: func(in []any, out any) error {
			binaryF32(op, &plan, out.([]float32), in[0].([]float32), in[1].([]float32))
			return nil
		},
	}), nil
}

// compare runs a float32 comparison in Go, or in simplego otherwise.
func (b *stagedBuilder) compare(opType backends.OpType, op cmpOp, lhs, rhs backends.Op,
	fallback func(bld backends.Builder, in []backends.Op) (backends.Op, error)) (backends.Op, error) {
	ns, err := b.nodesOf(lhs, rhs)
	if err != nil {
		return nil, err
	}
	l, r := ns[0], ns[1]
	shape, err := shapeinference.ComparisonOp(opType, l.shape, r.shape)
	if err != nil || l.shape.DType != dtypes.Float32 {
		return b.simplegoOp([]backends.Op{lhs, rhs}, fallback)
	}
	plan := newStridePlan(shape.Dimensions, operandDims(l.shape), operandDims(r.shape))
	return b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("%s %s, %s", opType, l.shape, r.shape),
		inputs: []*node{l, r},
		run: func(in []any, out any) error {
			compareF32(op, &plan, out.([]bool), in[0].([]float32), in[1].([]float32))
			return nil
		},
	}), nil
}

// unary runs a float32 unary op in Go, or in simplego otherwise.
func (b *stagedBuilder) unary(opType backends.OpType, op unOp, x backends.Op,
	fallback func(bld backends.Builder, in []backends.Op) (backends.Op, error)) (backends.Op, error) {
	n, err := b.node(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.UnaryOp(opType, n.shape)
	if err != nil || shape.DType != dtypes.Float32 {
		return b.simplegoOp([]backends.Op{x}, fallback)
	}
	workers := b.backend.workers
	return b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("%s %s", opType, n.shape),
		inputs: []*node{n},
		alias:  []int{0},
		run: func(in []any, out any) error {
			unaryF32(workers, op, out.([]float32), in[0].([]float32))
			return nil
		},
	}), nil
}

// Add implements backends.Builder.
func (b *stagedBuilder) Add(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeAdd, binAdd, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Add(in[0], in[1])
	})
}

// Sub implements backends.Builder.
func (b *stagedBuilder) Sub(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeSub, binSub, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Sub(in[0], in[1])
	})
}

// Mul implements backends.Builder.
func (b *stagedBuilder) Mul(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMul, binMul, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Mul(in[0], in[1])
	})
}

// Div implements backends.Builder.
func (b *stagedBuilder) Div(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeDiv, binDiv, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Div(in[0], in[1])
	})
}

// Min implements backends.Builder.
func (b *stagedBuilder) Min(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMin, binMin, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Min(in[0], in[1])
	})
}

// Max implements backends.Builder.
func (b *stagedBuilder) Max(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMax, binMax, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Max(in[0], in[1])
	})
}

// Equal implements backends.Builder.
func (b *stagedBuilder) Equal(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeEqual, cmpEq, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Equal(in[0], in[1])
	})
}

// NotEqual implements backends.Builder.
func (b *stagedBuilder) NotEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeNotEqual, cmpNe, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.NotEqual(in[0], in[1])
	})
}

// LessThan implements backends.Builder.
func (b *stagedBuilder) LessThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeLessThan, cmpLt, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.LessThan(in[0], in[1])
	})
}

// LessOrEqual implements backends.Builder.
func (b *stagedBuilder) LessOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeLessOrEqual, cmpLe, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.LessOrEqual(in[0], in[1])
	})
}

// GreaterThan implements backends.Builder.
func (b *stagedBuilder) GreaterThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeGreaterThan, cmpGt, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.GreaterThan(in[0], in[1])
	})
}

// GreaterOrEqual implements backends.Builder.
func (b *stagedBuilder) GreaterOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.compare(backends.OpTypeGreaterOrEqual, cmpGe, lhs, rhs, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.GreaterOrEqual(in[0], in[1])
	})
}

// Neg implements backends.Builder.
func (b *stagedBuilder) Neg(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeNeg, unNeg, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Neg(in[0])
	})
}

// Abs implements backends.Builder.
func (b *stagedBuilder) Abs(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeAbs, unAbs, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Abs(in[0])
	})
}

// Sign implements backends.Builder.
func (b *stagedBuilder) Sign(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeSign, unSign, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Sign(in[0])
	})
}

// Exp implements backends.Builder.
func (b *stagedBuilder) Exp(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeExp, unExp, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Exp(in[0])
	})
}

// Logistic implements backends.Builder.
func (b *stagedBuilder) Logistic(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeLogistic, unLogistic, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Logistic(in[0])
	})
}

// Tanh implements backends.Builder.
func (b *stagedBuilder) Tanh(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeTanh, unTanh, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Tanh(in[0])
	})
}

// Sqrt implements backends.Builder.
func (b *stagedBuilder) Sqrt(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeSqrt, unSqrt, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Sqrt(in[0])
	})
}

// Rsqrt implements backends.Builder.
func (b *stagedBuilder) Rsqrt(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeRsqrt, unRsqrt, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Rsqrt(in[0])
	})
}

// Log implements backends.Builder.
func (b *stagedBuilder) Log(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeLog, unLog, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Log(in[0])
	})
}

// Floor implements backends.Builder.
func (b *stagedBuilder) Floor(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeFloor, unFloor, x, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
		return bld.Floor(in[0])
	})
}

// Where implements backends.Builder: float32 values run in Go.
func (b *stagedBuilder) Where(condition, onTrue, onFalse backends.Op) (backends.Op, error) {
	ns, err := b.nodesOf(condition, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	c, t, f := ns[0], ns[1], ns[2]
	shape, err := shapeinference.WhereOp(c.shape, t.shape, f.shape)
	// Operands are either the output's size or a scalar.
	ok := err == nil && shape.DType == dtypes.Float32
	for _, n := range ns {
		ok = ok && (n.shape.IsScalar() || n.shape.Size() == shape.Size())
	}
	if !ok {
		return b.simplegoOp([]backends.Op{condition, onTrue, onFalse}, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
			return bld.Where(in[0], in[1], in[2])
		})
	}
	// A value broadcast from a single one is read as that value.
	for _, v := range []**node{&t, &f} {
		if bv := (*v).broadcast; bv != nil && bv.src.shape.Size() == 1 {
			*v = bv.src
		}
	}
	return b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("Where %s, %s, %s", c.shape, t.shape, f.shape),
		inputs: []*node{c, t, f},
		alias:  aliasable(shape, nil, t, f),
		run: func(in []any, out any) error {
			whereF32(out.([]float32), in[0].([]bool), in[1].([]float32), in[2].([]float32))
			return nil
		},
	}), nil
}

// BroadcastInDim implements backends.Builder: float32 runs in Go.
func (b *stagedBuilder) BroadcastInDim(x backends.Op, outputShape shapes.Shape, broadcastAxes []int) (backends.Op, error) {
	n, err := b.node(x)
	if err != nil {
		return nil, err
	}
	if err := shapeinference.BroadcastInDimOp(n.shape, outputShape, broadcastAxes); err != nil || n.shape.DType != dtypes.Float32 {
		axes := append([]int(nil), broadcastAxes...)
		return b.simplegoOp([]backends.Op{x}, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
			return bld.BroadcastInDim(in[0], outputShape, axes)
		})
	}
	// The operand's dimensions placed on the output's axes, 1 elsewhere.
	dims := make([]int, outputShape.Rank())
	for i := range dims {
		dims[i] = 1
	}
	for i, a := range broadcastAxes {
		dims[a] = n.shape.Dimensions[i]
	}
	plan := newStridePlan(outputShape.Dimensions, dims)
	shape := outputShape.Clone()
	res := b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("BroadcastInDim %s to %s", n.shape, shape),
		inputs: []*node{n},
		run: func(in []any, out any) error {
			broadcastF32(&plan, out.([]float32), in[0].([]float32))
			return nil
		},
	})
	res.broadcast = &broadcastView{src: n, dims: dims}
	return res, nil
}

// Transpose implements backends.Builder: float32 runs in Go, copying rows
// when the last axis stays last and gathering with a stride otherwise.
func (b *stagedBuilder) Transpose(x backends.Op, permutation ...int) (backends.Op, error) {
	n, err := b.node(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.TransposeOp(n.shape, permutation)
	if err != nil || shape.DType != dtypes.Float32 {
		perm := append([]int(nil), permutation...)
		return b.simplegoOp([]backends.Op{x}, func(bld backends.Builder, in []backends.Op) (backends.Op, error) {
			return bld.Transpose(in[0], perm...)
		})
	}
	inStrides := make([]int, n.shape.Rank())
	s := 1
	for a := n.shape.Rank() - 1; a >= 0; a-- {
		inStrides[a] = s
		s *= n.shape.Dimensions[a]
	}
	strides := make([]int, len(permutation))
	for i, a := range permutation {
		strides[i] = inStrides[a]
	}
	plan := planStrides(shape.Dimensions, strides)
	return b.hostNode(shape, &hostOp{
		name:   fmt.Sprintf("Transpose %s %v", n.shape, permutation),
		inputs: []*node{n},
		run: func(in []any, out any) error {
			broadcastF32(&plan, out.([]float32), in[0].([]float32))
			return nil
		},
	}), nil
}

// Identity implements backends.Builder: values are never changed in place
// by other ops' readers, so x itself stands for its identity.
func (b *stagedBuilder) Identity(x backends.Op) (backends.Op, error) {
	if _, err := b.node(x); err != nil {
		return nil, err
	}
	return x, nil
}
