package export

import "fmt"

// packRows packs a row-major [rows, cols] matrix of signed bits-bit
// integers into int32 words as compressed-tensors' pack-quantized format
// does: each value is offset by 2^(bits-1) to make it unsigned, each row is
// padded with zeros to a multiple of 32/bits values, and value k of a word
// occupies bits [k*bits, (k+1)*bits). The result is [rows, ceil(cols/(32/bits))].
func packRows(values []int8, rows, cols, bits int) ([]int32, int, error) {
	if bits < 1 || bits > 8 {
		return nil, 0, fmt.Errorf("pack: %d bits, want 1..8", bits)
	}
	if len(values) != rows*cols {
		return nil, 0, fmt.Errorf("pack: %d values for [%d, %d]", len(values), rows, cols)
	}
	per := 32 / bits
	words := (cols + per - 1) / per
	off := int32(1) << (bits - 1)
	mask := uint32(1)<<bits - 1
	out := make([]int32, rows*words)
	for r := range rows {
		for c := range cols {
			u := uint32(int32(values[r*cols+c])+off) & mask
			w := &out[r*words+c/per]
			*w = int32(uint32(*w) | u<<(uint(c%per)*uint(bits)))
		}
	}
	return out, words, nil
}

// unpackRows reverses packRows: [rows, words] int32 to [rows, cols] signed
// integers.
func unpackRows(packed []int32, rows, cols, bits int) ([]int32, error) {
	if bits < 1 || bits > 8 {
		return nil, fmt.Errorf("unpack: %d bits, want 1..8", bits)
	}
	per := 32 / bits
	words := (cols + per - 1) / per
	if len(packed) != rows*words {
		return nil, fmt.Errorf("unpack: %d words, want %d for [%d, %d] at %d bits", len(packed), rows*words, rows, cols, bits)
	}
	off := int32(1) << (bits - 1)
	mask := uint32(1)<<bits - 1
	out := make([]int32, rows*cols)
	for r := range rows {
		for c := range cols {
			w := uint32(packed[r*words+c/per])
			out[r*cols+c] = int32((w>>(uint(c%per)*uint(bits)))&mask) - off
		}
	}
	return out, nil
}

// transposeInt8 returns the transpose of a row-major [rows, cols] matrix.
func transposeInt8(m []int8, rows, cols int) []int8 {
	out := make([]int8, len(m))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = m[i*cols+j]
		}
	}
	return out
}

// transposeInt32 returns the transpose of a row-major [rows, cols] matrix.
func transposeInt32(m []int32, rows, cols int) []int32 {
	out := make([]int32, len(m))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = m[i*cols+j]
		}
	}
	return out
}
