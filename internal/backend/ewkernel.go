package backend

import (
	"math"
	"runtime"
	"sync"
)

// This file holds the element-wise float32 kernels the staged backend runs
// in Go (see elementwise.go). Each computes exactly what simplego's kernel
// computes (the same float32 operation, or the same float64 formula for
// transcendental functions), so results are bit-identical to plain
// simplego; they differ in speed only:
//
//   - broadcasting walks rows through strides (stridePlan) instead of
//     stepping an index iterator per value;
//   - on amd64 with AVX2, arithmetic, Min, Max, comparisons and Where run
//     8 values per instruction (ewkernel_amd64.s), the scalar loops below
//     finishing the tails;
//   - Sign, Abs and Where select on the bits without branches, which random
//     signs and conditions would mispredict;
//   - the transcendental functions (several ns per value) are split between
//     goroutines, each value computed by one of them, so the result does not
//     depend on how many. The other ops take about 0.1 ns per value, less
//     than handing work to a goroutine costs on a busy machine.

// binOp is a float32 binary operation.
type binOp uint8

const (
	binAdd binOp = iota
	binSub
	binMul
	binDiv
	binMin
	binMax
)

// cmpOp is a float32 comparison.
type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpNe
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

// unOp is a float32 unary operation.
type unOp uint8

const (
	unNeg unOp = iota
	unAbs
	unSign
	unExp
	unLogistic
	unTanh
	unSqrt
	unRsqrt
	unLog
	unFloor
)

// minParallel is the number of values below which a transcendental
// function runs on one goroutine.
const minParallel = 1 << 14

// defaultWorkers is the number of goroutines an element-wise op uses when
// the backend options do not say.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// parallelFor splits [0, n) into at most workers contiguous chunks (each a
// multiple of 64 elements, so no two chunks write the same cache line) and
// calls fn on each, concurrently.
func parallelFor(workers, n int, fn func(lo, hi int)) {
	if workers <= 1 || n < minParallel {
		fn(0, n)
		return
	}
	chunk := ((n+workers-1)/workers + 63) &^ 63
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo int) {
			defer wg.Done()
			fn(lo, min(lo+chunk, n))
		}(lo)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// stridePlan walks a row-major output whose operands are read through
// strides (0 along broadcast axes). Adjacent axes that are contiguous for
// every operand are merged, so [M,N] op [M,1] becomes M rows of N against
// one value each and [M,N] op [N] N-long rows against the same row.
type stridePlan struct {
	dims    []int   // merged output dimensions; the last is the row
	strides [][]int // per operand, the stride of each merged axis
}

// newStridePlan plans an output of dimensions out for operands whose
// dimensions (same rank as out) are equal to out's or 1; an operand of
// size 1 may also be given with nil dimensions.
func newStridePlan(out []int, operands ...[]int) stridePlan {
	full := make([][]int, len(operands))
	for k, dims := range operands {
		st := make([]int, len(out))
		if dims != nil {
			s := 1
			for a := len(out) - 1; a >= 0; a-- {
				if dims[a] != 1 {
					st[a] = s
				}
				s *= dims[a]
			}
		}
		full[k] = st
	}
	return planStrides(out, full...)
}

// planStrides plans an output of dimensions out whose operand k is read
// at offset Σ index[a]*strides[k][a].
func planStrides(out []int, strides ...[]int) stridePlan {
	p := stridePlan{strides: make([][]int, len(strides))}
	for a, d := range out {
		if d == 1 {
			continue
		}
		// Axis a continues the previous merged axis when, for every
		// operand, one step on the previous one is d steps on a.
		last := len(p.dims) - 1
		merge := last >= 0
		for k := range strides {
			merge = merge && p.strides[k][last] == strides[k][a]*d
		}
		if merge {
			p.dims[last] *= d
			for k := range strides {
				p.strides[k][last] = strides[k][a]
			}
			continue
		}
		p.dims = append(p.dims, d)
		for k := range strides {
			p.strides[k] = append(p.strides[k], strides[k][a])
		}
	}
	return p
}

// rows calls fn for the part of every row that falls in the output range
// [lo, hi): o is the output offset of the segment, off[k] operand k's
// offset, n its length; operand k then advances by its row stride
// (p.inner(k)) per element. off is reused between calls.
func (p *stridePlan) rows(lo, hi int, fn func(o int, off []int, n int)) {
	nops := len(p.strides)
	off := make([]int, nops)
	k := len(p.dims)
	if k == 0 {
		if lo < hi {
			fn(0, off, 1)
		}
		return
	}
	n := p.dims[k-1]
	row, col := lo/n, lo%n
	idx := make([]int, k-1)
	base := make([]int, nops)
	for j := k - 2; j >= 0; j-- {
		idx[j] = row % p.dims[j]
		row /= p.dims[j]
		for q := range nops {
			base[q] += idx[j] * p.strides[q][j]
		}
	}
	for o := lo; o < hi; {
		m := min(n-col, hi-o)
		for q := range nops {
			off[q] = base[q] + col*p.strides[q][k-1]
		}
		fn(o, off, m)
		o += m
		col = 0
		for j := k - 2; j >= 0; j-- {
			idx[j]++
			for q := range nops {
				base[q] += p.strides[q][j]
			}
			if idx[j] < p.dims[j] {
				break
			}
			idx[j] = 0
			for q := range nops {
				base[q] -= p.strides[q][j] * p.dims[j]
			}
		}
	}
}

// inner returns operand k's stride along a row: 1 for contiguous values,
// 0 for a value repeated along the row (or another stride for a
// transpose).
func (p *stridePlan) inner(k int) int {
	if len(p.dims) == 0 {
		return 0
	}
	return p.strides[k][len(p.dims)-1]
}

// binaryF32 computes out = a op b with the broadcasting of plan (operand 0
// is a, 1 is b).
func binaryF32(op binOp, p *stridePlan, out, a, b []float32) {
	if len(out) == 0 {
		return
	}
	ia, ib := p.inner(0), p.inner(1)
	if len(p.dims) <= 2 {
		// One run of rows (every pattern of a matrix against a matrix, a
		// row, a column or a value): no per-row closure.
		n, rows, sa, sb := 1, 1, 0, 0
		if k := len(p.dims); k > 0 {
			n = p.dims[k-1]
		}
		if len(p.dims) == 2 {
			rows, sa, sb = p.dims[0], p.strides[0][0], p.strides[1][0]
		}
		for r := range rows {
			binRow(op, out[r*n:(r+1)*n], a, r*sa, ia, b, r*sb, ib)
		}
		return
	}
	p.rows(0, len(out), func(o int, off []int, n int) {
		binRow(op, out[o:o+n], a, off[0], ia, b, off[1], ib)
	})
}

// binRow computes one row of n = len(out) values, reading a from offset oa
// with step ia (1, or 0 for one value) and b likewise.
func binRow(op binOp, out, a []float32, oa, ia int, b []float32, ob, ib int) {
	n := len(out)
	switch {
	case ia == 1 && ib == 1:
		binVV(op, out, a[oa:oa+n], b[ob:ob+n])
	case ia == 1:
		binVS(op, out, a[oa:oa+n], b[ob])
	case ib == 1:
		binSV(op, out, a[oa], b[ob:ob+n])
	default:
		fillF32(out, binScalar(op, a[oa], b[ob]))
	}
}

// binScalar applies op to two values, as the loops below do.
func binScalar(op binOp, x, y float32) float32 {
	switch op {
	case binAdd:
		return x + y
	case binSub:
		return x - y
	case binMul:
		return x * y
	case binDiv:
		return x / y
	case binMin:
		return min(x, y)
	default:
		return max(x, y)
	}
}

// binVV: out[i] = a[i] op b[i]. out may be a or b.
func binVV(op binOp, out, a, b []float32) {
	a, b = a[:len(out)], b[:len(out)]
	done := binVVSimd(op, out, a, b)
	out, a, b = out[done:], a[done:], b[done:]
	switch op {
	case binAdd:
		for i := range out {
			out[i] = a[i] + b[i]
		}
	case binSub:
		for i := range out {
			out[i] = a[i] - b[i]
		}
	case binMul:
		for i := range out {
			out[i] = a[i] * b[i]
		}
	case binDiv:
		for i := range out {
			out[i] = a[i] / b[i]
		}
	case binMin:
		for i := range out {
			out[i] = min(a[i], b[i])
		}
	case binMax:
		for i := range out {
			out[i] = max(a[i], b[i])
		}
	}
}

// binVS: out[i] = a[i] op c. out may be a.
func binVS(op binOp, out, a []float32, c float32) {
	a = a[:len(out)]
	done := binVSSimd(op, out, a, c)
	out, a = out[done:], a[done:]
	switch op {
	case binAdd:
		for i := range out {
			out[i] = a[i] + c
		}
	case binSub:
		for i := range out {
			out[i] = a[i] - c
		}
	case binMul:
		for i := range out {
			out[i] = a[i] * c
		}
	case binDiv:
		for i := range out {
			out[i] = a[i] / c
		}
	case binMin:
		for i := range out {
			out[i] = min(a[i], c)
		}
	case binMax:
		for i := range out {
			out[i] = max(a[i], c)
		}
	}
}

// binSV: out[i] = c op b[i]. out may be b.
func binSV(op binOp, out []float32, c float32, b []float32) {
	b = b[:len(out)]
	done := binSVSimd(op, out, c, b)
	out, b = out[done:], b[done:]
	switch op {
	case binAdd:
		for i := range out {
			out[i] = c + b[i]
		}
	case binSub:
		for i := range out {
			out[i] = c - b[i]
		}
	case binMul:
		for i := range out {
			out[i] = c * b[i]
		}
	case binDiv:
		for i := range out {
			out[i] = c / b[i]
		}
	case binMin:
		for i := range out {
			out[i] = min(c, b[i])
		}
	case binMax:
		for i := range out {
			out[i] = max(c, b[i])
		}
	}
}

// compareF32 computes out = a op b with the broadcasting of plan.
func compareF32(op cmpOp, p *stridePlan, out []bool, a, b []float32) {
	if len(out) == 0 {
		return
	}
	ia, ib := p.inner(0), p.inner(1)
	p.rows(0, len(out), func(o int, off []int, n int) {
		dst := out[o : o+n]
		switch {
		case ia == 1 && ib == 1:
			cmpVV(op, dst, a[off[0]:off[0]+n], b[off[1]:off[1]+n])
		case ia == 1:
			cmpVS(op, dst, a[off[0]:off[0]+n], b[off[1]])
		case ib == 1:
			// c op b[i] is b[i] (op mirrored) c.
			cmpVS(op.mirror(), dst, b[off[1]:off[1]+n], a[off[0]])
		default:
			v := cmpScalar(op, a[off[0]], b[off[1]])
			for i := range dst {
				dst[i] = v
			}
		}
	})
}

// mirror returns the comparison with its operands swapped.
func (op cmpOp) mirror() cmpOp {
	switch op {
	case cmpLt:
		return cmpGt
	case cmpLe:
		return cmpGe
	case cmpGt:
		return cmpLt
	case cmpGe:
		return cmpLe
	}
	return op
}

func cmpScalar(op cmpOp, x, y float32) bool {
	switch op {
	case cmpEq:
		return x == y
	case cmpNe:
		return x != y
	case cmpLt:
		return x < y
	case cmpLe:
		return x <= y
	case cmpGt:
		return x > y
	default:
		return x >= y
	}
}

func cmpVV(op cmpOp, out []bool, a, b []float32) {
	a, b = a[:len(out)], b[:len(out)]
	done := cmpVVSimd(op, out, a, b)
	out, a, b = out[done:], a[done:], b[done:]
	switch op {
	case cmpEq:
		for i := range out {
			out[i] = a[i] == b[i]
		}
	case cmpNe:
		for i := range out {
			out[i] = a[i] != b[i]
		}
	case cmpLt:
		for i := range out {
			out[i] = a[i] < b[i]
		}
	case cmpLe:
		for i := range out {
			out[i] = a[i] <= b[i]
		}
	case cmpGt:
		for i := range out {
			out[i] = a[i] > b[i]
		}
	case cmpGe:
		for i := range out {
			out[i] = a[i] >= b[i]
		}
	}
}

func cmpVS(op cmpOp, out []bool, a []float32, c float32) {
	a = a[:len(out)]
	done := cmpVSSimd(op, out, a, c)
	out, a = out[done:], a[done:]
	switch op {
	case cmpEq:
		for i := range out {
			out[i] = a[i] == c
		}
	case cmpNe:
		for i := range out {
			out[i] = a[i] != c
		}
	case cmpLt:
		for i := range out {
			out[i] = a[i] < c
		}
	case cmpLe:
		for i := range out {
			out[i] = a[i] <= c
		}
	case cmpGt:
		for i := range out {
			out[i] = a[i] > c
		}
	case cmpGe:
		for i := range out {
			out[i] = a[i] >= c
		}
	}
}

// unaryF32 computes out = op(x). out may be x. The transcendental
// functions are split between up to workers goroutines.
func unaryF32(workers int, op unOp, out, x []float32) {
	switch op {
	case unExp, unLogistic, unTanh, unLog:
	default:
		workers = 1
	}
	parallelFor(workers, len(out), func(lo, hi int) {
		unRange(op, out[lo:hi], x[lo:hi])
	})
}

func unRange(op unOp, out, x []float32) {
	x = x[:len(out)]
	switch op {
	case unNeg:
		for i := range out {
			out[i] = -x[i]
		}
	case unAbs:
		// -v where v < 0 (negative, not -0, not NaN); v elsewhere. On the
		// bits, without a branch to mispredict.
		for i, v := range x {
			bits := math.Float32bits(v)
			mag := bits &^ (1 << 31)
			if bits != mag && mag-1 < 0x7f800000 {
				bits = mag
			}
			out[i] = math.Float32frombits(bits)
		}
	case unSign:
		// ±1 with v's sign where v is nonzero and not NaN; +0 elsewhere.
		for i, v := range x {
			bits := math.Float32bits(v)
			var r uint32
			if (bits&^(1<<31))-1 < 0x7f800000 {
				r = 0x3f800000 | bits&(1<<31)
			}
			out[i] = math.Float32frombits(r)
		}
	case unExp:
		for i, v := range x {
			out[i] = float32(math.Exp(float64(v)))
		}
	case unLogistic:
		for i, v := range x {
			if v >= 0 {
				out[i] = float32(1.0 / (1.0 + math.Exp(-float64(v))))
			} else {
				e := math.Exp(float64(v))
				out[i] = float32(e / (1.0 + e))
			}
		}
	case unTanh:
		for i, v := range x {
			out[i] = float32(math.Tanh(float64(v)))
		}
	case unSqrt:
		for i, v := range x {
			out[i] = float32(math.Sqrt(float64(v)))
		}
	case unRsqrt:
		for i, v := range x {
			out[i] = float32(1.0 / math.Sqrt(float64(v)))
		}
	case unLog:
		for i, v := range x {
			out[i] = float32(math.Log(float64(v)))
		}
	case unFloor:
		for i, v := range x {
			out[i] = float32(math.Floor(float64(v)))
		}
	}
}

// whereF32 computes out[i] = cond[i] ? t[i] : f[i]; any of the three may
// hold a single value used everywhere. out may be t or f.
func whereF32(out []float32, cond []bool, t, f []float32) {
	if len(out) == 0 {
		return
	}
	if len(cond) == 1 {
		src := f
		if cond[0] {
			src = t
		}
		if len(src) == 1 {
			fillF32(out, src[0])
		} else {
			copy(out, src)
		}
		return
	}
	done := whereSimd(out, cond, t, f)
	// The rest, on the bits so that the compiler can use conditional
	// moves: conditions are often random.
	tb, fb := math.Float32bits(t[0]), math.Float32bits(f[0])
	for i := done; i < len(out); i++ {
		if len(t) > 1 {
			tb = math.Float32bits(t[i])
		}
		if len(f) > 1 {
			fb = math.Float32bits(f[i])
		}
		r := fb
		if cond[i] {
			r = tb
		}
		out[i] = math.Float32frombits(r)
	}
}

// broadcastF32 copies x into out through plan (one operand): a broadcast
// or a transpose.
func broadcastF32(p *stridePlan, out, x []float32) {
	if len(out) == 0 {
		return
	}
	ix := p.inner(0)
	p.rows(0, len(out), func(o int, off []int, n int) {
		dst := out[o : o+n]
		switch ix {
		case 1:
			copy(dst, x[off[0]:off[0]+n])
		case 0:
			fillF32(dst, x[off[0]])
		default:
			src := x[off[0]:]
			for i := range dst {
				dst[i] = src[i*ix]
			}
		}
	})
}

// fillF32 sets every value of out to v, copying ever larger runs (copy is
// vectorised, a plain loop is not).
func fillF32(out []float32, v float32) {
	if len(out) == 0 {
		return
	}
	out[0] = v
	for done := 1; done < len(out); done *= 2 {
		copy(out[done:], out[:done])
	}
}
