package clip_test

import (
	"fmt"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/layers/clip"
)

// Example loads an openai/CLIP-layout checkpoint (its config inferred from
// the tensor shapes) and embeds images and token ids on the pure-Go backend.
func Example() {
	ck, err := clip.Load("testdata/openai-f16/model.safetensors")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		fmt.Println(err)
		return
	}
	backend, err := simplego.New("ops_sequential")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer backend.Finalize()
	emb, err := clip.NewEmbedder(backend, ctx, ck.Config, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	pixels, _ := npy.ReadFile("testdata/openai-f16/pixel_values.npy")
	ids, _ := npy.ReadFile("testdata/openai-f16/input_ids.npy")
	pf, _ := pixels.Float32()
	idv, _ := ids.Int32()
	f, err := emb.Embed(pf, pixels.Shape, idv, ids.Shape, 64)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("layout:", ck.Layout, "heads:", ck.Config.Vision.NumAttentionHeads)
	fmt.Println("image features:", f.N, "x", len(f.Image)/f.N)
	fmt.Println("text features:", f.M, "x", len(f.Text)/f.M)
	fmt.Println("logits per image:", len(f.LogitsPerImage))
	// Output:
	// layout: openai heads: 1
	// image features: 4 x 16
	// text features: 3 x 16
	// logits per image: 12
}
