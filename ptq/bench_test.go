package ptq

import (
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// BenchmarkPTQClipTiny measures a whole W8A8 min-max PTQ of clip-tiny on
// the pure-Go backend: SmoothQuant (activation statistics and folding),
// graph building and calibration over the golden inputs.
func BenchmarkPTQClipTiny(b *testing.B) {
	dir := testutil.SharedPath(b, "golden", "clip-tiny")
	be := newBackend(b)
	r, err := recipes.Load("w8a8-minmax-ptq.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		ck, ctx, d := loadModel(b, dir)
		b.StartTimer()
		if _, err := SmoothQuant(be, ctx, ck.Config, 0.5, d, 4, 8); err != nil {
			b.Fatal(err)
		}
		hook, _, err := clip.QuantHook(r, ck.Config)
		if err != nil {
			b.Fatal(err)
		}
		e, err := clip.NewEmbedder(be, ctx, ck.Config, hook)
		if err != nil {
			b.Fatal(err)
		}
		if err := Calibrate(ctx, e, d, 4, 8); err != nil {
			b.Fatal(err)
		}
	}
}
