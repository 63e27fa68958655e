package data

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// MaxReportedBadRecords is the number of bad records LoaderStats keeps by
// name.
const MaxReportedBadRecords = 10

// ErrEpochClosed is returned by EpochIterator.Next after Close.
var ErrEpochClosed = errors.New("loader: epoch closed")

// errFiltered marks a slot whose row a status column excludes.
var errFiltered = errors.New("row marked failed by the status column")

// fatalError wraps an error that ends the epoch whatever OnBadRecord says
// (an unreadable shard, a failing cache file).
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// LoaderStats counts what an epoch delivered. The counts follow the
// order batches are delivered in, so they are the same on every run,
// except CacheHits while the cache is being filled.
type LoaderStats struct {
	// Epoch is the epoch number; FirstStep the step it started at.
	Epoch, FirstStep int
	// Batches and Examples delivered so far.
	Batches, Examples int
	// Bad is the number of bad records skipped; BadRecords names the
	// first MaxReportedBadRecords of them.
	Bad        int
	BadRecords []BadRecord
	// Filtered counts rows left out because a status column marks them
	// failed.
	Filtered int
	// Truncated counts captions cut to the context length.
	Truncated int
	// CacheHits counts images read from the pixel cache.
	CacheHits int
}

// Summary returns a one-paragraph report of the epoch, naming the first
// bad records.
func (s LoaderStats) Summary() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "epoch %d: %d examples in %d batches", s.Epoch, s.Examples, s.Batches)
	if s.FirstStep > 0 {
		fmt.Fprintf(&sb, " (from step %d)", s.FirstStep)
	}
	if s.CacheHits > 0 {
		fmt.Fprintf(&sb, ", %d from the pixel cache", s.CacheHits)
	}
	if s.Truncated > 0 {
		fmt.Fprintf(&sb, ", %d captions truncated", s.Truncated)
	}
	if s.Filtered > 0 {
		fmt.Fprintf(&sb, ", %d rows marked failed left out", s.Filtered)
	}
	if s.Bad == 0 {
		sb.WriteString(", no bad records")
		return sb.String()
	}
	fmt.Fprintf(&sb, ", %d bad records skipped", s.Bad)
	for i, r := range s.BadRecords {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString(r.String())
	}
	if s.Bad > len(s.BadRecords) {
		fmt.Fprintf(&sb, "; and %d more", s.Bad-len(s.BadRecords))
	}
	return sb.String()
}

// add counts a delivered batch.
func (s *LoaderStats) add(b *Batch) {
	s.Batches++
	s.Examples += b.N
	s.Bad += len(b.info.bad)
	for _, r := range b.info.bad {
		if len(s.BadRecords) < MaxReportedBadRecords {
			s.BadRecords = append(s.BadRecords, r)
		}
	}
	s.Filtered += b.info.filtered
	for j := 0; j < b.N; j++ {
		s.Truncated += int(b.info.truncated[j])
		s.CacheHits += int(b.info.cacheHits[j])
	}
}

// EpochIterator yields the batches of one epoch in step order. It runs a
// planning goroutine and the decode workers until the epoch ends; always
// Close it (also after an error or io.EOF).
type EpochIterator struct {
	l     *Loader
	ep    *epochPlan
	epoch int
	start int
	steps int

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	ready    chan *Batch // planned batches in step order
	tasks    chan loaderTask

	winMu sync.Mutex
	wins  map[int]*windowRows // loaded shuffle windows by visiting index

	mu     sync.Mutex
	taken  *Batch // the batch Next is waiting for
	closed bool
	err    error // sticky: io.EOF or the epoch's error
	stats  LoaderStats
}

// loaderTask asks a worker to fill slot j of b; j < 0 asks it only to
// finish b.
type loaderTask struct {
	b *Batch
	j int
}

// Epoch starts epoch number epoch at step startStep (0 <= startStep <=
// StepsPerEpoch()): the iterator yields the batches startStep,
// startStep+1, ... of the epoch, the same an iterator started at 0 yields
// from there on.
func (l *Loader) Epoch(epoch, startStep int) (*EpochIterator, error) {
	steps := l.StepsPerEpoch()
	if epoch < 0 {
		return nil, fmt.Errorf("loader: epoch %d: want >= 0", epoch)
	}
	if startStep < 0 || startStep > steps {
		return nil, fmt.Errorf("loader: start step %d out of range [0, %d] (%d steps per epoch)", startStep, steps, steps)
	}
	it := &EpochIterator{
		l:     l,
		ep:    l.plan.epoch(epoch),
		epoch: epoch,
		start: startStep,
		steps: steps,
		stop:  make(chan struct{}),
		ready: make(chan *Batch, l.poolSize),
		tasks: make(chan loaderTask, l.cfg.BatchSize),
		wins:  make(map[int]*windowRows),
	}
	it.stats.Epoch, it.stats.FirstStep = epoch, startStep
	workers := make([]*loaderWorker, l.cfg.Workers)
	for i := range workers {
		pre, err := NewPreprocessor(l.cfg.Preprocess)
		if err != nil {
			return nil, fmt.Errorf("loader: %w", err)
		}
		workers[i] = &loaderWorker{l: l, it: it, pre: pre}
	}
	it.wg.Add(1 + len(workers))
	go it.produce()
	for _, w := range workers {
		go w.run()
	}
	return it, nil
}

// Steps returns the number of steps of the epoch (StepsPerEpoch).
func (it *EpochIterator) Steps() int { return it.steps }

// Next returns the next batch, or io.EOF after the last one. The caller
// owns the batch until it calls Batch.Release. After an error every call
// returns the same error.
func (it *EpochIterator) Next() (*Batch, error) {
	select {
	case <-it.stop:
		return nil, ErrEpochClosed
	default:
	}
	l := it.l
	it.mu.Lock()
	if it.err != nil {
		err := it.err
		it.mu.Unlock()
		return nil, err
	}
	it.mu.Unlock()
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if held >= l.poolSize {
		return nil, fmt.Errorf("loader: the caller holds all %d batch buffers; call Batch.Release on batches it is done with", l.poolSize)
	}
	var b *Batch
	var ok bool
	select {
	case b, ok = <-it.ready:
	case <-it.stop:
		return nil, ErrEpochClosed
	}
	if !ok {
		it.mu.Lock()
		if it.err == nil {
			it.err = io.EOF
		}
		err := it.err
		it.mu.Unlock()
		return nil, err
	}
	it.mu.Lock()
	if it.closed {
		it.mu.Unlock()
		l.putBuffer(b)
		return nil, ErrEpochClosed
	}
	it.taken = b
	it.mu.Unlock()
	select {
	case <-b.done:
	case <-it.stop:
		return nil, ErrEpochClosed // Close recycles b
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed {
		return nil, ErrEpochClosed
	}
	it.taken = nil
	if b.err != nil {
		it.err = b.err
		l.putBuffer(b)
		return nil, it.err
	}
	it.stats.add(b)
	l.mu.Lock()
	b.out = true
	l.held++
	l.mu.Unlock()
	return b, nil
}

// Stats returns the counts of the batches delivered so far.
func (it *EpochIterator) Stats() LoaderStats {
	it.mu.Lock()
	defer it.mu.Unlock()
	s := it.stats
	s.BadRecords = slices.Clone(s.BadRecords)
	return s
}

// Close stops the epoch's goroutines, waits for them and returns the
// buffers of undelivered batches to the loader. Batches already delivered
// stay valid until released. Close may be called from another goroutine
// to cancel a Next in progress, and more than once.
func (it *EpochIterator) Close() error {
	it.stopOnce.Do(func() { close(it.stop) })
	it.wg.Wait()
	it.winMu.Lock()
	clear(it.wins)
	it.winMu.Unlock()
	it.mu.Lock()
	if !it.closed {
		it.closed = true
		if it.taken != nil {
			it.l.putBuffer(it.taken)
			it.taken = nil
		}
		for drained := false; !drained; {
			select {
			case b, ok := <-it.ready:
				if !ok {
					drained = true
					break
				}
				it.l.putBuffer(b)
			default:
				drained = true
			}
		}
	}
	it.mu.Unlock()
	return nil
}

// stopped reports whether Close was called.
func (it *EpochIterator) stopped() bool {
	select {
	case <-it.stop:
		return true
	default:
		return false
	}
}

// produce plans the batches in step order, reads their examples and hands
// their slots to the workers.
func (it *EpochIterator) produce() {
	defer it.wg.Done()
	defer close(it.tasks)
	defer close(it.ready)
	l := it.l
	bs := l.cfg.BatchSize
	for step := it.start; step < it.steps; step++ {
		b := l.getBuffer(it.stop)
		if b == nil {
			return
		}
		n := min(bs, l.plan.perRank-step*bs)
		b.reset(it.epoch, step, n)
		if err := it.readBatch(b, step*bs); err != nil {
			b.err = err
			close(b.done)
			it.ready <- b
			return
		}
		pending := int32(0)
		for j := 0; j < n; j++ {
			if b.slotErr[j] == nil {
				pending++
			}
		}
		atomic.StoreInt32(&b.pending, pending)
		it.ready <- b // never blocks: ready holds every buffer there is
		if pending == 0 {
			if !it.send(loaderTask{b, -1}) {
				return
			}
			continue
		}
		for j := 0; j < n; j++ {
			if b.slotErr[j] == nil && !it.send(loaderTask{b, j}) {
				return
			}
		}
	}
}

// send queues a task, giving up when the epoch is closed.
func (it *EpochIterator) send(t loaderTask) bool {
	select {
	case it.tasks <- t:
		return true
	case <-it.stop:
		return false
	}
}

// windowRows holds the examples of one shuffle window, read in storage
// order. It is immutable once loaded.
type windowRows struct {
	start int       // stream index of rows[0]
	rows  []Example // by stream index - start
	ok    []bool    // false for rows a status column excludes
}

// readBatch fills the examples of the batch starting at rank position
// start from the shuffle windows it draws from, loading them as needed
// and dropping the windows earlier batches used. Rows a status column
// excludes get errFiltered.
func (it *EpochIterator) readBatch(b *Batch, start int) error {
	first := -1
	for j := 0; j < b.N; j++ {
		t, _ := it.ep.position(start + j)
		if first < 0 || t < first {
			first = t
		}
	}
	it.winMu.Lock()
	for t := range it.wins {
		if t < first {
			delete(it.wins, t)
		}
	}
	it.winMu.Unlock()
	for j := 0; j < b.N; j++ {
		t, idx := it.ep.position(start + j)
		w, err := it.window(t, b)
		if err != nil {
			return err
		}
		if i := idx - w.start; w.ok[i] {
			b.examples[j] = w.rows[i]
		} else {
			b.slotErr[j] = errFiltered
		}
	}
	return nil
}

// window returns the rows of the window visited t-th, reading them when
// they are not loaded.
func (it *EpochIterator) window(t int, b *Batch) (*windowRows, error) {
	it.winMu.Lock()
	w := it.wins[t]
	it.winMu.Unlock()
	if w != nil {
		return w, nil
	}
	start, end := it.ep.windowSpan(t)
	w = &windowRows{start: start, rows: make([]Example, end-start), ok: make([]bool, end-start)}
	for idx := start; idx < end; {
		shard, row := it.ep.shardRow(idx)
		stop := min(end-idx, it.l.shards[shard].Rows-row) // rows of this shard in the window
		exs, err := it.l.src.ReadRange(shard, row, row+stop)
		if err != nil {
			return nil, fmt.Errorf("loader: epoch %d step %d: %w", b.Epoch, b.Step, err)
		}
		for _, ex := range exs {
			i := idx + ex.Row - row - start
			w.rows[i], w.ok[i] = ex, true
		}
		idx += stop
	}
	it.winMu.Lock()
	it.wins[t] = w
	it.winMu.Unlock()
	return w, nil
}

// example returns the example at rank position q, from a loaded window
// or read on its own; ok is false for a row a status column excludes.
func (it *EpochIterator) example(q int) (ex Example, ok bool, err error) {
	t, idx := it.ep.position(q)
	it.winMu.Lock()
	w := it.wins[t]
	it.winMu.Unlock()
	if w != nil {
		i := idx - w.start
		return w.rows[i], w.ok[i], nil
	}
	shard, row := it.ep.shardRow(idx)
	exs, err := it.l.src.ReadRange(shard, row, row+1)
	if err != nil || len(exs) == 0 {
		return Example{}, false, err
	}
	return exs[0], true, nil
}

// loaderWorker decodes and preprocesses slots; each has its own
// Preprocessor and scratch memory.
type loaderWorker struct {
	l    *Loader
	it   *EpochIterator
	pre  *Preprocessor
	rgb  []uint8 // decoded image
	crop []uint8 // cached crop
}

func (w *loaderWorker) run() {
	defer w.it.wg.Done()
	for {
		if w.it.stopped() {
			return
		}
		select {
		case t, ok := <-w.it.tasks:
			if !ok {
				return
			}
			if t.j >= 0 {
				t.b.slotErr[t.j] = w.process(t.b, t.j, &t.b.examples[t.j])
			}
			if t.j < 0 || atomic.AddInt32(&t.b.pending, -1) == 0 {
				w.finish(t.b)
			}
		case <-w.it.stop:
			return
		}
	}
}

// process fills slot j of b from ex. It returns the reason ex is a bad
// record, or a fatalError.
func (w *loaderWorker) process(b *Batch, j int, ex *Example) error {
	l := w.l
	b.IDs[j] = ex.ID
	b.Rows[j] = l.rowBase[ex.Shard] + ex.Row
	b.info.truncated[j], b.info.cacheHits[j] = 0, 0
	if l.fields&FieldLabels != 0 {
		if ex.Label < 0 {
			return errors.New("no label")
		}
		b.Labels[j] = int32(ex.Label)
	}
	if l.fields&FieldInputIDs != 0 {
		c := l.ctxLen
		cut, err := l.cfg.Tokenizer.TokenizeTo(b.InputIDs[j*c:(j+1)*c], ex.Caption, l.cfg.Tokenize)
		if err != nil {
			return fmt.Errorf("caption: %w", err)
		}
		if cut {
			b.info.truncated[j] = 1
		}
	}
	if l.fields&FieldPixels != 0 {
		n := l.itemLen
		hit, err := w.pixels(b.Pixels[j*n:(j+1)*n], ex)
		if err != nil {
			return err
		}
		if hit {
			b.info.cacheHits[j] = 1
		}
	}
	return nil
}

// pixels writes the preprocessed image of ex into dst, through the cache
// when there is one, and reports whether it came from the cache.
func (w *loaderWorker) pixels(dst []float32, ex *Example) (bool, error) {
	c := w.l.cache
	gi := 0
	if c != nil {
		gi = c.index(ex.Shard, ex.Row)
		if c.has(gi) {
			img, err := c.get(gi, w.crop)
			if err != nil {
				return false, fatalError{err}
			}
			w.crop = img.Pix
			w.pre.normalize(dst, img)
			return true, nil
		}
	}
	data, err := ex.ImageData()
	if err != nil {
		return false, err
	}
	img, err := decodeImage(data, w.rgb)
	if err == nil {
		w.rgb = img.Pix
		img, err = w.pre.ResizeCrop(img)
	}
	if err != nil {
		return false, err // not cached: a bad image is decoded again, giving the same reason
	}
	if c != nil {
		if err := c.put(gi, img.Pix); err != nil {
			return false, fatalError{err}
		}
	}
	w.pre.normalize(dst, img)
	return false, nil
}

// finish runs once every slot of b is processed: it records the bad
// records in slot order, fills their slots with the next usable examples
// after the batch in the rank's order, and marks b done.
func (w *loaderWorker) finish(b *Batch) {
	defer close(b.done)
	l := w.l
	for j := 0; j < b.N; j++ {
		var fe fatalError
		if errors.As(b.slotErr[j], &fe) {
			b.err = fmt.Errorf("loader: epoch %d step %d: %w", b.Epoch, b.Step, fe.err)
			return
		}
	}
	perRank := l.plan.perRank
	next := b.Step*l.cfg.BatchSize + b.N // first candidate position
	tried := 0
	for j := 0; j < b.N; j++ {
		err := b.slotErr[j]
		if err == nil {
			continue
		}
		ex := &b.examples[j]
		if err == errFiltered {
			b.info.filtered++
		} else {
			rec := BadRecord{ID: ex.ID, Shard: filepath.Base(l.shardPath(ex.Shard)), Row: ex.Row, Step: b.Step, Reason: err.Error()}
			if l.cfg.OnBadRecord == BadRecordFail {
				b.err = fmt.Errorf("loader: bad record %s in shard %s row %d: %v (on-bad-record is fail)", rec.ID, l.shardPath(ex.Shard), ex.Row, err)
				return
			}
			b.info.bad = append(b.info.bad, rec)
		}
		for {
			if tried >= perRank-b.N {
				b.err = fmt.Errorf("loader: epoch %d step %d: no usable example left to fill the batch (%d bad records in it, every other example of the epoch tried)", b.Epoch, b.Step, len(b.info.bad))
				return
			}
			q := (next + tried) % perRank
			tried++
			ex, ok, rerr := w.it.example(q)
			if rerr != nil {
				b.err = fmt.Errorf("loader: epoch %d step %d: %w", b.Epoch, b.Step, rerr)
				return
			}
			if !ok {
				continue // marked failed
			}
			b.examples[j] = ex
			perr := w.process(b, j, &b.examples[j])
			if perr == nil {
				break
			}
			var fe fatalError
			if errors.As(perr, &fe) {
				b.err = fmt.Errorf("loader: epoch %d step %d: %w", b.Epoch, b.Step, fe.err)
				return
			}
		}
	}
}

// shardPath returns the file of shard i.
func (l *Loader) shardPath(i int) string {
	if i < 0 || i >= len(l.shards) {
		return fmt.Sprintf("shard %d", i)
	}
	return l.shards[i].Path
}
