package clip

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/testutil"
)

// benchEmbedder loads shared/golden/clip-tiny onto the pure-Go backend.
func benchEmbedder(b *testing.B) (*Embedder, string) {
	dir := testutil.SharedPath(b, "golden", "clip-tiny")
	ck, err := Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		b.Fatal(err)
	}
	e, err := NewEmbedder(newBackend(b), ctx, ck.Config, nil)
	if err != nil {
		b.Fatal(err)
	}
	return e, dir
}

// BenchmarkEmbedClipTiny measures the clip-tiny image tower (32 px, patch 8,
// width 128, 2 layers) on the pure-Go backend, batch 64, in images/s.
func BenchmarkEmbedClipTiny(b *testing.B) {
	e, dir := benchEmbedder(b)
	pix, err := readNpy(b, filepath.Join(dir, "pixel_values.npy")).Float32()
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	pixels := make([]float32, 0, batch*len(pix)/5)
	for len(pixels) < cap(pixels) {
		pixels = append(pixels, pix[:min(len(pix), cap(pixels)-len(pixels))]...)
	}
	if _, err := e.ImageFeatures(pixels, batch, batch); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.ImageFeatures(pixels, batch, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkEmbedClipTinyText measures the clip-tiny text tower (16 tokens,
// width 64, 2 layers) on the pure-Go backend, batch 64, in texts/s.
func BenchmarkEmbedClipTinyText(b *testing.B) {
	e, dir := benchEmbedder(b)
	a := readNpy(b, filepath.Join(dir, "input_ids.npy"))
	ids, err := a.Int32()
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	l := a.Shape[1]
	all := make([]int32, 0, batch*l)
	for len(all) < cap(all) {
		all = append(all, ids[:min(len(ids), cap(all)-len(all))]...)
	}
	if _, err := e.TextFeatures(all, batch, l, batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.TextFeatures(all, batch, l, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "texts/s")
}

// BenchmarkLoadClipTiny measures reading and converting the clip-tiny
// checkpoint (2.4 MB safetensors) and setting the context variables.
func BenchmarkLoadClipTiny(b *testing.B) {
	dir := testutil.SharedPath(b, "golden", "clip-tiny")
	for b.Loop() {
		ck, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := ck.SetVariables(context.New()); err != nil {
			b.Fatal(err)
		}
	}
}
