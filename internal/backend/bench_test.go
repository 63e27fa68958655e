package backend

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gopjrt/dtypes"
)

// BenchmarkLinearGradient times forward+backward of a two-layer MLP on
// [256,256] inputs with GoMLX's stock DotGeneral gradient and with
// FastDotGeneralVJP, on the pure-Go backend; compare the two ns/op.
func BenchmarkLinearGradient(b *testing.B) {
	be, err := Open("go", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []struct {
		name string
		vjp  graph.VJP
	}{{"stock", stockDotGeneralVJP}, {"fast", FastDotGeneralVJP}} {
		b.Run(v.name, func(b *testing.B) {
			graph.VJPRegistration[graph.NodeTypeDotGeneral] = v.vjp
			defer func() { graph.VJPRegistration[graph.NodeTypeDotGeneral] = FastDotGeneralVJP }()
			exec := graph.MustNewExec(be, func(x, w1, w2 *graph.Node) []*graph.Node {
				h := graph.Tanh(graph.DotGeneral(x, []int{1}, nil, w1, []int{1}, nil))
				y := graph.DotGeneral(h, []int{1}, nil, w2, []int{1}, nil)
				return graph.Gradient(graph.ReduceAllSum(graph.Square(y)), w1, w2)
			})
			x := tensors.FromShape(shapes.Make(dtypes.Float32, 256, 256))
			w1 := tensors.FromShape(shapes.Make(dtypes.Float32, 1024, 256))
			w2 := tensors.FromShape(shapes.Make(dtypes.Float32, 256, 1024))
			exec.MustExec(x, w1, w2) // compile
			b.ResetTimer()
			for range b.N {
				exec.MustExec(x, w1, w2)
			}
		})
	}
}
