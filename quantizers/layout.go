package quantizers

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// layout maps a Config's granularity onto one tensor shape: the view of x
// the quantization works on (x itself, or x with its last axis split into
// groups), the view axes reduced to get one statistic per parameter, the
// parameters' shape broadcastable to the view, and the shape they are
// stored with.
type layout struct {
	xDims      []int
	viewDims   []int
	reduceAxes []int
	bDims      []int // view rank, 1 on reduced axes; a scalar per tensor
	paramDims  []int // stored variable shape
}

// newLayout builds the layout of cfg for x's shape.
func newLayout(cfg Config, xs shapes.Shape) (layout, error) {
	dims := xs.Dimensions
	l := layout{xDims: dims, viewDims: dims}
	switch cfg.Granularity {
	case PerTensor:
		l.reduceAxes = allAxes(len(dims))
		l.bDims = []int{} // scalars take the backends' fast broadcasting path
		l.paramDims = []int{1}
	case PerChannel:
		a, err := normalizeAxis(cfg.Axis, len(dims))
		if err != nil {
			return l, fmt.Errorf("axis: %w", err)
		}
		for i := range dims {
			if i != a {
				l.reduceAxes = append(l.reduceAxes, i)
			}
		}
		l.bDims = ones(len(dims))
		l.bDims[a] = dims[a]
		l.paramDims = []int{dims[a]}
	case PerGroup:
		v, err := groupedDims(dims, cfg.GroupSize)
		if err != nil {
			return l, err
		}
		l.viewDims = v
		l.reduceAxes = []int{len(v) - 1}
		l.bDims = append(append([]int(nil), v[:len(v)-1]...), 1)
		l.paramDims = append([]int(nil), v[:len(v)-1]...)
	default:
		return l, fmt.Errorf("granularity: unknown %q", cfg.Granularity)
	}
	return l, nil
}

// view reshapes x to the layout's view.
func (l layout) view(x *Node) *Node {
	if len(l.viewDims) == len(l.xDims) {
		return x
	}
	return Reshape(x, l.viewDims...)
}

// back reshapes a view-shaped result to x's shape.
func (l layout) back(y *Node) *Node {
	if len(l.viewDims) == len(l.xDims) {
		return y
	}
	return Reshape(y, l.xDims...)
}

// toB reshapes a stored-shape parameter to the view's rank.
func (l layout) toB(p *Node) *Node { return Reshape(p, l.bDims...) }

// reduce applies a reduction over the layout's reduced axes, giving a
// result of shape bDims.
func (l layout) reduce(x *Node, fn func(x *Node, axes ...int) *Node) *Node {
	if len(l.bDims) == 0 {
		return fn(x, l.reduceAxes...)
	}
	return ReduceAndKeep(x, fn, l.reduceAxes...)
}

// toParam reshapes a view-rank statistic to the stored shape.
func (l layout) toParam(b *Node) *Node { return Reshape(b, l.paramDims...) }

// reduced returns how many elements each parameter summarises.
func (l layout) reduced() int {
	n := 1
	for _, a := range l.reduceAxes {
		n *= l.viewDims[a]
	}
	return n
}

// allAxes returns 0..n-1.
func allAxes(n int) []int {
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	return a
}
