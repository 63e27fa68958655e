package train

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
)

// Batch is one batch of image-text pairs, already preprocessed.
type Batch struct {
	// Pixels holds N normalised images, row-major (N, C, H, W) float32 with
	// C, H and W those of the model's vision config.
	Pixels []float32
	// InputIDs holds N token sequences, row-major (N, L) int32.
	InputIDs []int32
	// Labels holds N class labels for the classification loss, -1 for an
	// example without one. Nil when the data has no labels.
	Labels []int32
	// N is the number of pairs.
	N int
	// Index holds the N examples' numbers in the data set (see
	// [ExampleSet]): the same example has the same index in every epoch.
	// Nil when the data does not number its examples.
	Index []int
}

// SeqLen returns L, the token sequence length of the batch.
func (b Batch) SeqLen() int {
	if b.N == 0 {
		return 0
	}
	return len(b.InputIDs) / b.N
}

// BatchIterator yields the batches of one epoch in order.
type BatchIterator interface {
	// Next returns the next batch, or io.EOF after the last one.
	Next() (Batch, error)
	// Close releases the iterator's resources (prefetching goroutines,
	// open files). It is safe to call after io.EOF.
	Close() error
}

// Batches is a training set read in batches. Implementations must be
// deterministic: for a given epoch, the sequence of batches (their order
// and content) is always the same, so a resumed run sees the same data as
// an uninterrupted one.
type Batches interface {
	// NumBatches returns the number of batches of every epoch.
	NumBatches() int
	// Epoch returns an iterator over the batches of epoch (counting from 0)
	// that starts at batch start (0 <= start <= NumBatches()), skipping the
	// earlier ones without necessarily decoding them.
	Epoch(epoch, start int) (BatchIterator, error)
}

// MemoryData is a [Batches] over examples held in memory, shuffled per
// epoch by a seeded permutation (the same seed and epoch always give the
// same order). A last incomplete batch is dropped, so every batch has
// BatchSize examples.
type MemoryData struct {
	pixels    []float32
	ids       []int32
	labels    []int32
	n         int
	pixLen    int
	seqLen    int
	batchSize int
	seed      uint64
	shuffle   bool
}

// NewMemoryData returns a MemoryData over n examples: pixels holds n
// images of pixLen values each, ids n sequences of equal length, labels n
// labels or nil. With shuffle false the examples come in their given order
// every epoch.
func NewMemoryData(pixels []float32, ids []int32, labels []int32, n, batchSize int, seed uint64, shuffle bool) (*MemoryData, error) {
	switch {
	case n < 1:
		return nil, fmt.Errorf("memory data: %d examples, want at least 1", n)
	case batchSize < 1 || batchSize > n:
		return nil, fmt.Errorf("memory data: batch size %d must be in [1, %d]", batchSize, n)
	case len(pixels)%n != 0 || len(pixels) == 0:
		return nil, fmt.Errorf("memory data: %d pixel values do not split into %d images", len(pixels), n)
	case len(ids)%n != 0 || len(ids) == 0:
		return nil, fmt.Errorf("memory data: %d token ids do not split into %d sequences", len(ids), n)
	case labels != nil && len(labels) != n:
		return nil, fmt.Errorf("memory data: %d labels for %d examples", len(labels), n)
	}
	return &MemoryData{pixels: pixels, ids: ids, labels: labels, n: n, pixLen: len(pixels) / n,
		seqLen: len(ids) / n, batchSize: batchSize, seed: seed, shuffle: shuffle}, nil
}

// NumBatches implements Batches.
func (d *MemoryData) NumBatches() int { return d.n / d.batchSize }

// Order returns the example order of epoch.
func (d *MemoryData) Order(epoch int) []int {
	if !d.shuffle {
		order := make([]int, d.n)
		for i := range order {
			order[i] = i
		}
		return order
	}
	r := rand.New(rand.NewPCG(d.seed, uint64(epoch)))
	return r.Perm(d.n)
}

// Epoch implements Batches.
func (d *MemoryData) Epoch(epoch, start int) (BatchIterator, error) {
	if start < 0 || start > d.NumBatches() {
		return nil, fmt.Errorf("memory data: start batch %d outside [0, %d]", start, d.NumBatches())
	}
	return &memoryIter{d: d, order: d.Order(epoch), next: start}, nil
}

// memoryIter iterates the batches of one epoch of a MemoryData.
type memoryIter struct {
	d     *MemoryData
	order []int
	next  int
}

// Next implements BatchIterator.
func (it *memoryIter) Next() (Batch, error) {
	d := it.d
	if it.next >= d.NumBatches() {
		return Batch{}, io.EOF
	}
	idx := it.order[it.next*d.batchSize : (it.next+1)*d.batchSize]
	it.next++
	return d.batch(idx), nil
}

// batch gathers the examples idx into a Batch.
func (d *MemoryData) batch(idx []int) Batch {
	b := Batch{N: len(idx), Pixels: make([]float32, 0, len(idx)*d.pixLen), InputIDs: make([]int32, 0, len(idx)*d.seqLen),
		Index: slices.Clone(idx)}
	if d.labels != nil {
		b.Labels = make([]int32, 0, len(idx))
	}
	for _, i := range idx {
		b.Pixels = append(b.Pixels, d.pixels[i*d.pixLen:(i+1)*d.pixLen]...)
		b.InputIDs = append(b.InputIDs, d.ids[i*d.seqLen:(i+1)*d.seqLen]...)
		if d.labels != nil {
			b.Labels = append(b.Labels, d.labels[i])
		}
	}
	return b
}

// Close implements BatchIterator.
func (it *memoryIter) Close() error { return nil }

// NumExamples implements [ExampleSet]: examples are numbered in the order
// NewMemoryData got them.
func (d *MemoryData) NumExamples() int { return d.n }

// Identity implements [ExampleSet]: the number of examples and a SHA-256
// of their pixels, token ids and labels.
func (d *MemoryData) Identity() (string, error) {
	return fmt.Sprintf("memory: %d examples, sha256 %s", d.n, identityHash(d.pixels, d.ids, d.labels)), nil
}

// All implements [ExampleSet].
func (d *MemoryData) All(batchSize int) (BatchIterator, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("memory data: batch size %d, want at least 1", batchSize)
	}
	return &memoryAllIter{d: d, batch: batchSize}, nil
}

// memoryAllIter iterates every example of a MemoryData in index order.
type memoryAllIter struct {
	d           *MemoryData
	batch, next int
}

// Next implements BatchIterator.
func (it *memoryAllIter) Next() (Batch, error) {
	if it.next >= it.d.n {
		return Batch{}, io.EOF
	}
	end := min(it.next+it.batch, it.d.n)
	idx := make([]int, end-it.next)
	for j := range idx {
		idx[j] = it.next + j
	}
	it.next = end
	return it.d.batch(idx), nil
}

// Close implements BatchIterator.
func (it *memoryAllIter) Close() error { return nil }

// errNoBatches is returned when an epoch has fewer batches than one optimizer step needs.
var errNoBatches = errors.New("the data set has fewer batches than one optimizer step needs (train.grad_accum)")
