package backend

import (
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
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

// BenchmarkDotGeneral times one DotGeneral on the clip-tiny training shapes
// (batch 64: 1088 image tokens, width 128, MLP 512; 2 heads of 64 over 17
// tokens) with simplego's matmul and with internal/gemm, each as the whole
// graph; MB/s reads as millions of multiply-adds per second.
func BenchmarkDotGeneral(b *testing.B) {
	cases := []struct {
		name           string
		lhs, rhs       []int
		lc, lb, rc, rb []int
	}{
		{"linear_1088x128_W128x128", []int{64, 17, 128}, []int{128, 128}, []int{2}, nil, []int{1}, nil},
		{"mlp_up_1088x128_W512x128", []int{64, 17, 128}, []int{512, 128}, []int{2}, nil, []int{1}, nil},
		{"mlp_down_1088x512_W128x512", []int{64, 17, 512}, []int{128, 512}, []int{2}, nil, []int{1}, nil},
		{"wgrad_128x128_over_1088", []int{64, 17, 128}, []int{64, 17, 128}, []int{0, 1}, nil, []int{0, 1}, nil},
		{"wgrad_512x128_over_1088", []int{64, 17, 512}, []int{64, 17, 128}, []int{0, 1}, nil, []int{0, 1}, nil},
		{"attn_scores_b64_h2_17x17x64", []int{64, 17, 2, 64}, []int{64, 17, 2, 64}, []int{3}, []int{0, 2}, []int{3}, []int{0, 2}},
		{"attn_values_b64_h2_17x64x17", []int{64, 2, 17, 17}, []int{64, 17, 2, 64}, []int{3}, []int{0, 1}, []int{1}, []int{0, 2}},
	}
	for _, c := range cases {
		macs := int64(1)
		for _, d := range c.lhs { // batch × lhs cross × contracted
			macs *= int64(d)
		}
		for i, d := range c.rhs {
			if !slices.Contains(c.rc, i) && !slices.Contains(c.rb, i) {
				macs *= int64(d)
			}
		}
		for _, be := range backendsToCompare(b) {
			b.Run(c.name+"/"+be.name, func(b *testing.B) {
				benchGraph(b, be.b, func(l, r *graph.Node) *graph.Node {
					return graph.DotGeneral(l, c.lc, c.lb, r, c.rc, c.rb)
				}, macs, zeros(c.lhs), zeros(c.rhs))
			})
		}
	}
}

// BenchmarkReduceSum times float32 sums of a [64,17,512] activation (the
// clip-tiny MLP width) over the last axis (LayerNorm-, softmax-like) and
// over the first two (bias gradient), with simplego's reduction and with the
// staged backend's.
func BenchmarkReduceSum(b *testing.B) {
	for _, c := range []struct {
		name string
		axes []int
	}{{"rows", []int{2}}, {"columns", []int{0, 1}}} {
		for _, be := range backendsToCompare(b) {
			b.Run(c.name+"/"+be.name, func(b *testing.B) {
				benchGraph(b, be.b, func(x *graph.Node) *graph.Node {
					return graph.ReduceSum(x, c.axes...)
				}, 64*17*512*4, zeros([]int{64, 17, 512}))
			})
		}
	}
}

// BenchmarkElementwise times float32 element-wise ops on clip-tiny shapes
// (batch 64: [64,17,128] activations, [64,17,512] MLP activations,
// [512,128] weights) each as the whole graph, with plain simplego and
// with the staged backend's Go kernels; MB/s reads as millions of values
// per second.
func BenchmarkElementwise(b *testing.B) {
	cases := []struct {
		name     string
		lhs, rhs []int
		fn       func(x, y *graph.Node) *graph.Node
	}{
		{"Mul_same_64x17x512", []int{64, 17, 512}, []int{64, 17, 512}, graph.Mul},
		{"Mul_scalar_64x17x512", []int{64, 17, 512}, []int{}, graph.Mul},
		{"Max_scalar_64x17x128", []int{64, 17, 128}, []int{}, graph.Max},
		{"Mul_per-channel_512x128_by_512x1", []int{512, 128}, []int{512, 1}, graph.Mul},
		{"Add_bias_64x17x128_by_128", []int{64, 17, 128}, []int{1, 1, 128}, graph.Add},
		{"Div_layernorm_64x17x128_by_64x17x1", []int{64, 17, 128}, []int{64, 17, 1}, graph.Div},
		{"Sub_scalar-lhs_64x17x128", []int{}, []int{64, 17, 128}, graph.Sub},
		{"Where_Equal_64x17x128", []int{64, 17, 128}, []int{64, 17, 128}, func(x, y *graph.Node) *graph.Node {
			return graph.Where(graph.Equal(x, y), x, graph.ScalarZero(x.Graph(), dtypes.Float32))
		}},
		{"Sigmoid_64x17x512", []int{64, 17, 512}, []int{}, func(x, _ *graph.Node) *graph.Node { return graph.Sigmoid(x) }},
		{"Broadcast_scalar_to_64x17x128", []int{}, []int{64, 17, 128}, func(x, y *graph.Node) *graph.Node {
			return graph.BroadcastToShape(x, y.Shape())
		}},
		{"Transpose_heads_64x17x2x64", []int{64, 17, 2, 64}, []int{}, func(x, _ *graph.Node) *graph.Node {
			return graph.TransposeAllDims(x, 0, 2, 1, 3)
		}},
	}
	for _, c := range cases {
		size := int64(1)
		for _, d := range c.lhs {
			size *= int64(d)
		}
		if len(c.rhs) > len(c.lhs) {
			size = 1
			for _, d := range c.rhs {
				size *= int64(d)
			}
		}
		for _, be := range backendsToCompare(b) {
			b.Run(c.name+"/"+be.name, func(b *testing.B) {
				benchGraph(b, be.b, c.fn, size, zeros(c.lhs), zeros(c.rhs))
			})
		}
	}
}

// BenchmarkStageOverhead measures the cost of one op on a tiny tensor
// ([8] values) in a chain of 256: all element-wise (consecutive host ops,
// no simplego stage between them), alternating with an op simplego runs
// (every host op then starts and ends a stage), and plain simplego; ns/op
// divided by 256 is the cost per op.
func BenchmarkStageOverhead(b *testing.B) {
	const chain = 256
	for _, be := range backendsToCompare(b) {
		for _, alternating := range []bool{false, true} {
			name := map[bool]string{false: "host-only", true: "alternating"}[alternating]
			b.Run(name+"/"+be.name, func(b *testing.B) {
				benchGraph(b, be.b, func(x *graph.Node) *graph.Node {
					for i := range chain {
						if alternating && i%2 == 1 {
							x = graph.Cos(x) // simplego's
						} else {
							x = graph.MulScalar(x, 0.5)
						}
					}
					return x
				}, 0, zeros([]int{8}))
			})
		}
	}
}

// namedBackend is a backend under comparison.
type namedBackend struct {
	name string
	b    backends.Backend
}

// backendsToCompare opens plain simplego ("simplego") and qatclip's pure-Go
// backend ("staged": simplego with qatclip's matmul, sums and element-wise
// kernels), finalized when the benchmark ends.
func backendsToCompare(b *testing.B) []namedBackend {
	var out []namedBackend
	for _, c := range []struct{ name, config string }{
		{"simplego", "go:" + DefaultGoOptions + "," + PlainOption}, {"staged", "go"}} {
		be, err := Open(c.config, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(be.Finalize)
		out = append(out, namedBackend{c.name, be})
	}
	return out
}

// zeros returns a float32 tensor of zeros with the given dimensions.
func zeros(dims []int) *tensors.Tensor {
	return tensors.FromShape(shapes.Make(dtypes.Float32, dims...))
}

// benchGraph times fn (a graph function of len(inputs) nodes returning one
// node) on be: one untimed run compiles it, then b.N runs, bytes per run
// for b.SetBytes (0: none).
func benchGraph[F graph.ExecGraphFn](b *testing.B, be backends.Backend, fn F, bytes int64, inputs ...*tensors.Tensor) {
	exec := graph.MustNewExec(be, fn)
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	exec.MustExec(args...)[0].FinalizeAll()
	if bytes > 0 {
		b.SetBytes(bytes)
	}
	b.ResetTimer()
	for range b.N {
		exec.MustExec(args...)[0].FinalizeAll()
	}
}
