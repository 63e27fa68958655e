package data_test

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
)

// ExampleNewLoader reads shuffled batches of preprocessed pixels, input ids
// and labels from the synthetic shapes set, resuming an epoch at step 1
// as a trainer restarting from a checkpoint does.
func ExampleNewLoader() {
	tmp, err := os.MkdirTemp("", "shapes")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "shapes")
	if _, err := data.SynthShapesDataset(dir, data.SynthOptions{N: 40, Size: 32, Seed: 1}); err != nil {
		log.Fatal(err)
	}
	src, err := data.Open(dir, data.SourceOptions{}) // the train split
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	tok, err := tokenizer.Load(filepath.Join("tokenizer", "testdata", "fixture_merges.txt.gz"))
	if err != nil {
		log.Fatal(err)
	}
	pre := data.DefaultPreprocessConfig()
	pre.Size = 32
	l, err := data.NewLoader(src, data.LoaderConfig{
		BatchSize:  16,
		Preprocess: pre,
		Tokenizer:  tok,
		Tokenize:   tokenizer.Options{Truncate: true}, // 77 ids
		Shuffle:    true,
		Seed:       7,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	fmt.Println("fields:", l.Fields(), "steps per epoch:", l.StepsPerEpoch())
	it, err := l.Epoch(0, 1) // epoch 0, from step 1
	if err != nil {
		log.Fatal(err)
	}
	defer it.Close()
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("step", b.Step, "pixels", b.PixelShape(), "input_ids", len(b.InputIDs), "labels", len(b.Labels))
		b.Release()
	}
	fmt.Println(it.Stats().Summary())
	// Output:
	// fields: pixels+input_ids+labels steps per epoch: 3
	// step 1 pixels [16 3 32 32] input_ids 1232 labels 16
	// step 2 pixels [8 3 32 32] input_ids 616 labels 8
	// epoch 0: 24 examples in 2 batches (from step 1), no bad records
}
