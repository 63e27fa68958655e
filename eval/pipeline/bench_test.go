package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
)

// imagenetPrompts reads CLIP's 1000 ImageNet class names and 80 templates
// and the CLIP vocabulary from the shared data (skipping without it).
func imagenetPrompts(b *testing.B) (classes, templates []string, tok *tokenizer.Tokenizer) {
	b.Helper()
	raw, err := os.ReadFile(testutil.SharedPath(b, "data", "clip", "imagenet_zeroshot.json"))
	if err != nil {
		b.Fatal(err)
	}
	var zs struct{ Classes, Templates []string }
	if err := json.Unmarshal(raw, &zs); err != nil {
		b.Fatal(err)
	}
	tok, err = tokenizer.Load(testutil.SharedPath(b, "data", "clip", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		b.Fatal(err)
	}
	return zs.Classes, zs.Templates, tok
}

// clipTinyText has the text tower of shared/golden/clip-tiny (width 64,
// 2 layers, 4 heads, projection 32) with CLIP's vocabulary and 77
// positions, so the ImageNet prompts fit.
func clipTinyText(tok *tokenizer.Tokenizer) clip.Config {
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 128, IntermediateSize: 512, NumAttentionHeads: 2, NumHiddenLayers: 2,
		ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text = clip.TextConfig{VocabSize: tok.VocabSize(), HiddenSize: 64, IntermediateSize: 256, NumAttentionHeads: 4,
		NumHiddenLayers: 2, MaxPositionEmbeddings: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
		BosTokenID: tok.StartID(), EosTokenID: tok.EndID(), PadTokenID: 0}
	cfg.ProjectionDim = 32
	return cfg
}

// BenchmarkZeroShotHead builds the 1000-class x 80-template ImageNet head
// with a clip-tiny text tower: "encode" tokenizes and encodes all 80,000
// prompts (and writes the cache), "cache-hit" computes the text-tower key,
// tokenizes the prompts and reads the cached head, as every epoch after
// the first does when the text tower did not change.
func BenchmarkZeroShotHead(b *testing.B) {
	classes, templates, tok := imagenetPrompts(b)
	cfg := clipTinyText(tok)
	ctx := randomModel(b, cfg, 11)
	emb, err := clip.NewEmbedder(testBackend(b), ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	key, err := TextTowerKey(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	cache := b.TempDir()
	opt := HeadOptions{Tokenizer: tok, ContextLength: 77, VocabSize: cfg.Text.VocabSize, Batch: 1024, TowerKey: key}
	b.Run("encode", func(b *testing.B) {
		i := 0
		for b.Loop() {
			o := opt
			o.CacheDir = filepath.Join(cache, strconv.Itoa(i)) // a fresh cache: always a miss
			i++
			h, err := BuildHead(emb, classes, templates, o)
			if err != nil {
				b.Fatal(err)
			}
			if h.Cached {
				b.Fatal("cached")
			}
		}
	})
	b.Run("cache-hit", func(b *testing.B) {
		o := opt
		o.CacheDir = filepath.Join(cache, "0")
		for b.Loop() {
			if o.TowerKey, err = TextTowerKey(ctx, ""); err != nil {
				b.Fatal(err)
			}
			h, err := BuildHead(emb, classes, templates, o)
			if err != nil {
				b.Fatal(err)
			}
			if !h.Cached {
				b.Fatal("not cached")
			}
		}
	})
}

// BenchmarkPromptBuckets compares encoding 100 ImageNet classes x 80
// templates in length buckets (what BuildHead does) with encoding every
// prompt at the longest prompt's length, with a clip-tiny text tower.
func BenchmarkPromptBuckets(b *testing.B) {
	classes, templates, tok := imagenetPrompts(b)
	cfg := clipTinyText(tok)
	emb, err := clip.NewEmbedder(testBackend(b), randomModel(b, cfg, 11), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ids, l, lens, err := tokenizePrompts(Prompts(classes[:100], templates), HeadOptions{Tokenizer: tok, ContextLength: 77})
	if err != nil {
		b.Fatal(err)
	}
	full := make([]int, len(lens))
	for i := range full {
		full[i] = l
	}
	for _, c := range []struct {
		name string
		lens []int
	}{{"bucketed", lens}, {"full-length", full}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := encodeBucketed(emb, ids, l, c.lens, 1024); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenizePrompts measures the tokenization of the 80,000
// ImageNet prompts, the part of a cache hit that does not depend on the
// model.
func BenchmarkTokenizePrompts(b *testing.B) {
	classes, templates, tok := imagenetPrompts(b)
	prompts := Prompts(classes, templates)
	opt := HeadOptions{Tokenizer: tok, ContextLength: 77}
	for b.Loop() {
		if _, _, _, err := tokenizePrompts(prompts, opt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateShapes measures the whole evaluation of a tiny model on
// 60 ID and 40 OOD synthetic images with the head cached.
func BenchmarkEvaluateShapes(b *testing.B) {
	dir := synthShapes(b)
	tok := testTokenizer(b)
	opts := Options{Backend: testBackend(b), ID: DataSet{Name: "test", Path: dir, Split: "test"}, FitFraction: 0.2,
		OOD: []DataSet{{Name: "ood", Path: dir, Split: "ood"}}, Tokenizer: tok, BatchSize: 32, CacheDir: b.TempDir()}
	ev, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer ev.Close()
	cfg := tinyConfig(tok)
	m := Model{Label: "float", Config: cfg, Context: randomModel(b, cfg, 3)}
	if m.Embedder, err = clip.NewEmbedder(opts.Backend, m.Context, cfg, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ev.Evaluate(m); err != nil {
			b.Fatal(err)
		}
	}
}
