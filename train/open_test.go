package train

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
)

// TestOpenLoaderData reads the synthetic shapes through OpenLoaderData:
// batches of the model's image size and context length, labels, the
// classification head, and the errors for a missing tokenizer and a path
// that is not a data set.
func TestOpenLoaderData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shapes")
	if _, err := data.SynthShapesDataset(dir, data.SynthOptions{N: 24, TestN: 4, OODN: 4, Size: 16, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromMerges("test", tokenizer.LearnMerges([]string{"a red circle on a plain background"}, 20))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	cfg.Text.VocabSize, cfg.Text.BosTokenID, cfg.Text.EosTokenID = tok.VocabSize(), tok.StartID(), tok.EndID()
	cfg.Vision.ImageSize = 8
	ck := randomCheckpoint(cfg, 1)
	be := goBackend(t)
	r := parseRecipe(t, floatQuant+"train: {batch_size: 5, loss: {contrastive: 1, classification: 1}}\n",
		"train.data.path="+dir, "train.data.split=train")

	d, head, err := OpenLoaderData(r, ck, be, LoaderOptions{Tokenizer: tok, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d.NumBatches() != 4 {
		t.Errorf("%d batches of 5 from 24 rows, want 4 (last dropped)", d.NumBatches())
	}
	if want := len(data.SynthShapeNames()) * cfg.ProjectionDim; len(head) != want {
		t.Errorf("head has %d values, want %d", len(head), want)
	}
	it, err := d.Epoch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b.N != 5 || len(b.Pixels) != 5*3*8*8 || b.SeqLen() != cfg.Text.MaxPositionEmbeddings || len(b.Labels) != 5 {
		t.Errorf("batch: n %d, %d pixels, seq %d, %d labels", b.N, len(b.Pixels), b.SeqLen(), len(b.Labels))
	}
	it.Close()

	// No tokenizer: it is looked for beside model.source, and the error
	// says where.
	t.Setenv("QATCLIP_VOCAB", "")
	r.Model.Source = t.TempDir()
	if _, _, err := OpenLoaderData(r, ck, be, LoaderOptions{}); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("no tokenizer: %v", err)
	}
	// Not a data set: an *OpenError wrapping data.Open's.
	bad := parseRecipe(t, floatQuant, "train.data.path="+t.TempDir())
	_, _, err = OpenLoaderData(bad, ck, be, LoaderOptions{Tokenizer: tok})
	var oe *OpenError
	if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), "train.data.path: ") {
		t.Errorf("bad path: %v", err)
	}
	if _, _, err := OpenLoaderData(parseRecipe(t, floatQuant), ck, be, LoaderOptions{Tokenizer: tok}); err == nil || !strings.Contains(err.Error(), "train.data.path is empty") {
		t.Errorf("empty path: %v", err)
	}
}
