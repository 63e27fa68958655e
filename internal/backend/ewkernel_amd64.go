package backend

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The AVX2 kernels of ewkernel_amd64.s: out[i] = a[i] op b[i] (VV),
// a[i] op *b (VS), *a op b[i] (SV) for n a multiple of 8.

//go:noescape
func addVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func subVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func mulVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func divVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func minVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func maxVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func addVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func subVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func mulVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func divVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func minVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func maxVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func subSV(out, a, b unsafe.Pointer, n int)

//go:noescape
func divSV(out, a, b unsafe.Pointer, n int)

var (
	vvKernels = [...]func(out, a, b unsafe.Pointer, n int){binAdd: addVV, binSub: subVV, binMul: mulVV, binDiv: divVV, binMin: minVV, binMax: maxVV}
	vsKernels = [...]func(out, a, b unsafe.Pointer, n int){binAdd: addVS, binSub: subVS, binMul: mulVS, binDiv: divVS, binMin: minVS, binMax: maxVS}
)

// binVVSimd computes the longest multiple-of-8 prefix of out = a op b with
// AVX2 and returns its length (0 without AVX2). len(a), len(b) >= len(out).
func binVVSimd(op binOp, out, a, b []float32) int {
	n := len(out) &^ 7
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_, _ = a[n-1], b[n-1]
	vvKernels[op](unsafe.Pointer(&out[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), n)
	return n
}

// binVSSimd is binVVSimd for out = a op c.
func binVSSimd(op binOp, out, a []float32, c float32) int {
	n := len(out) &^ 7
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_ = a[n-1]
	vsKernels[op](unsafe.Pointer(&out[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&c), n)
	return n
}

// binSVSimd is binVVSimd for out = c op b.
func binSVSimd(op binOp, out []float32, c float32, b []float32) int {
	n := len(out) &^ 7
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_ = b[n-1]
	switch op {
	case binSub:
		subSV(unsafe.Pointer(&out[0]), unsafe.Pointer(&c), unsafe.Pointer(&b[0]), n)
	case binDiv:
		divSV(unsafe.Pointer(&out[0]), unsafe.Pointer(&c), unsafe.Pointer(&b[0]), n)
	default: // commutative: c op b[i] is b[i] op c, bit for bit
		vsKernels[op](unsafe.Pointer(&out[0]), unsafe.Pointer(&b[0]), unsafe.Pointer(&c), n)
	}
	return n
}

//go:noescape
func eqVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func neVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func ltVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func leVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func gtVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func geVV(out, a, b unsafe.Pointer, n int)

//go:noescape
func eqVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func neVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func ltVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func leVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func gtVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func geVS(out, a, b unsafe.Pointer, n int)

//go:noescape
func whereVV(out, c, t, f unsafe.Pointer, n int)

//go:noescape
func whereVS(out, c, t, f unsafe.Pointer, n int)

//go:noescape
func whereSV(out, c, t, f unsafe.Pointer, n int)

//go:noescape
func whereSS(out, c, t, f unsafe.Pointer, n int)

var (
	cmpVVKernels = [...]func(out, a, b unsafe.Pointer, n int){cmpEq: eqVV, cmpNe: neVV, cmpLt: ltVV, cmpLe: leVV, cmpGt: gtVV, cmpGe: geVV}
	cmpVSKernels = [...]func(out, a, b unsafe.Pointer, n int){cmpEq: eqVS, cmpNe: neVS, cmpLt: ltVS, cmpLe: leVS, cmpGt: gtVS, cmpGe: geVS}
)

// cmpVVSimd computes the longest multiple-of-32 prefix of out = a op b
// with AVX2 and returns its length (0 without AVX2).
func cmpVVSimd(op cmpOp, out []bool, a, b []float32) int {
	n := len(out) &^ 31
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_, _ = a[n-1], b[n-1]
	cmpVVKernels[op](unsafe.Pointer(&out[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), n)
	return n
}

// cmpVSSimd is cmpVVSimd for out = a op c.
func cmpVSSimd(op cmpOp, out []bool, a []float32, c float32) int {
	n := len(out) &^ 31
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_ = a[n-1]
	cmpVSKernels[op](unsafe.Pointer(&out[0]), unsafe.Pointer(&a[0]), unsafe.Pointer(&c), n)
	return n
}

// whereSimd computes the longest multiple-of-8 prefix of out = cond ? t :
// f with AVX2 and returns its length (0 without AVX2). t and f hold
// len(out) values or one.
func whereSimd(out []float32, cond []bool, t, f []float32) int {
	n := len(out) &^ 7
	if n == 0 || !cpu.X86.HasAVX2 {
		return 0
	}
	_ = cond[n-1]
	o, c, tp, fp := unsafe.Pointer(&out[0]), unsafe.Pointer(&cond[0]), unsafe.Pointer(&t[0]), unsafe.Pointer(&f[0])
	switch {
	case len(t) > 1 && len(f) > 1:
		_, _ = t[n-1], f[n-1]
		whereVV(o, c, tp, fp, n)
	case len(t) > 1:
		_ = t[n-1]
		whereVS(o, c, tp, fp, n)
	case len(f) > 1:
		_ = f[n-1]
		whereSV(o, c, tp, fp, n)
	default:
		whereSS(o, c, tp, fp, n)
	}
	return n
}
