package gemm

// goKernel is the portable micro-kernel: a 4×4 register tile in plain Go.
var goKernel = kernel{name: "go 4x4", mr: 4, nr: 4, fn: kernelGo4x4}

// kernelGo4x4 computes the 4×4 tile c (row stride ldc) = (acc ? c : 0) +
// Σ_p a[4p:4p+4] ⊗ b[4p:4p+4].
func kernelGo4x4(k int, a, b, c []float32, ldc int, acc bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a, b = a[:4*k], b[:4*k]
	for p := 0; p+3 < len(a); p += 4 {
		aa, bb := a[p:p+4:p+4], b[p:p+4:p+4]
		a0, a1, a2, a3 := aa[0], aa[1], aa[2], aa[3]
		b0, b1, b2, b3 := bb[0], bb[1], bb[2], bb[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	rows := [4][4]float32{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	for r := range 4 {
		dst := c[r*ldc : r*ldc+4 : r*ldc+4]
		if acc {
			dst[0] += rows[r][0]
			dst[1] += rows[r][1]
			dst[2] += rows[r][2]
			dst[3] += rows[r][3]
		} else {
			dst[0], dst[1], dst[2], dst[3] = rows[r][0], rows[r][1], rows[r][2], rows[r][3]
		}
	}
}
