package backend

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gopjrt/dtypes"
)

// stockDotGeneralVJP is GoMLX's own gradient, captured before any test
// installs the fast one.
var stockDotGeneralVJP = graph.VJPRegistration[graph.NodeTypeDotGeneral]

// TestFastDotGeneralGradientsMatchStock compares, for DotGeneral layouts
// with batch axes, several contracting axes and permuted axes, the
// gradients of sum(C * W) w.r.t. A and B under GoMLX's stock VJP and ours.
func TestFastDotGeneralGradientsMatchStock(t *testing.T) {
	b, err := simplego.New(DefaultGoOptions)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name           string
		lhs, rhs       []int
		lc, lb, rc, rb []int
	}{
		{"matmul", []int{3, 4}, []int{4, 5}, []int{1}, nil, []int{0}, nil},
		{"linear x@W^T", []int{2, 3, 4}, []int{5, 4}, []int{2}, nil, []int{1}, nil},
		{"attention scores", []int{2, 3, 6, 4}, []int{2, 3, 7, 4}, []int{3}, []int{0, 1}, []int{3}, []int{0, 1}},
		{"batch not first", []int{6, 2, 4}, []int{4, 2, 5}, []int{2}, []int{1}, []int{0}, []int{1}},
		{"two contracting axes out of order", []int{3, 4, 5}, []int{5, 6, 4}, []int{1, 2}, nil, []int{2, 0}, nil},
		{"outer product", []int{3}, []int{4}, nil, nil, nil, nil},
		{"vector dot", []int{7}, []int{7}, []int{0}, nil, []int{0}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			grads := func(vjp graph.VJP) [][]float32 {
				graph.VJPRegistration[graph.NodeTypeDotGeneral] = vjp
				defer func() { graph.VJPRegistration[graph.NodeTypeDotGeneral] = FastDotGeneralVJP }()
				exec := graph.MustNewExec(b, func(g *graph.Graph) []*graph.Node {
					lhs := graph.Sin(graph.Iota(g, shapes.Make(dtypes.Float32, c.lhs...), 0))
					lhs = graph.Add(lhs, graph.Cos(graph.Iota(g, shapes.Make(dtypes.Float32, c.lhs...), len(c.lhs)-1)))
					rhs := graph.Cos(graph.MulScalar(graph.Iota(g, shapes.Make(dtypes.Float32, c.rhs...), 0), 0.7))
					rhs = graph.Add(rhs, graph.Sin(graph.Iota(g, shapes.Make(dtypes.Float32, c.rhs...), len(c.rhs)-1)))
					out := graph.DotGeneral(lhs, c.lc, c.lb, rhs, c.rc, c.rb)
					w := graph.Const(g, float32(0.7))
					if out.Rank() > 0 {
						w = graph.Sin(graph.AddScalar(graph.Iota(g, out.Shape(), 0), 0.3))
					}
					if out.Rank() > 1 {
						w = graph.Mul(w, graph.Cos(graph.Iota(g, out.Shape(), out.Rank()-1)))
					}
					loss := graph.ReduceAllSum(graph.Mul(out, w))
					return graph.Gradient(loss, lhs, rhs)
				})
				out := exec.MustExec()
				return [][]float32{tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])}
			}
			want := grads(stockDotGeneralVJP)
			got := grads(FastDotGeneralVJP)
			for i := range want {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("grad %d: %d values, want %d", i, len(got[i]), len(want[i]))
				}
				for j := range want[i] {
					if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-5 {
						t.Fatalf("grad %d[%d] = %g, stock %g", i, j, got[i][j], want[i][j])
					}
				}
			}
		})
	}
}
