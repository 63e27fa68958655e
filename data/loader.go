package data

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/qatclip/qatclip/data/tokenizer"
)

// Fields selects what a Loader puts in each Batch.
type Fields uint8

// The fields a Batch can carry. IDs are always filled.
const (
	// FieldPixels fills Batch.Pixels with preprocessed images.
	FieldPixels Fields = 1 << iota
	// FieldInputIDs fills Batch.InputIDs with tokenized captions.
	FieldInputIDs
	// FieldLabels fills Batch.Labels with class indices.
	FieldLabels
)

// String lists the fields, e.g. "pixels+input_ids".
func (f Fields) String() string {
	s := ""
	add := func(bit Fields, name string) {
		if f&bit != 0 {
			if s != "" {
				s += "+"
			}
			s += name
		}
	}
	add(FieldPixels, "pixels")
	add(FieldInputIDs, "input_ids")
	add(FieldLabels, "labels")
	if s == "" {
		return "none"
	}
	return s
}

// BadRecordMode says what a Loader does with an example it cannot use (an
// image that does not decode, a missing image file, a caption too long
// without truncation, a missing label).
type BadRecordMode int

const (
	// BadRecordSkip leaves the example out, counts it, and fills its slot
	// with the next usable example of the epoch order (see Loader).
	BadRecordSkip BadRecordMode = iota
	// BadRecordFail ends the epoch with an error naming the example, its
	// shard and row.
	BadRecordFail
)

// String returns "skip" or "fail".
func (m BadRecordMode) String() string {
	switch m {
	case BadRecordSkip:
		return "skip"
	case BadRecordFail:
		return "fail"
	}
	return fmt.Sprintf("BadRecordMode(%d)", int(m))
}

// ParseBadRecordMode parses "skip" or "fail" (the --on-bad-record flag).
func ParseBadRecordMode(s string) (BadRecordMode, error) {
	switch s {
	case "skip", "":
		return BadRecordSkip, nil
	case "fail":
		return BadRecordFail, nil
	}
	return 0, fmt.Errorf("on-bad-record %q: want skip or fail", s)
}

// Defaults of LoaderConfig.
const (
	// DefaultPrefetch is the number of ready batches a Loader keeps ahead
	// of the consumer.
	DefaultPrefetch = 2
	// DefaultShuffleBytes sizes the default shuffle window: as many rows
	// as hold about this many bytes of shard data, between
	// MinDefaultShuffleWindow and MaxDefaultShuffleWindow rows.
	DefaultShuffleBytes = 256 << 20
	// MinDefaultShuffleWindow and MaxDefaultShuffleWindow bound the
	// default shuffle window.
	MinDefaultShuffleWindow = 1024
	MaxDefaultShuffleWindow = 65536
	// MaxRAMCacheBytes bounds an in-memory pixel cache; larger sets need
	// LoaderConfig.CacheFile.
	MaxRAMCacheBytes = 16 << 30
)

// LoaderConfig configures a Loader. The zero value of every field but
// BatchSize has a usable default.
type LoaderConfig struct {
	// BatchSize is the number of examples per batch (required, > 0).
	BatchSize int
	// Preprocess is the image preprocessing (DefaultPreprocessConfig, CLIP
	// at 224 pixels CHW, when Size is 0).
	Preprocess PreprocessConfig
	// Tokenizer tokenizes captions into Batch.InputIDs; nil when the
	// loader produces no input ids.
	Tokenizer *tokenizer.Tokenizer
	// Tokenize sets the context length (77 when 0), truncation and padding
	// of input ids.
	Tokenize tokenizer.Options
	// Fields selects the batch contents; 0 means pixels, plus input ids
	// when Tokenizer is set, plus labels when the source has a label
	// column.
	Fields Fields
	// Workers is the number of decode goroutines (runtime.NumCPU() when 0).
	Workers int
	// Prefetch is the number of batches prepared ahead of the consumer
	// (DefaultPrefetch when 0). The loader owns at most Prefetch+1 batch
	// buffers, so its memory is bounded whatever the dataset size.
	Prefetch int
	// Shuffle shuffles each epoch (see Loader); false reads the examples
	// in storage order, as evaluation wants.
	Shuffle bool
	// Seed decides the shuffled order together with the epoch number.
	Seed uint64
	// ShuffleWindow is the number of consecutive rows (in shuffled shard
	// order) permuted together. The loader holds the encoded rows of the
	// one or two windows the current batches draw from, and reads each
	// shard chunk about once per epoch. When 0 it is derived from the
	// shard files' size (see DefaultShuffleBytes), so it is the same for
	// the same data; the order depends on it, so a resumed run must use
	// the value Config() reports.
	ShuffleWindow int
	// DropLast leaves out the last, short batch of an epoch.
	DropLast bool
	// Rank and Ranks shard the data for data parallelism: the loader of
	// rank i of n (0 <= i < n) sees every n-th example of the epoch order,
	// a disjoint 1/n of the epoch. Ranks 0 means 1.
	Rank, Ranks int
	// OnBadRecord is BadRecordSkip (the default) or BadRecordFail.
	OnBadRecord BadRecordMode
	// Cache keeps every image, once decoded, resized and cropped, as
	// Size x Size 8-bit RGB, so later epochs skip decoding: in memory, or
	// in CacheFile when set.
	Cache bool
	// CacheFile is the pre-decoded cache file (implies Cache). It is
	// created when missing and reused by later runs over the same source
	// and preprocessing size; filling it is resumable.
	CacheFile string
}

// Loader turns a Source into batches of preprocessed pixels, input ids
// and labels, decoding in parallel goroutines ahead of the consumer.
//
// The order of an epoch is a deterministic plan that depends only on the
// source's shard sizes, Seed, the epoch number, ShuffleWindow and the
// rank: with Shuffle, the shards are put in a seeded random order, the
// concatenated rows are cut into windows of ShuffleWindow rows, the
// windows are visited in a seeded random order and the rows of each
// window are permuted. Rank i of n then takes the positions i, i+n, ... of
// that order (each rank sees floor(rows/n) examples; the few left over
// change every epoch). Batch k holds positions [k*BatchSize,
// (k+1)*BatchSize) of the rank's order. Workers only fill the slots of a
// planned batch, so the batches do not depend on the number of workers or
// on timing, and Epoch(e, k) starts at batch k with exactly the batches an
// uninterrupted epoch has from step k on.
//
// A bad record (see BadRecordMode) does not shift later batches: in skip
// mode its slot is filled with the next usable example after the batch's
// own positions in the rank's order (wrapping around to the epoch's
// start), so a batch's content depends only on the plan and the data. The
// filler example also appears in its own batch. Rows an img2dataset status
// column marks as failed are filled the same way without being counted as
// bad.
//
// A Loader may run one epoch after the other; its batch buffers and cache
// are reused. Close it when done.
type Loader struct {
	src      *Source
	shards   []ShardInfo
	cfg      LoaderConfig
	fields   Fields
	itemLen  int // float32 values per image
	ctxLen   int
	plan     *plan
	rowBase  []int // first Source row of each shard
	cache    *pixelCache
	poolSize int

	mu        sync.Mutex
	allocated int
	free      chan *Batch
	held      int // batches handed out and not released
}

// NewLoader validates cfg against src and returns a Loader. It opens (or
// creates) the cache file when one is configured.
func NewLoader(src *Source, cfg LoaderConfig) (*Loader, error) {
	if src == nil {
		return nil, errors.New("loader: no source")
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("loader: batch size %d: want > 0", cfg.BatchSize)
	}
	if cfg.Preprocess.Size == 0 {
		layout := cfg.Preprocess.Layout
		cfg.Preprocess = DefaultPreprocessConfig()
		cfg.Preprocess.Layout = layout
	}
	if err := cfg.Preprocess.Validate(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if cfg.Workers < 0 || cfg.Prefetch < 0 || cfg.ShuffleWindow < 0 {
		return nil, fmt.Errorf("loader: workers %d, prefetch %d, shuffle window %d: want >= 0", cfg.Workers, cfg.Prefetch, cfg.ShuffleWindow)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.ShuffleWindow == 0 {
		cfg.ShuffleWindow = defaultShuffleWindow(src)
	}
	if cfg.Ranks == 0 {
		cfg.Ranks = 1
	}
	if cfg.Ranks < 0 || cfg.Rank < 0 || cfg.Rank >= cfg.Ranks {
		return nil, fmt.Errorf("loader: rank %d of %d: want 0 <= rank < ranks", cfg.Rank, cfg.Ranks)
	}
	if cfg.OnBadRecord != BadRecordSkip && cfg.OnBadRecord != BadRecordFail {
		return nil, fmt.Errorf("loader: on-bad-record %v: want skip or fail", cfg.OnBadRecord)
	}
	fields := cfg.Fields
	if fields == 0 {
		fields = FieldPixels
		if cfg.Tokenizer != nil {
			fields |= FieldInputIDs
		}
		if src.Columns().Label != "" {
			fields |= FieldLabels
		}
	}
	if fields&^(FieldPixels|FieldInputIDs|FieldLabels) != 0 {
		return nil, fmt.Errorf("loader: unknown fields %#x", uint8(fields))
	}
	l := &Loader{src: src, cfg: cfg, fields: fields, itemLen: cfg.Preprocess.OutputLen()}
	if fields&FieldInputIDs != 0 {
		if cfg.Tokenizer == nil {
			return nil, errors.New("loader: input_ids requested but no tokenizer given")
		}
		if src.Columns().Text == "" {
			return nil, fmt.Errorf("loader: input_ids requested but %s has no text column", src.Path())
		}
		l.ctxLen = cfg.Tokenize.ContextLength
		if l.ctxLen == 0 {
			l.ctxLen = tokenizer.DefaultContextLength
		}
		if l.ctxLen < 2 {
			return nil, fmt.Errorf("loader: context length %d: want at least 2", l.ctxLen)
		}
	}
	if fields&FieldLabels != 0 && src.Columns().Label == "" {
		return nil, fmt.Errorf("loader: labels requested but %s has no label column", src.Path())
	}
	l.shards = src.Shards()
	l.rowBase = make([]int, len(l.shards))
	for i := 1; i < len(l.shards); i++ {
		l.rowBase[i] = l.rowBase[i-1] + l.shards[i-1].Rows
	}
	l.plan = newPlan(l.shards, cfg)
	if l.plan.perRank == 0 {
		return nil, fmt.Errorf("loader: %s has %d rows, fewer than the %d ranks", src.Path(), src.NumRows(), cfg.Ranks)
	}
	if cfg.CacheFile != "" || cfg.Cache {
		if fields&FieldPixels == 0 {
			return nil, errors.New("loader: a pixel cache needs the pixels field")
		}
		c, err := openPixelCache(cfg.CacheFile, src, cfg.Preprocess.Size)
		if err != nil {
			return nil, err
		}
		l.cache = c
	}
	l.poolSize = cfg.Prefetch + 1
	l.free = make(chan *Batch, l.poolSize)
	return l, nil
}

// Config returns the configuration with defaults filled in.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Fields returns the fields the batches carry.
func (l *Loader) Fields() Fields { return l.fields }

// Source returns the source the loader reads.
func (l *Loader) Source() *Source { return l.src }

// ExamplesPerEpoch returns the number of examples this rank sees per
// epoch (before DropLast).
func (l *Loader) ExamplesPerEpoch() int { return l.plan.perRank }

// StepsPerEpoch returns the number of batches of an epoch.
func (l *Loader) StepsPerEpoch() int {
	n, b := l.plan.perRank, l.cfg.BatchSize
	if l.cfg.DropLast {
		return n / b
	}
	return (n + b - 1) / b
}

// Close releases the cache file, if any. Epochs must be closed first.
func (l *Loader) Close() error {
	if l.cache != nil {
		return l.cache.close()
	}
	return nil
}

// Batch is one batch of examples. Its slices are owned by the Loader and
// reused: the consumer calls Release when done with the batch (typically
// once its contents are copied into device tensors), after which the batch
// must not be used. Unreleased batches hold back the loader, which owns
// only Prefetch+1 buffers.
type Batch struct {
	// Pixels holds N preprocessed images, (N, 3, Size, Size) for LayoutCHW
	// or (N, Size, Size, 3) for LayoutHWC; nil without FieldPixels.
	Pixels []float32
	// InputIDs holds (N, ContextLength) token ids; nil without
	// FieldInputIDs.
	InputIDs []int32
	// Labels holds N class indices; nil without FieldLabels.
	Labels []int32
	// IDs names the N examples (Example.ID).
	IDs []string
	// Rows holds the N examples' row numbers in the Source, counting the
	// rows of every shard in order (0 <= row < Source.NumRows()): the same
	// example has the same row number in every epoch.
	Rows []int
	// N is the number of examples: BatchSize except, without DropLast, in
	// the last batch of an epoch.
	N int
	// Step is the batch's index in its epoch, Epoch the epoch's.
	Step, Epoch int
	// Size and Layout describe the images, ContextLength the input ids.
	Size          int
	Layout        Layout
	ContextLength int

	loader *Loader
	// Filled by the producer and the workers.
	examples []Example
	slotErr  []error
	pending  int32 // slots left, updated atomically
	done     chan struct{}
	err      error // fatal error, set before done is closed
	info     batchInfo
	out      bool // handed to the consumer
}

// batchInfo is what a batch adds to the epoch's statistics.
type batchInfo struct {
	bad       []BadRecord
	filtered  int
	truncated []int32 // per slot, 1 when the caption was cut
	cacheHits []int32 // per slot, 1 when the pixels came from the cache
}

// PixelShape returns the shape of Pixels: (N, 3, Size, Size) or (N, Size,
// Size, 3).
func (b *Batch) PixelShape() []int {
	if b.Layout == LayoutHWC {
		return []int{b.N, b.Size, b.Size, 3}
	}
	return []int{b.N, 3, b.Size, b.Size}
}

// Release returns the batch's buffers to its loader. Calling it twice is
// harmless.
func (b *Batch) Release() {
	l := b.loader
	if l == nil {
		return
	}
	l.mu.Lock()
	if !b.out {
		l.mu.Unlock()
		return
	}
	b.out = false
	l.held--
	l.mu.Unlock()
	l.putBuffer(b)
}

// getBuffer returns a free batch buffer, allocating one while fewer than
// poolSize exist, or nil when stop is closed first.
func (l *Loader) getBuffer(stop <-chan struct{}) *Batch {
	select {
	case b := <-l.free:
		return b
	default:
	}
	l.mu.Lock()
	if l.allocated < l.poolSize {
		l.allocated++
		l.mu.Unlock()
		return l.newBuffer()
	}
	l.mu.Unlock()
	select {
	case b := <-l.free:
		return b
	case <-stop:
		return nil
	}
}

// putBuffer returns a buffer to the pool.
func (l *Loader) putBuffer(b *Batch) {
	l.free <- b // never blocks: at most poolSize buffers exist
}

func (l *Loader) newBuffer() *Batch {
	bs := l.cfg.BatchSize
	b := &Batch{
		loader:   l,
		IDs:      make([]string, bs),
		Rows:     make([]int, bs),
		examples: make([]Example, bs),
		slotErr:  make([]error, bs),
		Size:     l.cfg.Preprocess.Size,
		Layout:   l.cfg.Preprocess.Layout,
	}
	b.info.truncated = make([]int32, bs)
	b.info.cacheHits = make([]int32, bs)
	if l.fields&FieldPixels != 0 {
		b.Pixels = make([]float32, bs*l.itemLen)
	}
	if l.fields&FieldInputIDs != 0 {
		b.InputIDs = make([]int32, bs*l.ctxLen)
		b.ContextLength = l.ctxLen
	}
	if l.fields&FieldLabels != 0 {
		b.Labels = make([]int32, bs)
	}
	return b
}

// reset prepares a buffer for batch step of epoch with n examples.
func (b *Batch) reset(epoch, step, n int) {
	l := b.loader
	b.Epoch, b.Step, b.N = epoch, step, n
	b.err = nil
	b.done = make(chan struct{})
	b.info.bad = b.info.bad[:0]
	b.info.filtered = 0
	clear(b.info.truncated)
	clear(b.info.cacheHits)
	clear(b.slotErr)
	clear(b.examples)
	clear(b.IDs)
	bs := l.cfg.BatchSize
	b.IDs = b.IDs[:n:bs]
	b.Rows = b.Rows[:n:bs]
	if b.Pixels != nil {
		b.Pixels = b.Pixels[: n*l.itemLen : bs*l.itemLen]
	}
	if b.InputIDs != nil {
		b.InputIDs = b.InputIDs[: n*l.ctxLen : bs*l.ctxLen]
	}
	if b.Labels != nil {
		b.Labels = b.Labels[:n:bs]
	}
}

// BadRecord describes an example a loader could not use.
type BadRecord struct {
	// ID is the example's ID; Shard the shard file, Row its row there.
	ID    string
	Shard string
	Row   int
	// Step is the batch it was planned for.
	Step int
	// Reason is the error.
	Reason string
}

// String formats the record as "ID (shard:row): reason".
func (r BadRecord) String() string {
	return fmt.Sprintf("%s (%s row %d): %s", r.ID, r.Shard, r.Row, r.Reason)
}

// CachedRows returns the number of rows the pixel cache holds (0 without
// a cache).
func (l *Loader) CachedRows() int {
	if l.cache == nil {
		return 0
	}
	return l.cache.stored()
}

// defaultShuffleWindow returns the rows of about DefaultShuffleBytes of
// src's shard files.
func defaultShuffleWindow(src *Source) int {
	var size int64
	for _, s := range src.Shards() {
		if st, err := os.Stat(s.Path); err == nil {
			size += st.Size()
		}
	}
	w := MaxDefaultShuffleWindow
	if rows := int64(src.NumRows()); size > 0 && rows > 0 {
		w = int(min(int64(DefaultShuffleBytes)/max(size/rows, 1), MaxDefaultShuffleWindow))
	}
	return max(w, MinDefaultShuffleWindow)
}
