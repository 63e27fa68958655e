package pipeline

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
)

// testTokenizer loads the repository's small fixture BPE (no shared data
// needed).
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(testutil.RepoRoot(t), "data", "tokenizer", "testdata", "fixture_merges.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tinyConfig is a CLIP small enough for fast tests, with the fixture
// tokenizer's vocabulary and 32-pixel images.
func tinyConfig(tok *tokenizer.Tokenizer) clip.Config {
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 32, IntermediateSize: 64, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: tok.VocabSize(), HiddenSize: 32, IntermediateSize: 64, NumAttentionHeads: 2,
		NumHiddenLayers: 1, MaxPositionEmbeddings: 24, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
		BosTokenID: tok.StartID(), EosTokenID: tok.EndID(), PadTokenID: 0}
	cfg.ProjectionDim = 16
	return cfg
}

// randomCheckpoint returns random weights for cfg.
func randomCheckpoint(cfg clip.Config, seed uint64) *clip.Checkpoint {
	return clip.NewRandomCheckpoint(cfg, seed)
}

// randomModel returns a context holding random weights for cfg.
func randomModel(t testing.TB, cfg clip.Config, seed uint64) *context.Context {
	t.Helper()
	ctx := context.New()
	if err := randomCheckpoint(cfg, seed).SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// goBackend opens the pure-Go backend once per test binary.
var goBackend = sync.OnceValues(func() (backends.Backend, error) { return backend.Open("go", nil) })

func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := goBackend()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// synthShapes writes the synthetic shapes DatasetDict (32-pixel images,
// 60 test and 40 ood examples) and returns its folder.
func synthShapes(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shapes")
	if _, err := data.SynthShapesDataset(dir, data.SynthOptions{N: 8, TestN: 60, OODN: 40, Size: 32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tokenizerOptions(l int) tokenizer.Options {
	return tokenizer.Options{ContextLength: l, Truncate: true}
}
