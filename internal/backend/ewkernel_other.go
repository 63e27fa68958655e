//go:build !amd64

package backend

// binVVSimd has no vector kernel here: it computes nothing and returns 0.
func binVVSimd(op binOp, out, a, b []float32) int { return 0 }

// binVSSimd has no vector kernel here.
func binVSSimd(op binOp, out, a []float32, c float32) int { return 0 }

// binSVSimd has no vector kernel here.
func binSVSimd(op binOp, out []float32, c float32, b []float32) int { return 0 }

// cmpVVSimd has no vector kernel here.
func cmpVVSimd(op cmpOp, out []bool, a, b []float32) int { return 0 }

// cmpVSSimd has no vector kernel here.
func cmpVSSimd(op cmpOp, out []bool, a []float32, c float32) int { return 0 }

// whereSimd has no vector kernel here.
func whereSimd(out []float32, cond []bool, t, f []float32) int { return 0 }
