package backend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gopjrt/dtypes"
)

// ReduceSum implements backends.Builder. A float32 sum whose reduced axes
// form one contiguous run once unit axes are ignored (rows, columns, or the
// middle of three axis groups: every LayerNorm, softmax, bias and scale
// gradient) runs in Go between stages, several times faster than simplego's
// iterator-based reduction; other sums go to simplego.
func (b *stagedBuilder) ReduceSum(x backends.Op, axes ...int) (backends.Op, error) {
	n, err := b.node(x)
	if err != nil {
		return nil, err
	}
	if n.shape.DType == dtypes.Float32 {
		if outer, reduced, inner, ok := reduceGroups(n.shape, axes); ok {
			dims := []int{}
			for a, d := range n.shape.Dimensions {
				if len(axes) > 0 && !slices.Contains(axes, a) {
					dims = append(dims, d)
				}
			}
			return b.hostNode(shapes.Make(dtypes.Float32, dims...), &hostOp{
				name:   fmt.Sprintf("ReduceSum %s axes %v", n.shape, axes),
				inputs: []*node{n},
				run: func(in []any, out any) error {
					sumMiddle(out.([]float32), in[0].([]float32), outer, reduced, inner)
					return nil
				},
			}), nil
		}
	}
	s, err := b.stage()
	if err != nil {
		return nil, err
	}
	x_ := b.in(s, x)
	if err := b.takeErr(); err != nil {
		return nil, err
	}
	op, err := s.builder.ReduceSum(x_, axes...)
	if err != nil {
		return nil, err
	}
	return b.out(s, op), nil
}

// reduceGroups views shape as [outer, reduced, inner] (row-major) with the
// summed axes in the middle, ignoring axes of size 1. ok is false when that
// is impossible or the axes are invalid (simplego then reports or handles
// it). No axes means every axis.
func reduceGroups(shape shapes.Shape, axes []int) (outer, reduced, inner int, ok bool) {
	rank := shape.Rank()
	isReduced := make([]bool, rank)
	if len(axes) == 0 {
		if rank == 0 {
			return 0, 0, 0, false
		}
		for a := range isReduced {
			isReduced[a] = true
		}
	}
	for _, a := range axes {
		if a < 0 || a >= rank || isReduced[a] {
			return 0, 0, 0, false
		}
		isReduced[a] = true
	}
	// Phases: 0 before the reduced run, 1 inside it, 2 after it.
	outer, reduced, inner = 1, 1, 1
	phase := 0
	for a, d := range shape.Dimensions {
		if d == 1 {
			continue
		}
		switch {
		case isReduced[a] && phase <= 1:
			phase = 1
			reduced *= d
		case isReduced[a]:
			return 0, 0, 0, false // a second reduced run
		case phase == 0:
			outer *= d
		default:
			phase = 2
			inner *= d
		}
	}
	return outer, reduced, inner, true
}

// sumMiddle sets out[o*inner+i] = Σ_r in[(o*reduced+r)*inner+i], summing in
// a fixed order.
func sumMiddle(out, in []float32, outer, reduced, inner int) {
	if reduced == 0 {
		clear(out)
		return
	}
	if inner == 1 {
		for o := range outer {
			out[o] = sumRow(in[o*reduced : (o+1)*reduced])
		}
		return
	}
	for o := range outer {
		dst := out[o*inner : (o+1)*inner]
		block := in[o*reduced*inner : (o+1)*reduced*inner]
		copy(dst, block[:inner])
		for r := 1; r < reduced; r++ {
			binVV(binAdd, dst, dst, block[r*inner:(r+1)*inner])
		}
	}
}

// sumRow adds a contiguous row with four partial sums (for instruction-level
// parallelism), combined in a fixed order.
func sumRow(x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+3 < len(x); i += 4 {
		s0 += x[i]
		s1 += x[i+1]
		s2 += x[i+2]
		s3 += x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return (s0 + s1) + (s2 + s3)
}
