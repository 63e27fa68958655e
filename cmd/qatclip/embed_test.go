package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
)

// runEmbedCmd runs `qatclip embed args...` and returns its error and log.
func runEmbedCmd(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newEmbedCmd, args...)
}

// compareNpy checks that got and want .npy files agree within tol.
func compareNpy(t *testing.T, got, want string, tol float64) {
	t.Helper()
	ga, err := npy.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	wa, err := npy.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := ga.Float32()
	w, _ := wa.Float32()
	if len(g) != len(w) || len(ga.Shape) != len(wa.Shape) {
		t.Fatalf("%s: shape %v, want %v", got, ga.Shape, wa.Shape)
	}
	d := 0.0
	for i := range g {
		d = max(d, math.Abs(float64(g[i])-float64(w[i])))
	}
	if d > tol {
		t.Errorf("%s: max abs error %.3g > %.3g", filepath.Base(got), d, tol)
	}
}

func TestEmbedGolden(t *testing.T) {
	g := testutil.SharedPath(t, "golden", "clip-tiny")
	out := t.TempDir()
	log, err := runEmbedCmd(t, "--model", g, "--pixels", filepath.Join(g, "pixel_values.npy"),
		"--input-ids", filepath.Join(g, "input_ids.npy"), "--out", out, "--batch-size", "3")
	if err != nil {
		t.Fatalf("embed: %v\n%s", err, log)
	}
	if !strings.HasPrefix(log, "backend: go") {
		t.Errorf("first log line should name the backend, got %q", strings.SplitN(log, "\n", 2)[0])
	}
	for _, name := range []string{"image_features.npy", "text_features.npy", "logits_per_image.npy"} {
		compareNpy(t, filepath.Join(out, name), filepath.Join(g, name), 1e-4)
	}
}

// TestEmbedHubCache resolves an HF hub id from a local HF cache layout.
func TestEmbedHubCache(t *testing.T) {
	g := testutil.SharedPath(t, "golden", "clip-tiny")
	cache := t.TempDir()
	snap := filepath.Join(cache, "models--tiny-org--clip-tiny", "snapshots", "0123abc")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors"} {
		if err := os.Symlink(filepath.Join(g, f), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cache, "models--tiny-org--clip-tiny", "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "models--tiny-org--clip-tiny", "refs", "main"), []byte("0123abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HF_HUB_CACHE", cache)
	out := t.TempDir()
	if log, err := runEmbedCmd(t, "--model", "tiny-org/clip-tiny", "--pixels", filepath.Join(g, "pixel_values.npy"), "--out", out); err != nil {
		t.Fatalf("embed: %v\n%s", err, log)
	}
	compareNpy(t, filepath.Join(out, "image_features.npy"), filepath.Join(g, "image_features.npy"), 1e-4)
	if _, err := os.Stat(filepath.Join(out, "logits_per_image.npy")); err == nil {
		t.Errorf("logits_per_image.npy written without texts")
	}
}

// copyFile copies src to dst, keeping the first n bytes when n >= 0.
func copyFile(t *testing.T, src, dst string, n int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if n >= 0 {
		b = b[:n]
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEmbedBadInput(t *testing.T) {
	g := testutil.SharedPath(t, "golden", "clip-tiny")
	tmp := t.TempDir()
	pixels := filepath.Join(g, "pixel_values.npy")

	truncated := filepath.Join(tmp, "truncated")
	os.MkdirAll(truncated, 0o755)
	copyFile(t, filepath.Join(g, "config.json"), filepath.Join(truncated, "config.json"), -1)
	copyFile(t, filepath.Join(g, "model.safetensors"), filepath.Join(truncated, "model.safetensors"), 100_000)

	shortHeader := filepath.Join(tmp, "short-header")
	os.MkdirAll(shortHeader, 0o755)
	copyFile(t, filepath.Join(g, "config.json"), filepath.Join(shortHeader, "config.json"), -1)
	copyFile(t, filepath.Join(g, "model.safetensors"), filepath.Join(shortHeader, "model.safetensors"), 500)

	mismatch := filepath.Join(tmp, "mismatch")
	os.MkdirAll(mismatch, 0o755)
	cj, _ := os.ReadFile(filepath.Join(g, "config.json"))
	cj = bytes.Replace(cj, []byte(`"intermediate_size": 256`), []byte(`"intermediate_size": 128`), 1)
	os.WriteFile(filepath.Join(mismatch, "config.json"), cj, 0o644)
	os.Symlink(filepath.Join(g, "model.safetensors"), filepath.Join(mismatch, "model.safetensors"))

	wrongShape := filepath.Join(tmp, "pixels16.npy")
	npy.WriteFile(wrongShape, npy.Array{Shape: []int{2, 3, 16, 16}, Data: make([]float32, 2*3*16*16)})
	rank3 := filepath.Join(tmp, "ids3.npy")
	npy.WriteFile(rank3, npy.Array{Shape: []int{2, 4, 4}, Data: make([]int32, 32)})
	badIDs := filepath.Join(tmp, "ids.npy")
	npy.WriteFile(badIDs, npy.Array{Shape: []int{1, 4}, Data: []int64{998, 5, 1000, 999}})
	floatIDs := filepath.Join(tmp, "fids.npy")
	npy.WriteFile(floatIDs, npy.Array{Shape: []int{1, 4}, Data: []float32{1, 2, 3, 4}})

	t.Setenv("HF_HUB_CACHE", filepath.Join(tmp, "empty-cache"))
	out := filepath.Join(tmp, "out")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing model", []string{"--model", filepath.Join(tmp, "nope"), "--pixels", pixels, "--out", out}, []string{"nope", "no such file or folder"}},
		{"hub id not cached", []string{"--model", "openai/clip-vit-base-patch32", "--pixels", pixels, "--out", out}, []string{"openai/clip-vit-base-patch32", "not in the HF cache", "empty-cache"}},
		{"missing pixels", []string{"--model", g, "--pixels", filepath.Join(tmp, "none.npy"), "--out", out}, []string{"--pixels", "none.npy", "no such file"}},
		{"truncated safetensors", []string{"--model", truncated, "--pixels", pixels, "--out", out}, []string{"truncated/model.safetensors", "past the end of the file"}},
		{"truncated header", []string{"--model", shortHeader, "--pixels", pixels, "--out", out}, []string{"short-header/model.safetensors", "truncated header"}},
		{"shape mismatch", []string{"--model", mismatch, "--pixels", pixels, "--out", out}, []string{"mismatch/model.safetensors", "text_model.encoder.layers.0.mlp.fc1.weight", "[256 64]", "[128 64]"}},
		{"wrong pixel shape", []string{"--model", g, "--pixels", wrongShape, "--out", out}, []string{"pixels16.npy", "[2 3 16 16]", "(N, 3, 32, 32)"}},
		{"wrong id rank", []string{"--model", g, "--input-ids", rank3, "--out", out}, []string{"ids3.npy", "want (M, L)"}},
		{"id outside vocab", []string{"--model", g, "--input-ids", badIDs, "--out", out}, []string{"ids.npy", "id 1000", "vocabulary"}},
		{"float ids", []string{"--model", g, "--input-ids", floatIDs, "--out", out}, []string{"fids.npy", "integer"}},
		{"no inputs", []string{"--model", g, "--out", out}, []string{"nothing to embed"}},
		{"no out", []string{"--model", g, "--pixels", pixels}, []string{"--out is required"}},
		{"both pixel sources", []string{"--model", g, "--pixels", pixels, "--images", "a.png", "--out", out}, []string{"not both"}},
		{"bad batch", []string{"--model", g, "--pixels", pixels, "--out", out, "--batch-size", "0"}, []string{"--batch-size"}},
		{"missing image", []string{"--model", g, "--images", filepath.Join(tmp, "cat.png"), "--out", out}, []string{"cat.png"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runEmbedCmd(t, c.args...)
			if err == nil {
				t.Fatalf("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans several lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("output folder created despite errors")
	}
}

// randomModel writes a small random CLIP with CLIP's real vocabulary size
// (so the real tokenizer's ids fit) to a temporary HF folder.
func randomModel(t *testing.T) string {
	t.Helper()
	cfg := clip.DefaultConfig()
	cfg.Vision = clip.VisionConfig{HiddenSize: 16, IntermediateSize: 32, NumAttentionHeads: 2, NumHiddenLayers: 1,
		ImageSize: 32, PatchSize: 8, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	cfg.Text.HiddenSize, cfg.Text.IntermediateSize, cfg.Text.NumAttentionHeads, cfg.Text.NumHiddenLayers = 8, 16, 2, 1
	cfg.ProjectionDim = 8
	ck := &clip.Checkpoint{Config: cfg, Weights: map[string][]float32{}}
	for i, p := range clip.Params(cfg) {
		w := make([]float32, p.Size())
		for j := range w {
			w[j] = float32(math.Sin(float64(i*7919+j))) * 0.3
		}
		ck.Weights[p.Name] = w
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := clip.SaveHF(ctx, cfg, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEmbedImagesAndTexts checks that --images and --texts give the same
// features as --pixels and --input-ids made by the data and tokenizer
// packages.
func TestEmbedImagesAndTexts(t *testing.T) {
	vocab := testutil.SharedPath(t, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")
	img0 := testutil.SharedPath(t, "golden", "preprocess", "img_0.png")
	img1 := testutil.SharedPath(t, "golden", "preprocess", "img_1.jpg")
	model := randomModel(t)
	tmp := t.TempDir()
	texts := []string{"a photo of a cat.", "A DOG, running &amp; jumping!"}

	tok, err := tokenizer.Load(vocab)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tok.Tokenize(texts, tokenizer.Options{ContextLength: 77})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int32
	for _, r := range rows {
		ids = append(ids, r...)
	}
	idsPath := filepath.Join(tmp, "ids.npy")
	if err := npy.WriteFile(idsPath, npy.Array{Shape: []int{2, 77}, Data: ids}); err != nil {
		t.Fatal(err)
	}
	pcfg := data.DefaultPreprocessConfig()
	pcfg.Size = 32
	pre, err := data.NewPreprocessor(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	pixels := make([]float32, 2*pcfg.OutputLen())
	for i, p := range []string{img0, img1} {
		if err := pre.PreprocessFileInto(pixels[i*pcfg.OutputLen():(i+1)*pcfg.OutputLen()], p); err != nil {
			t.Fatal(err)
		}
	}
	pixPath := filepath.Join(tmp, "pixels.npy")
	if err := npy.WriteFile(pixPath, npy.Array{Shape: []int{2, 3, 32, 32}, Data: pixels}); err != nil {
		t.Fatal(err)
	}

	outA, outB := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	if log, err := runEmbedCmd(t, "--model", model, "--images", img0, "--images", img1,
		"--texts", texts[0], "--texts", texts[1], "--vocab", vocab, "--out", outA); err != nil {
		t.Fatalf("embed --images --texts: %v\n%s", err, log)
	}
	if log, err := runEmbedCmd(t, "--model", model, "--pixels", pixPath, "--input-ids", idsPath, "--out", outB); err != nil {
		t.Fatalf("embed --pixels --input-ids: %v\n%s", err, log)
	}
	for _, name := range []string{"image_features.npy", "text_features.npy", "logits_per_image.npy"} {
		compareNpy(t, filepath.Join(outA, name), filepath.Join(outB, name), 0)
	}
	// Different texts must give different features (the ids reach the model).
	a, _ := npy.ReadFile(filepath.Join(outA, "text_features.npy"))
	f, _ := a.Float32()
	if a.Shape[0] != 2 || slices.Equal(f[:a.Shape[1]], f[a.Shape[1]:]) {
		t.Errorf("text features %v: rows should differ", a.Shape)
	}
}
