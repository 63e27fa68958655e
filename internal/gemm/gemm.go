// Package gemm multiplies batches of float32 matrices on the CPU: a
// cache-blocked GEMM with packed panels and a register-tiled micro-kernel
// (AVX2/FMA assembly on amd64 CPUs that have it, pure Go elsewhere), run on
// several goroutines.
//
// Operands are described by offset tables (see Operand), so any strided or
// permuted layout (e.g. the operands of a DotGeneral with batch axes in the
// middle) is read in place, without a transposing copy.
//
// Results are deterministic: every output element is summed in the same
// order whatever the number of goroutines or their scheduling, because the
// work is split only over output tiles (never over the contracted axis) and
// the blocking does not depend on the number of workers.
package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Blocking sizes (in elements). kc×nc floats of packed B stay in L2, mc×kc of
// packed A in L1/L2. They are fixed so that results do not depend on the
// machine's core count.
const (
	blockK = 256
	blockM = 96
	blockN = 512
)

// minParallelFlops is the work (multiply-adds) below which a product runs on
// the calling goroutine only: starting goroutines costs more than it saves.
const minParallelFlops = 1 << 16

// Operand describes a batch of matrices read in place. Element (b, i, p) —
// batch b, cross index i (a row of A or a column of B), contracted index p —
// is Data[Batch[b]+Cross[i]+Contract[p]]. The tables hold offsets in
// elements; a plain row-major A[m][k] has Cross[i] = i*k, Contract[p] = p.
type Operand struct {
	Data                   []float32
	Batch, Cross, Contract []int
}

// Strided returns the offset table {0, stride, 2*stride, ...} of length n.
func Strided(n, stride int) []int {
	t := make([]int, n)
	for i := range t {
		t[i] = i * stride
	}
	return t
}

// kernel is a micro-kernel: c[mr×nr] (row stride ldc) = (acc ? c : 0) +
// Σ_p a[p*mr+r]·b[p*nr+j] over p < k, with a and b packed panels.
type kernel struct {
	name   string
	mr, nr int
	fn     func(k int, a, b, c []float32, ldc int, acc bool)
}

// Multiplier runs batched matrix products. It keeps packing buffers for
// reuse between calls; it is safe for concurrent use. The zero value is not
// usable: call New.
type Multiplier struct {
	workers int
	kern    kernel
	bufs    sync.Pool
}

// New returns a Multiplier that uses up to workers goroutines per product
// (workers <= 0 means runtime.GOMAXPROCS(0)) and the fastest micro-kernel
// this CPU supports.
func New(workers int) *Multiplier {
	return newWithKernel(workers, bestKernel())
}

// NewPureGo is like New but always uses the portable pure-Go micro-kernel.
func NewPureGo(workers int) *Multiplier {
	return newWithKernel(workers, goKernel)
}

func newWithKernel(workers int, k kernel) *Multiplier {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &Multiplier{workers: workers, kern: k}
}

// Kernel names the micro-kernel in use ("avx2-fma 6x16" or "go 4x4").
func (m *Multiplier) Kernel() string { return m.kern.name }

// scratch holds one goroutine's packing buffers and an edge tile.
type scratch struct {
	a, b, tile []float32
}

func (m *Multiplier) getScratch() *scratch {
	if s, ok := m.bufs.Get().(*scratch); ok {
		return s
	}
	mr, nr := m.kern.mr, m.kern.nr
	return &scratch{
		a:    make([]float32, roundUp(blockM, mr)*blockK),
		b:    make([]float32, roundUp(blockN, nr)*blockK),
		tile: make([]float32, mr*nr),
	}
}

// MatMul sets c[b][i][j] = Σ_p A(b,i,p)·B(b,j,p) for b < len(a.Batch),
// i < len(a.Cross), j < len(b.Cross), p < len(a.Contract); c is row-major
// [batch][m][n] and is overwritten. It returns an error when the tables
// disagree in length or point outside Data.
func (m *Multiplier) MatMul(c []float32, a, b Operand) error {
	batch, rows, cols, depth := len(a.Batch), len(a.Cross), len(b.Cross), len(a.Contract)
	if len(b.Batch) != batch || len(b.Contract) != depth {
		return fmt.Errorf("gemm: operands disagree: A has %d batches and %d contracted, B %d and %d",
			batch, depth, len(b.Batch), len(b.Contract))
	}
	if len(c) != batch*rows*cols {
		return fmt.Errorf("gemm: output has %d elements, want %d×%d×%d", len(c), batch, rows, cols)
	}
	if err := checkBounds("A", a); err != nil {
		return err
	}
	if err := checkBounds("B", b); err != nil {
		return err
	}
	if len(c) == 0 {
		return nil
	}
	if depth == 0 {
		clear(c)
		return nil
	}

	// Jobs: (batch, chunk of rows). Rows are split into chunks only when
	// there are fewer batches than workers, so that each worker gets work.
	mr := m.kern.mr
	chunks := 1
	if batch < m.workers {
		chunks = min((m.workers+batch-1)/batch, (rows+mr-1)/mr)
	}
	chunkRows := roundUp((rows+chunks-1)/chunks, mr)
	chunks = (rows + chunkRows - 1) / chunkRows
	jobs := batch * chunks
	run := func(s *scratch, job int) {
		bi, ch := job/chunks, job%chunks
		i0 := ch * chunkRows
		i1 := min(i0+chunkRows, rows)
		m.block(s, c[bi*rows*cols:(bi+1)*rows*cols], cols, a, b, bi, i0, i1)
	}

	workers := min(m.workers, jobs)
	if workers <= 1 || batch*rows*cols*depth < minParallelFlops {
		s := m.getScratch()
		for job := range jobs {
			run(s, job)
		}
		m.bufs.Put(s)
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			s := m.getScratch()
			for {
				job := int(next.Add(1) - 1)
				if job >= jobs {
					break
				}
				run(s, job)
			}
			m.bufs.Put(s)
		})
	}
	wg.Wait()
	return nil
}

// block computes rows [i0, i1) of batch bi into c (row-major, n columns):
// the GotoBLAS loop nest over column blocks, depth blocks and row blocks,
// with packed panels and the micro-kernel on mr×nr tiles.
func (m *Multiplier) block(s *scratch, c []float32, n int, a, b Operand, bi, i0, i1 int) {
	mr, nr := m.kern.mr, m.kern.nr
	depth := len(a.Contract)
	aBase, bBase := a.Batch[bi], b.Batch[bi]
	for j0 := 0; j0 < n; j0 += blockN {
		nc := min(blockN, n-j0)
		for p0 := 0; p0 < depth; p0 += blockK {
			kc := min(blockK, depth-p0)
			acc := p0 > 0
			packPanels(s.b, b.Data, bBase, b.Cross[j0:j0+nc], b.Contract[p0:p0+kc], nr)
			for ib := i0; ib < i1; ib += blockM {
				mc := min(blockM, i1-ib)
				packPanels(s.a, a.Data, aBase, a.Cross[ib:ib+mc], a.Contract[p0:p0+kc], mr)
				for jr := 0; jr < nc; jr += nr {
					nn := min(nr, nc-jr)
					bp := s.b[jr*kc : (jr+nr)*kc]
					for ir := 0; ir < mc; ir += mr {
						mm := min(mr, mc-ir)
						ap := s.a[ir*kc : (ir+mr)*kc]
						off := (ib+ir)*n + j0 + jr
						if mm == mr && nn == nr {
							m.kern.fn(kc, ap, bp, c[off:], n, acc)
							continue
						}
						m.kern.fn(kc, ap, bp, s.tile, nr, false)
						for r := range mm {
							dst := c[off+r*n : off+r*n+nn]
							src := s.tile[r*nr : r*nr+nn]
							if acc {
								for j, v := range src {
									dst[j] += v
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

// packPanels packs the len(cross)×len(contract) block of one matrix into
// panels of w cross indices: panel q holds, for each p, the w values
// (q*w+0, p) ... (q*w+w-1, p) contiguously; missing cross indices past the
// end are zero.
func packPanels(dst, data []float32, base int, cross, contract []int, w int) {
	kc := len(contract)
	contiguousCross := len(cross) > 1 && cross[1]-cross[0] == 1
	for q := 0; q < len(cross); q += w {
		panel := dst[q*kc : (q+w)*kc]
		ww := min(w, len(cross)-q)
		if contiguousCross && ww == w && isRun(cross[q:q+w]) {
			// Cross indices are adjacent in memory: copy w values per p.
			start := base + cross[q]
			for p, po := range contract {
				copy(panel[p*w:p*w+w], data[start+po:start+po+w])
			}
			continue
		}
		for r := range ww {
			row := base + cross[q+r]
			for p, po := range contract {
				panel[p*w+r] = data[row+po]
			}
		}
		for r := ww; r < w; r++ {
			for p := range kc {
				panel[p*w+r] = 0
			}
		}
	}
}

// isRun reports whether t holds consecutive integers.
func isRun(t []int) bool {
	for i := 1; i < len(t); i++ {
		if t[i] != t[i-1]+1 {
			return false
		}
	}
	return true
}

// checkBounds verifies that every element an operand can address lies in Data.
func checkBounds(name string, o Operand) error {
	if len(o.Batch) == 0 || len(o.Cross) == 0 || len(o.Contract) == 0 {
		return nil
	}
	lo, hi := 0, 0
	for _, t := range [][]int{o.Batch, o.Cross, o.Contract} {
		tmin, tmax := t[0], t[0]
		for _, v := range t {
			tmin, tmax = min(tmin, v), max(tmax, v)
		}
		lo, hi = lo+tmin, hi+tmax
	}
	if lo < 0 || hi >= len(o.Data) {
		return fmt.Errorf("gemm: operand %s addresses elements [%d, %d], data has %d", name, lo, hi, len(o.Data))
	}
	return nil
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }
