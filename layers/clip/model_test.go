package clip

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers"
)

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"vision_config": {"hidden_size": 64, "num_attention_heads": 2}, "text_config": {"eos_token_id": 2}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Vision.HiddenSize, want.Vision.NumAttentionHeads = 64, 2
	want.Text.EosTokenID = 2
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

func TestParseConfigLegacyDicts(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"text_config": {"hidden_size": 64, "num_attention_heads": 4, "vocab_size": 1000, "eos_token_id": 999},
		"text_config_dict": {"hidden_size": 96, "num_attention_heads": 3}, "vision_config_dict": null}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Text.HiddenSize != 96 || cfg.Text.NumAttentionHeads != 3 || cfg.Text.VocabSize != 1000 || cfg.Vision.HiddenSize != 768 {
		t.Errorf("got text %+v vision %+v", cfg.Text, cfg.Vision)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, errHas string }{
		{`{"vision_config": {"hidden_size": 100}}`, "not a multiple of num_attention_heads"},
		{`{"vision_config": {"image_size": 100}}`, "not a multiple of patch_size"},
		{`{"text_config": {"hidden_act": "swish"}}`, `unsupported hidden_act "swish"`},
		{`{"projection_dim": 0}`, "projection_dim must be positive"},
		{`{"text_config": {"eos_token_id": 50000}}`, "eos_token_id 50000"},
		{`{"text_config": {"hidden_size": "big"}}`, "hidden_size"},
		{`[1, 2]`, "cannot unmarshal"},
	} {
		if _, err := ParseConfig([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: error %v, want %q", c.json, err, c.errHas)
		}
	}
}

// tinyConfig is a small config for graph tests.
func tinyConfig() Config {
	cfg := DefaultConfig()
	cfg.Vision = VisionConfig{HiddenSize: 16, IntermediateSize: 24, NumAttentionHeads: 2, NumHiddenLayers: 2,
		ImageSize: 8, PatchSize: 4, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = TextConfig{VocabSize: 50, HiddenSize: 8, IntermediateSize: 12, NumAttentionHeads: 2, NumHiddenLayers: 1,
		MaxPositionEmbeddings: 6, HiddenAct: "gelu", LayerNormEps: 1e-5, BosTokenID: 48, EosTokenID: 49}
	cfg.ProjectionDim = 4
	return cfg
}

func TestParamsAndLinearModules(t *testing.T) {
	cfg := tinyConfig()
	mods := LinearModules(cfg)
	// Per block q, k, v, out, fc1, fc2; plus patch embedding and two projections.
	if want := 6*(2+1) + 3; len(mods) != want {
		t.Errorf("%d linear modules, want %d: %v", len(mods), want, mods)
	}
	for _, m := range []string{"vision_model.embeddings.patch_embedding", "vision_model.encoder.layers.1.self_attn.q_proj",
		"text_model.encoder.layers.0.mlp.fc2", "visual_projection", "text_projection"} {
		if !slices.Contains(mods, m) {
			t.Errorf("LinearModules lacks %s", m)
		}
	}
	seen := map[string]bool{}
	for _, p := range Params(cfg) {
		if seen[p.Name] {
			t.Errorf("duplicate param %s", p.Name)
		}
		seen[p.Name] = true
	}
	p, ok := ParamByName(cfg, "vision_model.embeddings.patch_embedding.weight")
	if !ok || !slices.Equal(p.Shape, []int{16, 48}) || !slices.Equal(p.HFShape, []int{16, 3, 4, 4}) || p.Scope("/") != "/vision_model.embeddings.patch_embedding" {
		t.Errorf("patch embedding param %+v", p)
	}
}

// randomContext returns a context holding random weights for cfg.
func randomContext(t testing.TB, cfg Config, seed uint64) *context.Context {
	t.Helper()
	ck := &Checkpoint{Config: cfg, Path: "random", Weights: map[string][]float32{}}
	state := seed
	for _, p := range Params(cfg) {
		data := make([]float32, p.Size())
		for i := range data {
			state = state*6364136223846793005 + 1442695040888963407
			data[i] = (float32(state>>40)/float32(1<<24) - 0.5) * 0.4
		}
		ck.Weights[p.Name] = data
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestEOTPositions(t *testing.T) {
	cfg := tinyConfig()
	ids := [][]int32{
		{48, 7, 49, 0, 0, 0},  // eos at 2
		{3, 5, 4, 0, 0, 0},    // no eos: 0 (argmax: 1)
		{48, 49, 3, 49, 0, 0}, // first eos: 1
		{48, 47, 3, 49, 0, 0}, // eos not the largest id: 3
	}
	legacy := cfg
	legacy.Text.EosTokenID = 2
	for _, c := range []struct {
		name string
		cfg  Config
		want []int32
	}{
		{"eos", cfg, []int32{2, 0, 1, 3}},
		{"legacy argmax", legacy, []int32{2, 1, 1, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := graph.MustExecOnce(newBackend(t), func(ids *graph.Node) *graph.Node { return EOTPositions(c.cfg, ids) }, ids)
			if v := got.Value().([]int32); !slices.Equal(v, c.want) {
				t.Errorf("positions %v, want %v", v, c.want)
			}
		})
	}
}

// recordHook records the sites it sees and scales one module's weight.
type recordHook struct {
	mu    sync.Mutex
	sites map[string][]layers.Site
	zero  string
}

func (h *recordHook) Apply(ctx *context.Context, module string, site layers.Site, x *graph.Node) *graph.Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := "/" + module; ctx.Scope() != want {
		panic("hook context scope " + ctx.Scope() + ", want " + want)
	}
	h.sites[module] = append(h.sites[module], site)
	if module == h.zero && site == layers.SiteWeight {
		return graph.ZerosLike(x)
	}
	return x
}

func TestHookSites(t *testing.T) {
	cfg := tinyConfig()
	ctx := randomContext(t, cfg, 1)
	hook := &recordHook{sites: map[string][]layers.Site{}, zero: "visual_projection"}
	e, err := NewEmbedder(newBackend(t), ctx, cfg, hook)
	if err != nil {
		t.Fatal(err)
	}
	pixels := make([]float32, 2*3*8*8)
	for i := range pixels {
		pixels[i] = float32(i%7) - 3
	}
	f, err := e.Embed(pixels, []int{2, 3, 8, 8}, []int32{48, 3, 49, 0, 48, 49, 0, 0}, []int{2, 4}, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Image {
		if v != 0 {
			t.Fatalf("zeroed visual_projection weight should give zero image features, got %v", f.Image)
		}
	}
	for _, m := range LinearModules(cfg) {
		if s := hook.sites[m]; !slices.Equal(s, []layers.Site{layers.SiteWeight, layers.SiteInput}) {
			t.Errorf("%s: sites %v, want weight and input", m, s)
		}
	}
	attn := []layers.Site{layers.SiteAttnQuery, layers.SiteAttnKey, layers.SiteAttnProbs, layers.SiteAttnValue}
	for _, m := range []string{"vision_model.encoder.layers.1.self_attn", "text_model.encoder.layers.0.self_attn"} {
		if s := hook.sites[m]; !slices.Equal(s, attn) {
			t.Errorf("%s: sites %v, want %v", m, s, attn)
		}
	}
}

// TestGradients checks that every parameter gets a finite, non-zero gradient
// on the pure-Go backend (the model avoids ops whose gradient it lacks).
func TestGradients(t *testing.T) {
	cfg := tinyConfig()
	ctx := randomContext(t, cfg, 2).Checked(false)
	exec, err := context.NewExec(newBackend(t), ctx, func(ctx *context.Context, pixels, ids *graph.Node) []*graph.Node {
		img := ImageFeatures(ctx, cfg, nil, pixels)
		txt := TextFeatures(ctx, cfg, nil, ids)
		logits := Logits(LogitScale(ctx, cfg, pixels.Graph()), img, txt)
		loss := graph.ReduceAllSum(graph.Mul(logits, graph.Iota(pixels.Graph(), logits.Shape(), 1)))
		return ctx.BuildTrainableVariablesGradientsGraph(loss)
	})
	if err != nil {
		t.Fatal(err)
	}
	pixels := make([]float32, 2*3*8*8)
	for i := range pixels {
		pixels[i] = float32(math.Sin(float64(i)))
	}
	outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(pixels, 2, 3, 8, 8),
		tensors.FromFlatDataAndDimensions([]int32{48, 3, 49, 0, 48, 5, 6, 49}, 2, 4))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(Params(cfg)) {
		t.Fatalf("%d gradients for %d params", len(outs), len(Params(cfg)))
	}
	for i, o := range outs {
		g := tensors.MustCopyFlatData[float32](o)
		nonzero := false
		for _, v := range g {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("gradient %d has %v", i, v)
			}
			nonzero = nonzero || v != 0
		}
		if !nonzero {
			t.Errorf("gradient %d (%s) is all zero", i, o.Shape())
		}
	}
}

// TestSaveHFRoundTrip writes a model with SaveHF and loads it back.
func TestSaveHFRoundTrip(t *testing.T) {
	cfg := tinyConfig()
	ctx := randomContext(t, cfg, 3)
	dir := t.TempDir()
	if err := SaveHF(ctx, cfg, dir); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ck.Config, cfg) {
		t.Errorf("config %+v, want %+v", ck.Config, cfg)
	}
	if len(ck.Unused) != 0 {
		t.Errorf("unused tensors %v", ck.Unused)
	}
	for _, p := range Params(cfg) {
		v := ctx.GetVariableByScopeAndName(p.Scope("/"), p.Var)
		want := tensors.MustCopyFlatData[float32](v.MustValue())
		if !slices.Equal(ck.Weights[p.Name], want) {
			t.Errorf("%s differs after the round trip", p.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Error(err)
	}
}

func TestInferOpenAIConfig(t *testing.T) {
	ck, err := Load("testdata/openai-f16")
	if err != nil {
		t.Fatal(err)
	}
	v, tx := ck.Config.Vision, ck.Config.Text
	got := []int{v.HiddenSize, v.NumAttentionHeads, v.NumHiddenLayers, v.ImageSize, v.PatchSize, v.IntermediateSize,
		tx.HiddenSize, tx.NumAttentionHeads, tx.NumHiddenLayers, tx.VocabSize, tx.MaxPositionEmbeddings, tx.IntermediateSize, tx.EosTokenID, ck.Config.ProjectionDim}
	want := []int{64, 1, 1, 16, 4, 128, 64, 1, 1, 100, 8, 128, 99, 16}
	if !slices.Equal(got, want) {
		t.Errorf("inferred %v, want %v", got, want)
	}
	if _, err := InferOpenAIConfig(map[string][]int{"visual.conv1.weight": {64, 3, 4, 4}}); err == nil || !strings.Contains(err.Error(), "visual.positional_embedding") {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tmp := t.TempDir()
	os.WriteFile(filepath.Join(tmp, "pytorch_model.bin"), []byte("x"), 0o644)
	t.Setenv("HF_HUB_CACHE", filepath.Join(tmp, "cache"))
	t.Setenv("HF_HOME", filepath.Join(tmp, "home"))
	for _, c := range []struct{ source, errHas string }{
		{tmp, "only pytorch_model.bin"},
		{"acme/missing-model", "not in the HF cache"},
		{"testdata/openai-f16/pixel_values.npy", "truncated header"},
		{"testdata/hf-gelu-sharded/model-00001-of-00002.safetensors", `tensor "text_model.embeddings.token_embedding.weight" is missing`},
	} {
		_, err := Load(c.source)
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("Load(%s): error %v, want %q", c.source, err, c.errHas)
		}
	}
	// The cache error names every folder it searched.
	_, err := Load("acme/missing-model")
	for _, d := range []string{filepath.Join(tmp, "cache"), filepath.Join(tmp, "home", "hub")} {
		if err == nil || !strings.Contains(err.Error(), d) {
			t.Errorf("error %v does not name %s", err, d)
		}
	}
}
