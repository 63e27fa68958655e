package train

import (
	"fmt"

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
	return Batch{Pixels: b.Pixels, InputIDs: b.InputIDs, Labels: b.Labels, N: b.N}, nil
}

// Close implements BatchIterator.
func (li *loaderIterator) Close() error {
	li.release()
	return li.it.Close()
}

// Summary returns the loader's end-of-epoch summary (bad records skipped).
func (li *loaderIterator) Summary() string { return li.it.Stats().Summary() }
