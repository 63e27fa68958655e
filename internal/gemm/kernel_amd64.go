package gemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// avxKernel is the AVX2/FMA micro-kernel: a 6×16 tile in 12 YMM registers.
var avxKernel = kernel{name: "avx2-fma 6x16", mr: 6, nr: 16, fn: kernelAVX6x16}

// hasAVX2FMA reports whether the CPU (and OS) support the assembly kernel.
func hasAVX2FMA() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

// bestKernel returns the AVX2/FMA kernel when the CPU has it, else the
// pure-Go one.
func bestKernel() kernel {
	if hasAVX2FMA() {
		return avxKernel
	}
	return goKernel
}

// kernelAVX6x16 checks the slice lengths (the assembly does not) and calls
// the assembly kernel.
func kernelAVX6x16(k int, a, b, c []float32, ldc int, acc bool) {
	if k <= 0 {
		return
	}
	_ = a[6*k-1]
	_ = b[16*k-1]
	_ = c[5*ldc+15]
	flag := 0
	if acc {
		flag = 1
	}
	sgemmKernel6x16(k, unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0]), unsafe.Pointer(&c[0]), ldc, flag)
}

// sgemmKernel6x16 is implemented in kernel_amd64.s.
//
//go:noescape
func sgemmKernel6x16(k int, a, b, c unsafe.Pointer, ldc int, acc int)
