package backend

import (
	"reflect"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

var installOnce sync.Once

// InstallFastGradients replaces GoMLX's gradient of DotGeneral (which every
// matmul, Einsum and Dot call builds) with
// one made of DotGeneral ops (dL/dA = dL/dC · Bᵀ, with batch and
// contracting axes carried over), instead of the stock broadcast-multiply +
// reduce-sum graphs, which are an order of magnitude slower on the pure-Go
// backend. The gradients are mathematically identical (tested against the
// stock ones). It is safe to call more than once; the change is process-wide
// because GoMLX keeps its gradient table in package state.
func InstallFastGradients() {
	installOnce.Do(func() {
		graph.VJPRegistration[graph.NodeTypeDotGeneral] = FastDotGeneralVJP
	})
}

// FastDotGeneralVJP is the DotGeneral gradient InstallFastGradients installs.
func FastDotGeneralVJP(node *graph.Node, vjpOutputs []*graph.Node, _ shapes.Shape) []*graph.Node {
	return dotGeneralVJP(node, vjpOutputs[0])
}

// dotGeneralAxes reads the contracting and batch axes of a DotGeneral node.
// GoMLX keeps them in unexported fields; reflection reads them without
// modifying anything.
func dotGeneralAxes(node *graph.Node) (lc, lb, rc, rb []int) {
	in := reflect.ValueOf(node).Elem().FieldByName("inputs").Elem().Elem()
	ints := func(name string) []int {
		f := in.FieldByName(name)
		out := make([]int, f.Len())
		for i := range out {
			out[i] = int(f.Index(i).Int())
		}
		return out
	}
	return ints("lhsContractingAxes"), ints("lhsBatchAxes"), ints("rhsContractingAxes"), ints("rhsBatchAxes")
}

// crossAxes lists the axes of a rank-r operand that are neither contracted nor batch.
func crossAxes(rank int, contracting, batch []int) []int {
	var out []int
	for a := range rank {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// dotGeneralVJP computes the gradients of C = DotGeneral(A, lc, lb, B, rc, rb).
// C's axes are [batch..., A's cross axes..., B's cross axes...].
func dotGeneralVJP(node, v *graph.Node) []*graph.Node {
	inputs := node.Inputs()
	lhs, rhs := inputs[0], inputs[1]
	lc, lb, rc, rb := dotGeneralAxes(node)
	lx := crossAxes(lhs.Rank(), lc, lb)
	rx := crossAxes(rhs.Rank(), rc, rb)
	nb := len(lb)
	vBatch := make([]int, nb)
	for i := range vBatch {
		vBatch[i] = i
	}
	vLhsCross := make([]int, len(lx))
	for i := range lx {
		vLhsCross[i] = nb + i
	}
	vRhsCross := make([]int, len(rx))
	for i := range rx {
		vRhsCross[i] = nb + len(lx) + i
	}

	// dA: contract v's B-cross axes with B's cross axes, batch over batch axes.
	// Result axes: [batch..., A-cross..., B's contracting axes in ascending order].
	dA := graph.DotGeneral(v, vRhsCross, vBatch, rhs, rx, rb)
	var dAOrigin []int // dAOrigin[p] = axis of A that result axis p holds.
	dAOrigin = append(dAOrigin, lb...)
	dAOrigin = append(dAOrigin, lx...)
	for _, a := range crossAxes(rhs.Rank(), rx, rb) { // B's contracting axes, ascending
		dAOrigin = append(dAOrigin, lc[slices.Index(rc, a)])
	}
	dA = permuteTo(dA, dAOrigin)

	// dB: contract A's cross axes with v's A-cross axes, batch over batch axes.
	// Result axes: [batch..., A's contracting axes ascending..., B-cross...].
	dB := graph.DotGeneral(lhs, lx, lb, v, vLhsCross, vBatch)
	var dBOrigin []int
	dBOrigin = append(dBOrigin, rb...)
	for _, a := range crossAxes(lhs.Rank(), lx, lb) { // A's contracting axes, ascending
		dBOrigin = append(dBOrigin, rc[slices.Index(lc, a)])
	}
	dBOrigin = append(dBOrigin, rx...)
	dB = permuteTo(dB, dBOrigin)
	return []*graph.Node{dA, dB}
}

// permuteTo transposes x, whose axis p corresponds to target axis origin[p],
// into target axis order.
func permuteTo(x *graph.Node, origin []int) *graph.Node {
	perm := make([]int, len(origin))
	identity := true
	for p, a := range origin {
		perm[a] = p
		if a != p {
			identity = false
		}
	}
	if identity {
		return x
	}
	return graph.TransposeAllAxes(x, perm...)
}
