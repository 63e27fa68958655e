package train

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/qatclip/qatclip/internal/backend"
)

// StepTiming is where the wall time of one optimizer step went, reported
// to Options.OnStep. Data is the time the step waited for its batches
// (reading, preprocessing and the host-to-device copy all run ahead in a
// goroutine, so on a fast data path it is near zero); Exec is the compiled
// step itself (PJRT's execute waits for the device); Outputs reads the
// losses back and checks them. Wall covers the whole step, bookkeeping
// included (metrics lines, progress, the lifecycle of the quantizers), but
// not checkpoints or evaluations.
type StepTiming struct {
	// Step is the optimizer step just done, counting from 1.
	Step int
	// Epoch is the step's epoch, counting from 0.
	Epoch int
	// Images is the number of examples of the step (all micro-batches).
	Images int
	// Wall, Data, Exec and Outputs are described on the type.
	Wall, Data, Exec, Outputs time.Duration
}

// readyBatch is one batch converted to the step's input tensors, or the
// error that ended the epoch's batches.
type readyBatch struct {
	pixels, ids, labels *tensors.Tensor
	n                   int
	err                 error
}

// prefetcher reads the batches of one epoch in a goroutine, one batch
// ahead of the step: it converts each to tensors and, on a device
// backend, copies them to the device, so that the copy overlaps the
// previous step's execution. The order of the batches is the iterator's,
// so results do not depend on the prefetching.
type prefetcher struct {
	out  chan readyBatch
	stop chan struct{}
	done chan struct{}
	it   BatchIterator
}

// prefetch starts reading count batches from it, the first being batch
// first of epoch (for error messages). The iterator is closed by
// prefetcher.close.
func (t *Trainer) prefetch(it BatchIterator, epoch, first, count int) *prefetcher {
	p := &prefetcher{out: make(chan readyBatch, 1), stop: make(chan struct{}), done: make(chan struct{}), it: it}
	// The pure-Go backend (plain simplego, or qatclip's wrapper of it) keeps
	// buffers in host memory: nothing to copy ahead there.
	onHost := backend.IsGo(t.backend)
	go func() {
		defer close(p.done)
		defer close(p.out)
		for i := range count {
			bi := first + i
			where := fmt.Sprintf("epoch %d batch %d", epoch, bi)
			rb := readyBatch{}
			b, err := it.Next()
			switch {
			case errors.Is(err, io.EOF):
				rb.err = fmt.Errorf("%s: the data ended early (NumBatches says %d)", where, t.opts.Data.NumBatches())
			case err != nil:
				rb.err = fmt.Errorf("%s: %w", where, err)
			default:
				rb.n = b.N
				rb.pixels, rb.ids, rb.labels, rb.err = t.batchTensors(b, where)
			}
			if rb.err == nil && !onHost {
				for _, x := range []*tensors.Tensor{rb.pixels, rb.ids, rb.labels} {
					if err := x.MaterializeOnDevice(t.backend, false, 0); err != nil {
						rb.err = fmt.Errorf("%s: copy to the device: %w", where, err)
						break
					}
				}
			}
			select {
			case p.out <- rb:
			case <-p.stop:
				return
			}
			if rb.err != nil {
				return
			}
		}
	}()
	return p
}

// release frees the batch's tensors, on the host and on the device, now
// rather than when the garbage collector gets to them (device memory is
// invisible to it).
func (rb readyBatch) release() {
	for _, x := range []*tensors.Tensor{rb.pixels, rb.ids, rb.labels} {
		if x != nil {
			_ = x.FinalizeAll()
		}
	}
}

// next returns the next batch; the wait is the step's data time.
func (p *prefetcher) next() readyBatch {
	rb, ok := <-p.out
	if !ok {
		return readyBatch{err: errors.New("internal error: prefetcher ran out of batches")}
	}
	return rb
}

// stopReading stops the goroutine and waits for it; the iterator stays
// open. Calling it again is a no-op.
func (p *prefetcher) stopReading() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// close stops the goroutine, waits for it and closes the iterator.
func (p *prefetcher) close() error {
	p.stopReading()
	return p.it.Close()
}
