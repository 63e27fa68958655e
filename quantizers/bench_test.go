package quantizers

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/qatclip/qatclip/internal/testutil/testbackend"
)

// Benchmark shapes: the op benchmarks use a [512, 2048] tensor (a CLIP
// ViT-B/32 MLP weight is [3072, 768]); the Linear benchmark multiplies a
// [128, 256] batch by a [256, 256] weight.
const benchRows, benchCols = 512, 2048

const linearBatch, linearIn, linearOut = 128, 256, 256

func benchTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	d := make([]float32, size(dims))
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(d, dims...)
}

// runBench executes exec b.N times with args, freeing the outputs.
func runBench(b *testing.B, exec interface {
	Exec(args ...any) ([]*tensors.Tensor, error)
}, args ...any) {
	b.Helper()
	run := func() {
		out, err := exec.Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			o.FinalizeAll()
		}
	}
	run() // compile outside the timing
	b.ResetTimer()
	for range b.N {
		run()
	}
}

// BenchmarkFakeQuant times forward + backward (gradient of sum(y*g) with
// respect to x and the quantization parameters) of the fake-quant ops on a
// [512, 2048] float32 tensor; "none" is the same graph without quantization.
// It runs on plain simplego ("simplego") and on the pure-Go backend as
// qatclip opens it ("go", element-wise ops on internal/backend's kernels).
func BenchmarkFakeQuant(b *testing.B) {
	backs := []struct {
		name    string
		backend backends.Backend
	}{{"simplego", newTestBackend(b)}, {"go", testbackend.Go(b)}}
	for _, be := range backs {
		// Tensors are tied to the backend they first run on: a fresh set
		// (the same values) per backend.
		rng := rand.New(rand.NewPCG(5, 6))
		x := benchTensor(rng, benchRows, benchCols)
		g := benchTensor(rng, benchRows, benchCols)
		sT := tensors.FromValue([]float32{0.02})
		zT := tensors.FromValue([]float32{3})
		scales := make([]float32, benchRows)
		for i := range scales {
			scales[i] = 0.02 + 0.0001*float32(i)
		}
		sC := tensors.FromFlatDataAndDimensions(scales, benchRows)
		zC := tensors.FromFlatDataAndDimensions(make([]float32, benchRows), benchRows)
		cases := []struct {
			name string
			fn   func(x, s, z *Node) *Node
			s, z *tensors.Tensor
		}{
			{"none", func(x, s, z *Node) *Node {
				return Add(x, Mul(ReduceAllSum(Add(s, z)), ScalarZero(x.Graph(), x.DType())))
			}, sT, zT},
			{"per-tensor", func(x, s, z *Node) *Node { return FakeQuantPerTensor(x, s, z, 0, 255) }, sT, zT},
			{"per-channel", func(x, s, z *Node) *Node { return FakeQuantPerChannel(x, s, nil, 0, -128, 127) }, sC, zC},
			{"lsq-per-tensor", func(x, s, z *Node) *Node { return LearnableFakeQuantPerTensor(x, s, nil, -128, 127, 1e-3) }, sT, zT},
			{"lsq-per-channel", func(x, s, z *Node) *Node { return LearnableFakeQuantPerChannel(x, s, nil, 0, -8, 7, 1e-3) }, sC, zC},
			{"lsq+-per-tensor", func(x, s, z *Node) *Node { return LearnableFakeQuantPerTensor(x, s, z, 0, 255, 1e-3) }, sT, zT},
			{"pact", func(x, s, z *Node) *Node { return PACT(x, MulScalar(s, 100), 8) }, sT, zT},
		}
		for _, c := range cases {
			b.Run(be.name+"/"+c.name, func(b *testing.B) {
				exec := MustNewExec(be.backend, func(x, g, s, z *Node) []*Node {
					y := c.fn(x, s, z)
					return Gradient(ReduceAllSum(Mul(y, g)), x, s, z)
				})
				runBench(b, exec, x, g, c.s, c.z)
			})
		}
	}
}

// BenchmarkLinearLSQ times forward + backward (gradients for x, W and the
// quantizer parameters) of a Linear layer y = x @ W (x [128, 256],
// W [256, 256]) in float and with W8A8 LSQ
// quantizers (per-channel weights, per-tensor input) through the
// Quantizer interface, as layers use them: the ratio is the cost of fake
// quantization on a matmul of this size.
func BenchmarkLinearLSQ(b *testing.B) {
	backend := newTestBackend(b)
	rng := rand.New(rand.NewPCG(7, 8))
	x := benchTensor(rng, linearBatch, linearIn)
	w := benchTensor(rng, linearIn, linearOut)
	for _, quantized := range []bool{false, true} {
		name := "float"
		if quantized {
			name = "w8a8-lsq"
		}
		b.Run(name, func(b *testing.B) {
			runLinear(b, backend, quantized, x, w)
		})
	}
}

func runLinear(b *testing.B, backend backends.Backend, quantized bool, x, w *tensors.Tensor) {
	wCfg := DefaultConfig()
	wCfg.Method, wCfg.Granularity, wCfg.Axis = MethodLSQ, PerChannel, 1
	aCfg := DefaultConfig()
	aCfg.Method, aCfg.Symmetric = MethodLSQ, false
	wq, err := New(wCfg)
	if err != nil {
		b.Fatal(err)
	}
	aq, err := New(aCfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.New()
	fn := func(ctx *context.Context, x, w *Node) []*Node {
		g := x.Graph()
		ctx.SetTraining(g, true)
		if quantized {
			x = aq.Quantize(ctx.In("input_quant"), x)
			w = wq.Quantize(ctx.In("weight_quant"), w)
		}
		loss := ReduceAllSum(Square(Dot(x, w)))
		wrt := []*Node{x, w}
		for _, v := range LearnedVariables(ctx) {
			wrt = append(wrt, v.ValueGraph(g))
		}
		return Gradient(loss, wrt...)
	}
	// One call initialises the quantizers; a new Exec then builds the
	// steady-state graph (no initialisation arithmetic) that is timed.
	out, err := context.MustNewExec(backend, ctx, fn).Exec(x, w)
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range out {
		o.FinalizeAll()
	}
	runBench(b, context.MustNewExec(backend, ctx, fn), x, w)
}
