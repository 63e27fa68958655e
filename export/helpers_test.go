package export

import (
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// newBackend returns the pure-Go backend with sequential op scheduling.
func newBackend(t testing.TB) backends.Backend {
	return testbackend.Go(t)
}

// fixtureModel is the small sharded HF model committed with layers/clip.
func fixtureModel(t testing.TB) string {
	return filepath.Join(testutil.RepoRoot(t), "layers", "clip", "testdata", "hf-gelu-sharded")
}

// modelDirs lists the models the round-trip tests use: the committed
// fixture, and shared/golden/clip-tiny when ../shared is present.
func modelDirs(t testing.TB) []string {
	dirs := []string{fixtureModel(t)}
	shared := os.Getenv("QATCLIP_SHARED")
	if shared == "" {
		shared = filepath.Join(filepath.Dir(testutil.RepoRoot(t)), "shared")
	}
	tiny := filepath.Join(shared, "golden", "clip-tiny")
	if _, err := os.Stat(filepath.Join(tiny, "model.safetensors")); err == nil {
		dirs = append(dirs, tiny)
	}
	return dirs
}

// inputs are a model folder's pixel_values.npy and input_ids.npy.
type inputs struct {
	pixels  []float32
	n       int
	ids     []int32
	m, l    int
	pixDims []int
}

func readInputs(t testing.TB, dir string) inputs {
	t.Helper()
	p, err := npy.ReadFile(filepath.Join(dir, "pixel_values.npy"))
	if err != nil {
		t.Fatal(err)
	}
	pf, err := p.Float32()
	if err != nil {
		t.Fatal(err)
	}
	i, err := npy.ReadFile(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	iv, err := i.Int32()
	if err != nil {
		t.Fatal(err)
	}
	return inputs{pixels: pf, n: p.Shape[0], ids: iv, m: i.Shape[0], l: i.Shape[1], pixDims: p.Shape}
}

// quantModel is a model fake-quantized by a recipe and calibrated on its
// folder's inputs.
type quantModel struct {
	dir  string
	ck   *clip.Checkpoint
	ctx  *context.Context
	hook *layers.QuantHook
	plan *recipes.Plan
	in   inputs
	b    backends.Backend
}

// calibrated loads dir, fake-quantizes it with recipe (and overrides) and
// calibrates it on the folder's inputs.
func calibrated(t testing.TB, b backends.Backend, dir, recipe string, sets ...string) *quantModel {
	t.Helper()
	ck, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load(recipe, sets...)
	if err != nil {
		t.Fatal(err)
	}
	hook, plan, err := clip.QuantHook(r, ck.Config)
	if err != nil {
		t.Fatal(err)
	}
	qm := &quantModel{dir: dir, ck: ck, ctx: ctx, hook: hook, plan: plan, in: readInputs(t, dir), b: b}
	e, err := clip.NewEmbedder(b, ctx, ck.Config, hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Calibrate(qm.in.pixels, qm.in.n, qm.in.ids, qm.in.m, qm.in.l, 4); err != nil {
		t.Fatal(err)
	}
	return qm
}

// source returns the export source of the model.
func (q *quantModel) source() Source {
	return Source{Config: q.ck.Config, Ctx: q.ctx, Plan: q.plan}
}

// embed returns image and text features of the model in ctx with hook.
func embed(t testing.TB, b backends.Backend, ctx *context.Context, cfg clip.Config, hook layers.Hook, in inputs) (img, txt []float32) {
	t.Helper()
	e, err := clip.NewEmbedder(b, ctx, cfg, hook)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = e.ImageFeatures(in.pixels, in.n, 4); err != nil {
		t.Fatal(err)
	}
	if txt, err = e.TextFeatures(in.ids, in.m, in.l, 4); err != nil {
		t.Fatal(err)
	}
	return img, txt
}

// fakeQuantWeights runs every weight quantizer of the plan on its weight in
// a (non-calibrating) graph and returns the fake-quantized weights by module.
func fakeQuantWeights(t testing.TB, q *quantModel) map[string][]float32 {
	t.Helper()
	var mods []string
	for _, l := range q.plan.Layers {
		if l.Weights != nil && l.Weights.Method != "none" {
			mods = append(mods, l.Module)
		}
	}
	exec, err := context.NewExec(q.b, q.ctx.Checked(false), func(ctx *context.Context, g *graph.Graph) []*graph.Node {
		out := make([]*graph.Node, len(mods))
		for i, m := range mods {
			mctx := ctx.In(m)
			w := mctx.GetVariableByScopeAndName(mctx.Scope(), "weight").ValueGraph(g)
			out[i] = q.hook.Apply(mctx, m, layers.SiteWeight, w)
		}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Exec()
	if err != nil {
		t.Fatal(err)
	}
	res := map[string][]float32{}
	for i, m := range mods {
		res[m] = tensors.MustCopyFlatData[float32](outs[i])
	}
	return res
}

// varData returns the float32 data of variable module/name of ctx.
func varData(t testing.TB, ctx *context.Context, module, name string) []float32 {
	t.Helper()
	v := ctx.GetVariableByScopeAndName(ctx.In(module).Scope(), name)
	if v == nil {
		t.Fatalf("variable %s/%s missing", module, name)
	}
	val, err := v.Value()
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](val)
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
