// Package safetensors reads and writes the safetensors format: an 8-byte
// little-endian header length, a JSON header mapping tensor names to dtype,
// shape and byte offsets, then the raw little-endian tensor data.
//
// [Open] validates the whole header before any tensor is read: a truncated
// header, a header length past the end of the file, an unknown dtype,
// offsets past the end of the data, overlapping tensors and byte counts that
// disagree with the shape are all rejected with an error naming the file and
// the tensor. Tensor data is read on demand with ReadAt, so a large file is
// never loaded whole.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// DType is a safetensors element type, spelled as in the header ("F32", "BF16", ...).
type DType string

// The element types this package knows. Others in a header are an error.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point type convertible by [File.Float32].
func (d DType) IsFloat() bool {
	switch d {
	case F64, F32, F16, BF16:
		return true
	}
	return false
}

// maxHeaderSize bounds the JSON header (the reference implementation uses 100 MB).
const maxHeaderSize = 100 << 20

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the stored element type.
	DType DType
	// Shape is the tensor's dimensions; empty for a scalar.
	Shape []int
	// Begin and End are byte offsets into the data section (after the header).
	Begin, End int64
}

// NumElements returns the product of the shape's dimensions (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file whose header has been validated.
type File struct {
	path      string
	f         *os.File
	dataStart int64
	metadata  map[string]string
	tensors   map[string]TensorInfo
	names     []string
}

// Open opens the safetensors file at path and validates its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := parseHeader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors %s: %w", path, err)
	}
	sf.path = path
	sf.f = f
	return sf, nil
}

// headerEntry is one tensor entry of the JSON header.
type headerEntry struct {
	DType   DType   `json:"dtype"`
	Shape   []int   `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// parseHeader reads and validates the header of a file of the given size.
func parseHeader(r io.ReaderAt, size int64) (*File, error) {
	var pre [8]byte
	if size < 8 {
		return nil, fmt.Errorf("truncated header: file has %d bytes, fewer than the 8-byte header length", size)
	}
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	hlen := binary.LittleEndian.Uint64(pre[:])
	if hlen > uint64(size-8) {
		return nil, fmt.Errorf("truncated header: header length %d runs past the end of the file (%d bytes)", hlen, size)
	}
	if hlen > maxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit", hlen, maxHeaderSize)
	}
	buf := make([]byte, hlen)
	if _, err := r.ReadAt(buf, 8); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf, &raw); err != nil {
		return nil, fmt.Errorf("header is not a JSON object: %w", err)
	}
	sf := &File{
		dataStart: 8 + int64(hlen),
		tensors:   make(map[string]TensorInfo, len(raw)),
	}
	dataSize := size - sf.dataStart
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a map of strings: %w", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %w", name, err)
		}
		info, err := checkEntry(name, e, dataSize)
		if err != nil {
			return nil, err
		}
		sf.tensors[name] = info
		sf.names = append(sf.names, name)
	}
	sort.Strings(sf.names)
	if err := checkOverlaps(sf.tensors); err != nil {
		return nil, err
	}
	return sf, nil
}

// checkEntry validates one header entry against the data section's size.
func checkEntry(name string, e headerEntry, dataSize int64) (TensorInfo, error) {
	if e.DType == "" {
		return TensorInfo{}, fmt.Errorf("tensor %q: missing dtype", name)
	}
	if e.DType.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
	}
	if len(e.Offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets must hold 2 numbers, got %d", name, len(e.Offsets))
	}
	begin, end := e.Offsets[0], e.Offsets[1]
	if begin < 0 || end < begin {
		return TensorInfo{}, fmt.Errorf("tensor %q: bad data_offsets [%d, %d]", name, begin, end)
	}
	if end > dataSize {
		return TensorInfo{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the file (data section has %d bytes; file truncated?)", name, begin, end, dataSize)
	}
	// The element count is bounded by the data section's size divided by
	// the element size, so that n*size below cannot overflow: without the
	// bound, shape [2^62] of F64 wrapped to 0 bytes and was accepted for an
	// empty range (caught by FuzzOpen; regression seeds in
	// testdata/fuzz/FuzzOpen).
	maxElems := dataSize / int64(e.DType.Size())
	n := int64(1)
	for _, d := range e.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("tensor %q: negative dimension in shape %v", name, e.Shape)
		}
		if d > 0 && n > math.MaxInt64/int64(d) {
			return TensorInfo{}, fmt.Errorf("tensor %q: shape %v is too large", name, e.Shape)
		}
		n *= int64(d)
	}
	if n > maxElems {
		return TensorInfo{}, fmt.Errorf("tensor %q: %s shape %v holds %d elements, more than the %d-byte data section can (file truncated?)", name, e.DType, e.Shape, n, dataSize)
	}
	if want := n * int64(e.DType.Size()); end-begin != want {
		return TensorInfo{}, fmt.Errorf("tensor %q: %s shape %v needs %d bytes but data_offsets [%d, %d] hold %d", name, e.DType, e.Shape, want, begin, end, end-begin)
	}
	shape := e.Shape
	if shape == nil {
		shape = []int{}
	}
	return TensorInfo{Name: name, DType: e.DType, Shape: shape, Begin: begin, End: end}, nil
}

// checkOverlaps rejects tensors whose byte ranges overlap.
func checkOverlaps(tensors map[string]TensorInfo) error {
	infos := make([]TensorInfo, 0, len(tensors))
	for _, t := range tensors {
		if t.End > t.Begin {
			infos = append(infos, t)
		}
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].Begin != infos[j].Begin {
			return infos[i].Begin < infos[j].Begin
		}
		return infos[i].Name < infos[j].Name
	})
	for i := 1; i < len(infos); i++ {
		if infos[i].Begin < infos[i-1].End {
			return fmt.Errorf("tensors %q and %q overlap (bytes [%d, %d] and [%d, %d])",
				infos[i-1].Name, infos[i].Name, infos[i-1].Begin, infos[i-1].End, infos[i].Begin, infos[i].End)
		}
	}
	return nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Close closes the underlying file.
func (f *File) Close() error { return f.f.Close() }

// Metadata returns the header's "__metadata__" map (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Info returns the description of the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Bytes returns the raw little-endian bytes of the named tensor.
func (f *File) Bytes(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	buf := make([]byte, t.End-t.Begin)
	if _, err := f.f.ReadAt(buf, f.dataStart+t.Begin); err != nil {
		return nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, err)
	}
	return buf, nil
}

// Float32 reads the named floating-point tensor (F32, F64, F16 or BF16)
// converted to float32, with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	if !t.DType.IsFloat() {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q has dtype %s, want a float type (F32, F16, BF16, F64)", f.path, name, t.DType)
	}
	b, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	out, err := DecodeFloat32(t.DType, b)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q: %w", f.path, name, err)
	}
	return out, append([]int(nil), t.Shape...), nil
}

// DecodeFloat32 converts little-endian bytes of a float dtype to float32.
func DecodeFloat32(dtype DType, b []byte) ([]float32, error) {
	size := dtype.Size()
	if !dtype.IsFloat() {
		return nil, fmt.Errorf("dtype %s is not a float type", dtype)
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements", len(b), dtype)
	}
	out := make([]float32, len(b)/size)
	switch dtype {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F16:
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out, nil
}

// HalfToFloat32 converts an IEEE 754 binary16 value to float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN.
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = mant * 2^-24.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// ErrNotFound is wrapped by the errors of lookups of tensors a file does not hold.
var ErrNotFound = errors.New("no such tensor")
