package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qatclip/qatclip/data"
)

// LoaderData adapts a data.Loader (parallel decode, preprocessing and
// tokenization with a deterministic, resumable shuffled order) to
// [Batches]. The loader must drop the last short batch (every training
// batch has the same size) and produce pixels and input ids.
type LoaderData struct {
	loader *data.Loader
}

// NewLoaderData wraps l.
func NewLoaderData(l *data.Loader) (*LoaderData, error) {
	cfg := l.Config()
	if !cfg.DropLast {
		return nil, fmt.Errorf("training data: the loader must drop the last short batch (LoaderConfig.DropLast)")
	}
	if cfg.Tokenizer == nil {
		return nil, fmt.Errorf("training data: the loader has no tokenizer, so batches have no input ids")
	}
	if l.StepsPerEpoch() < 1 {
		return nil, fmt.Errorf("training data: %d examples make no batch of %d", l.ExamplesPerEpoch(), cfg.BatchSize)
	}
	return &LoaderData{loader: l}, nil
}

// NumBatches implements Batches.
func (d *LoaderData) NumBatches() int { return d.loader.StepsPerEpoch() }

// Epoch implements Batches.
func (d *LoaderData) Epoch(epoch, start int) (BatchIterator, error) {
	it, err := d.loader.Epoch(epoch, start)
	if err != nil {
		return nil, err
	}
	return &loaderIterator{it: it}, nil
}

// loaderIterator yields the loader's batches; each one stays valid until
// the next call to Next (the trainer copies it into tensors first), when
// its buffers go back to the loader.
type loaderIterator struct {
	it   *data.EpochIterator
	prev *data.Batch
	// owned is a loader the iterator made for itself (LoaderData.All) and
	// closes with it.
	owned *data.Loader
}

func (li *loaderIterator) release() {
	if li.prev != nil {
		li.prev.Release()
		li.prev = nil
	}
}

// Next implements BatchIterator.
func (li *loaderIterator) Next() (Batch, error) {
	li.release()
	b, err := li.it.Next()
	if err != nil {
		return Batch{}, err
	}
	li.prev = b
	return Batch{Pixels: b.Pixels, InputIDs: b.InputIDs, Labels: b.Labels, N: b.N, Index: b.Rows}, nil
}

// Close implements BatchIterator.
func (li *loaderIterator) Close() error {
	li.release()
	err := li.it.Close()
	if li.owned != nil {
		if cerr := li.owned.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// NumExamples implements [ExampleSet]: an example's index is its row in
// the source (data.Batch.Rows).
func (d *LoaderData) NumExamples() int { return d.loader.Source().NumRows() }

// Identity implements [ExampleSet]: the source's path, split, columns and
// shard files (name, rows, size, modification time), the preprocessing,
// the tokenizer and the batch fields.
func (d *LoaderData) Identity() (string, error) {
	src, cfg := d.loader.Source(), d.loader.Config()
	var b strings.Builder
	fmt.Fprintf(&b, "source %s split %q columns %+v rows %d;", src.Path(), src.Split(), src.Columns(), src.NumRows())
	for _, sh := range src.Shards() {
		st, err := os.Stat(sh.Path)
		if err != nil {
			return "", fmt.Errorf("training data: %w", err)
		}
		fmt.Fprintf(&b, " %s:%d:%d:%d", filepath.Base(sh.Path), sh.Rows, st.Size(), st.ModTime().UnixNano())
	}
	tok := "none"
	if cfg.Tokenizer != nil {
		tok = fmt.Sprintf("%s vocab %d", cfg.Tokenizer.Source(), cfg.Tokenizer.VocabSize())
	}
	fmt.Fprintf(&b, "; preprocess %+v; tokenizer %s %+v; fields %s", cfg.Preprocess, tok, cfg.Tokenize, d.loader.Fields())
	return b.String(), nil
}

// All implements [ExampleSet]: a second loader over the same source and
// preprocessing reads every row in storage order (no shuffling, one rank,
// the last short batch kept, no pixel cache).
func (d *LoaderData) All(batchSize int) (BatchIterator, error) {
	cfg := d.loader.Config()
	cfg.BatchSize, cfg.Fields = batchSize, d.loader.Fields()
	cfg.Shuffle, cfg.DropLast, cfg.Rank, cfg.Ranks = false, false, 0, 1
	cfg.Cache, cfg.CacheFile = false, ""
	l, err := data.NewLoader(d.loader.Source(), cfg)
	if err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	it, err := l.Epoch(0, 0)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("training data: %w", err)
	}
	return &loaderIterator{it: it, owned: l}, nil
}

// Summary returns the loader's end-of-epoch summary (bad records skipped).
func (li *loaderIterator) Summary() string { return li.it.Stats().Summary() }
