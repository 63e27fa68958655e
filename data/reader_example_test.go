package data_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/data"
)

// ExampleOpen writes the synthetic shapes DatasetDict and reads a window
// of its test split, as a loader does.
func ExampleOpen() {
	tmp, err := os.MkdirTemp("", "shapes")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "shapes")
	if _, err := data.SynthShapesDataset(dir, data.SynthOptions{N: 8, Size: 32, Seed: 1}); err != nil {
		log.Fatal(err)
	}
	src, err := data.Open(dir, data.SourceOptions{Split: "test"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println("rows:", src.NumRows(), "classes:", src.ClassNames())
	for i, sh := range src.Shards() {
		exs, err := src.ReadRange(i, 0, sh.Rows)
		if err != nil {
			log.Fatal(err)
		}
		for _, ex := range exs {
			fmt.Printf("%d %q %s\n", ex.Row, ex.Caption, src.ClassNames()[ex.Label])
		}
	}
	// Output:
	// rows: 2 classes: [circle square triangle star diamond]
	// 0 "a green circle on a striped background" circle
	// 1 "a purple triangle on a striped background" triangle
}
