package train

import (
	"io"
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// logSoftmax64 returns log softmax of xs in float64.
func logSoftmax64(xs []float64) []float64 {
	mx := slices.Max(xs)
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - mx)
	}
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x - mx - math.Log(s)
	}
	return out
}

// evalScalar runs a graph function of float32 inputs returning a scalar.
func evalScalar(t *testing.T, fn func(g *graph.Graph, in []*graph.Node) *graph.Node, inputs ...*tensors.Tensor) float64 {
	t.Helper()
	be := goBackend(t)
	exec, err := graph.NewExec(be, func(in []*graph.Node) *graph.Node { return fn(in[0].Graph(), in) })
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, x := range inputs {
		c, err := x.LocalClone()
		if err != nil {
			t.Fatal(err)
		}
		args[i] = c
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return float64(out[0].Value().(float32))
}

func TestContrastiveLoss(t *testing.T) {
	n := 3
	m := []float64{2, 0.5, -1, 0.3, 1.5, 0.2, -0.4, 0.8, 3}
	// Reference: mean CE over rows and over columns, target the diagonal.
	rows, cols := 0.0, 0.0
	for i := range n {
		r := logSoftmax64(m[i*n : (i+1)*n])
		rows -= r[i]
		col := []float64{m[i], m[n+i], m[2*n+i]}
		cols -= logSoftmax64(col)[i]
	}
	want := (rows/float64(n) + cols/float64(n)) / 2
	m32 := make([]float32, len(m))
	for i, x := range m {
		m32[i] = float32(x)
	}
	got := evalScalar(t, func(_ *graph.Graph, in []*graph.Node) *graph.Node { return ContrastiveLoss(in[0]) },
		tensors.FromFlatDataAndDimensions(m32, n, n))
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("contrastive %g, want %g", got, want)
	}
}

func TestDistillLosses(t *testing.T) {
	a := tensors.FromFlatDataAndDimensions([]float32{1, 2, 0.5, -1, 3, 0}, 2, 3)
	b := tensors.FromFlatDataAndDimensions([]float32{1, 0, 0.5, 2, 3, 1}, 2, 3)
	same := evalScalar(t, func(_ *graph.Graph, in []*graph.Node) *graph.Node { return DistillLogitsLoss(in[0], in[0], 2) }, a)
	if math.Abs(same) > 1e-6 {
		t.Errorf("KL of identical logits %g", same)
	}
	// Reference for temperature 2: rows (over axis 1) and columns (axis 0).
	av := []float64{1, 2, 0.5, -1, 3, 0}
	bv := []float64{1, 0, 0.5, 2, 3, 1}
	kl := func(t, s []float64) float64 {
		lt, ls := logSoftmax64(t), logSoftmax64(s)
		k := 0.0
		for i := range lt {
			k += math.Exp(lt[i]) * (lt[i] - ls[i])
		}
		return k
	}
	div := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = x / 2
		}
		return out
	}
	rowsKL := (kl(div(av[0:3]), div(bv[0:3])) + kl(div(av[3:6]), div(bv[3:6]))) / 2
	colsKL := 0.0
	for j := range 3 {
		colsKL += kl(div([]float64{av[j], av[3+j]}), div([]float64{bv[j], bv[3+j]}))
	}
	colsKL /= 3
	want := (rowsKL + colsKL) / 2 * 4
	got := evalScalar(t, func(_ *graph.Graph, in []*graph.Node) *graph.Node { return DistillLogitsLoss(in[0], in[1], 2) }, a, b)
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("distill logits %g, want %g", got, want)
	}
	// Features: identical embeddings give 0, scaled ones too (cosine), opposite ones 2.
	feat := evalScalar(t, func(_ *graph.Graph, in []*graph.Node) *graph.Node {
		return DistillFeaturesLoss(in[0], in[0], graph.MulScalar(in[0], 3), graph.Neg(in[0]))
	}, a)
	if math.Abs(feat-1) > 1e-6 {
		t.Errorf("features loss %g, want (0 + 2)/2 = 1", feat)
	}
}

func TestClassificationLoss(t *testing.T) {
	img := tensors.FromFlatDataAndDimensions([]float32{1, 0, 0, 2, 3, 4}, 3, 2)
	head := tensors.FromFlatDataAndDimensions([]float32{1, 0, 0, 1}, 2, 2)
	labels := tensors.FromFlatDataAndDimensions([]int32{0, -1, 1}, 3)
	got := evalScalar(t, func(g *graph.Graph, in []*graph.Node) *graph.Node {
		return ClassificationLoss(in[0], in[1], graph.Const(g, float32(10)), in[2])
	}, img, head, labels)
	// Row 0: cos (1, 0); row 2: cos (0.6, 0.8); row 1 has no label.
	want := (-logSoftmax64([]float64{10, 0})[0] - logSoftmax64([]float64{6, 8})[1]) / 2
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("classification %g, want %g", got, want)
	}
}

func TestClampLogitScale(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{1, 1}, {4.6, 4.6}, {7, MaxLogitScale}} {
		got := evalScalar(t, func(_ *graph.Graph, in []*graph.Node) *graph.Node { return ClampLogitScale(in[0]) },
			tensors.FromValue(float32(c.in)))
		if math.Abs(got-c.want) > 1e-6 {
			t.Errorf("clamp(%g) = %g, want %g", c.in, got, c.want)
		}
	}
}

func TestLRFactor(t *testing.T) {
	cases := []struct {
		schedule            string
		warmup, step, total int
		want                float64
	}{
		{"constant", 0, 5, 10, 1},
		{"constant", 4, 0, 10, 0.25},
		{"constant", 4, 3, 10, 1},
		{"cosine", 2, 1, 12, 1},
		{"cosine", 2, 2, 12, 1},
		{"cosine", 2, 7, 12, 0.5},
		{"cosine", 2, 12, 12, 0},
		{"linear", 0, 5, 10, 0.5},
		{"linear", 0, 0, 10, 1},
	}
	for _, c := range cases {
		got, err := LRFactor(c.schedule, c.warmup, c.step, c.total)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("LRFactor(%s, warmup %d, step %d/%d) = %g, %v; want %g", c.schedule, c.warmup, c.step, c.total, got, err, c.want)
		}
	}
	if _, err := LRFactor("step", 0, 1, 2); err == nil {
		t.Error("unknown schedule accepted")
	}
}

func TestMemoryData(t *testing.T) {
	cfg := tinyConfig()
	d := memData(t, cfg, 10, 3, true, 42)
	if d.NumBatches() != 3 {
		t.Fatalf("%d batches, want 3 (the incomplete one dropped)", d.NumBatches())
	}
	read := func(epoch, start int) [][]int32 {
		it, err := d.Epoch(epoch, start)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out [][]int32
		for {
			b, err := it.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.N != 3 || b.SeqLen() != cfg.Text.MaxPositionEmbeddings || len(b.Labels) != 3 {
				t.Fatalf("batch %+v", b)
			}
			out = append(out, b.InputIDs)
		}
	}
	e0, e0again, e1 := read(0, 0), read(0, 0), read(1, 0)
	if len(e0) != 3 || !slices.EqualFunc(e0, e0again, slices.Equal) {
		t.Error("epoch 0 not deterministic")
	}
	if slices.EqualFunc(e0, e1, slices.Equal) {
		t.Error("epochs 0 and 1 have the same order")
	}
	if tail := read(0, 2); len(tail) != 1 || !slices.Equal(tail[0], e0[2]) {
		t.Error("starting at batch 2 does not give the epoch's third batch")
	}
	if _, err := d.Epoch(0, 4); err == nil {
		t.Error("start past the end accepted")
	}
	if _, err := NewMemoryData(make([]float32, 10), make([]int32, 9), nil, 2, 1, 0, false); err == nil {
		t.Error("ragged ids accepted")
	}
}
