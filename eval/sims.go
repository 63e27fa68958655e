package eval

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/qatclip/qatclip/internal/npy"
)

// Sims is a row-major similarity matrix [N, C]: one row per example, one
// column per class. It holds either float32 or float64 values without
// copying them; every computation converts to float64.
type Sims struct {
	n, c int
	f32  []float32
	f64  []float64
}

// NewSims32 wraps data (row-major, len n*c) as an [n, c] matrix.
func NewSims32(data []float32, n, c int) (Sims, error) {
	if err := checkShape(len(data), n, c); err != nil {
		return Sims{}, err
	}
	return Sims{n: n, c: c, f32: data}, nil
}

// NewSims64 wraps data (row-major, len n*c) as an [n, c] matrix.
func NewSims64(data []float64, n, c int) (Sims, error) {
	if err := checkShape(len(data), n, c); err != nil {
		return Sims{}, err
	}
	return Sims{n: n, c: c, f64: data}, nil
}

// SimsFromArray wraps a 2-D float32 or float64 .npy array as a matrix;
// other dtypes are converted to float64.
func SimsFromArray(a npy.Array) (Sims, error) {
	if len(a.Shape) != 2 {
		return Sims{}, fmt.Errorf("want a 2-D [N, C] similarity matrix, got shape %v", a.Shape)
	}
	n, c := a.Shape[0], a.Shape[1]
	switch d := a.Data.(type) {
	case []float32:
		return NewSims32(d, n, c)
	case []float64:
		return NewSims64(d, n, c)
	}
	d, err := a.Float64()
	if err != nil {
		return Sims{}, err
	}
	return NewSims64(d, n, c)
}

func checkShape(length, n, c int) error {
	switch {
	case n <= 0 || c <= 0:
		return fmt.Errorf("empty similarity matrix [%d, %d]", n, c)
	case length != n*c:
		return fmt.Errorf("similarity data has %d values, want %d*%d = %d", length, n, c, n*c)
	}
	return nil
}

// Rows returns N, the number of examples.
func (s Sims) Rows() int { return s.n }

// Cols returns C, the number of classes.
func (s Sims) Cols() int { return s.c }

// At returns the similarity of row i with class j.
func (s Sims) At(i, j int) float64 {
	if s.f32 != nil {
		return float64(s.f32[i*s.c+j])
	}
	return s.f64[i*s.c+j]
}

// Row copies row i into dst (len >= C) as float64 and returns dst[:C].
func (s Sims) Row(i int, dst []float64) []float64 {
	dst = dst[:s.c]
	if s.f32 != nil {
		for j, v := range s.f32[i*s.c : (i+1)*s.c] {
			dst[j] = float64(v)
		}
		return dst
	}
	copy(dst, s.f64[i*s.c:(i+1)*s.c])
	return dst
}

// Validate reports the first NaN or infinite similarity, naming its row and
// column.
func (s Sims) Validate() error {
	if s.n == 0 || (s.f32 == nil && s.f64 == nil) {
		return errors.New("empty similarity matrix")
	}
	bad := -1
	if s.f32 != nil {
		for k, v := range s.f32 {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				bad = k
				break
			}
		}
	} else {
		for k, v := range s.f64 {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				bad = k
				break
			}
		}
	}
	if bad >= 0 {
		return fmt.Errorf("row %d, class %d: similarity is %v (want a finite number)", bad/s.c, bad%s.c, s.At(bad/s.c, bad%s.c))
	}
	return nil
}

// CheckLabels reports labels outside [0, classes) and a length different
// from rows.
func CheckLabels(labels []int, rows, classes int) error {
	if len(labels) != rows {
		return fmt.Errorf("%d labels for %d similarity rows", len(labels), rows)
	}
	for i, l := range labels {
		if l < 0 || l >= classes {
			return fmt.Errorf("label %d at row %d is outside [0, %d)", l, i, classes)
		}
	}
	return nil
}

// LabelsFromArray converts a 1-D integer .npy array to labels.
func LabelsFromArray(a npy.Array) ([]int, error) {
	if len(a.Shape) != 1 {
		return nil, fmt.Errorf("want a 1-D label array, got shape %v", a.Shape)
	}
	switch a.Data.(type) {
	case []float32, []float64, []bool:
		return nil, fmt.Errorf("want integer labels, got %T", a.Data)
	}
	v, err := a.Int64()
	if err != nil {
		return nil, err
	}
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out, nil
}

// workerCount resolves a requested worker count: <= 0 means GOMAXPROCS.
func workerCount(w int) int {
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	return w
}

// parallelRows calls fn on contiguous row ranges [lo, hi) covering [0, n),
// using up to workers goroutines. fn must only write per-row outputs.
func parallelRows(n, workers int, fn func(lo, hi int)) {
	// Below 256 rows per goroutine, start-up costs more than it saves.
	parallelRange(n, workers, 256, fn)
}

// parallelRange is parallelRows giving each goroutine at least minPer items.
func parallelRange(n, workers, minPer int, fn func(lo, hi int)) {
	workers = workerCount(workers)
	if workers > (n+minPer-1)/minPer {
		workers = (n + minPer - 1) / minPer
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	// More chunks than workers balances uneven machines; chunks are fixed
	// ranges so results do not depend on scheduling.
	chunks := workers * 4
	size := (n + chunks - 1) / chunks
	var wg sync.WaitGroup
	next := make(chan int, chunks)
	for lo := 0; lo < n; lo += size {
		next <- lo
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lo := range next {
				fn(lo, min(lo+size, n))
			}
		}()
	}
	wg.Wait()
}
