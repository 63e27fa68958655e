package pipeline_test

import (
	"fmt"
	"os"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/eval/pipeline"
	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/layers/clip"
)

// Evaluate a float CLIP on an ImageNet-style validation set with two OOD
// sets and one corruption, then write the report.
func Example() {
	be, err := backend.Open("", os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok, err := tokenizer.Load("bpe_simple_vocab_16e6.txt.gz")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := pipeline.New(pipeline.Options{
		Backend:      be,
		Tokenizer:    tok,
		ID:           pipeline.DataSet{Name: "imagenet-val", Path: "data/imagenet-1k/validation"},
		FitFraction:  0.2,
		OOD:          []pipeline.DataSet{{Name: "textures", Path: "data/ood/textures"}, {Name: "sun", Path: "data/ood/sun"}},
		ClassNames:   "imagenet_zeroshot.json",
		TemplateSpec: "imagenet_zeroshot.json",
		LogitScale:   100,
		Corruptions:  []pipeline.Corruption{{NoiseSigma: 0.1}},
		CacheDir:     pipeline.DefaultCacheDir(),
		Log:          os.Stderr,
	})
	if err != nil {
		fmt.Println(err) // e.g. id set "imagenet-val": data/imagenet-1k/validation does not exist
		return
	}
	defer ev.Close()
	ck, err := clip.Load("openai/clip-vit-base-patch32")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		fmt.Println(err)
		return
	}
	res, err := ev.Evaluate(pipeline.Model{Label: "float", Config: ck.Config, Context: ctx})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ev.Report("ViT-B/32 reliability", res, nil).Write("reports/vit-b32"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("acc1 %.4f\n", pipeline.Scalars(res.Column.Result)["acc1"])
}
