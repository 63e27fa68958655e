//go:build !amd64

package gemm

// bestKernel returns the fastest micro-kernel for this CPU: the pure-Go one
// on architectures without an assembly kernel.
func bestKernel() kernel { return goKernel }
