// Package npy reads and writes NumPy .npy files (format versions 1.0-3.0,
// little-endian, C order) holding float32, float64, int32, int64, int8, uint8
// or bool arrays.
//
// Arrays are returned as an [Array]: a shape plus a flat Go slice. Readers
// check the header, dtype, order and that the data length matches the shape,
// and return errors naming the file and the problem.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Array is an n-dimensional array read from or written to a .npy file.
// Data is one of []float32, []float64, []int32, []int64, []int8, []uint8 or []bool,
// in C (row-major) order, with len(Data) == product(Shape).
type Array struct {
	Shape []int
	Data  any
}

// Size returns the number of elements the shape describes.
func (a Array) Size() int { return shapeSize(a.Shape) }

func shapeSize(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// magic is the 6-byte prefix of every .npy file.
var magic = []byte("\x93NUMPY")

var (
	descrRe   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRe = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRe   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// ReadFile reads the .npy file at path.
func ReadFile(path string) (Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return Array{}, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Array{}, fmt.Errorf("npy: %w", err)
	}
	a, err := Read(&sizedReader{r: bufio.NewReader(f), left: st.Size()})
	if err != nil {
		return Array{}, fmt.Errorf("npy %s: %w", path, err)
	}
	return a, nil
}

// Read reads one .npy array from r.
func Read(r io.Reader) (Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Array{}, fmt.Errorf("not a .npy file: truncated preamble")
	}
	if !bytes.Equal(pre[:6], magic) {
		return Array{}, fmt.Errorf("not a .npy file: bad magic %q", pre[:6])
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Array{}, fmt.Errorf("truncated header length")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Array{}, fmt.Errorf("truncated header length")
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return Array{}, fmt.Errorf("unsupported .npy format version %d.%d", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return Array{}, fmt.Errorf("header length %d too large", hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return Array{}, fmt.Errorf("truncated header")
	}
	h := string(hdr)
	m := descrRe.FindStringSubmatch(h)
	if m == nil {
		return Array{}, fmt.Errorf("header has no descr: %q", strings.TrimSpace(h))
	}
	descr := m[1]
	if fm := fortranRe.FindStringSubmatch(h); fm == nil {
		return Array{}, fmt.Errorf("header has no fortran_order")
	} else if fm[1] == "True" {
		return Array{}, fmt.Errorf("fortran-order arrays are not supported (save with np.ascontiguousarray)")
	}
	sm := shapeRe.FindStringSubmatch(h)
	if sm == nil {
		return Array{}, fmt.Errorf("header has no shape")
	}
	shape := []int{}
	for _, p := range strings.Split(sm[1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := strconv.Atoi(p)
		if err != nil || d < 0 {
			return Array{}, fmt.Errorf("bad shape dimension %q", p)
		}
		shape = append(shape, d)
	}
	// Multiply with an overflow check: shape (2^62, 2) used to wrap to a
	// negative count and panic in make (caught by FuzzRead; regression
	// seeds in testdata/fuzz/FuzzRead).
	n := 1
	for _, d := range shape {
		if d > 0 && n > maxElements/d {
			return Array{}, fmt.Errorf("shape %v too large", shape)
		}
		n *= d
	}
	var order binary.ByteOrder = binary.LittleEndian
	if len(descr) > 0 && descr[0] == '>' {
		order = binary.BigEndian
	}
	kind := strings.TrimLeft(descr, "<>|=")
	a := Array{Shape: shape}
	var size int
	switch kind {
	case "f4", "i4":
		size = 4
	case "f8", "i8":
		size = 8
	case "i1", "u1", "b1":
		size = 1
	default:
		return Array{}, fmt.Errorf("unsupported dtype %q (want f4, f8, i4, i8, i1, u1 or b1)", descr)
	}
	raw, err := readBytes(r, n*size)
	if err != nil {
		return Array{}, fmt.Errorf("truncated data: shape %v needs %d elements of %s", shape, n, descr)
	}
	switch kind {
	case "f4":
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(order.Uint32(raw[4*i:]))
		}
		a.Data = d
	case "f8":
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(order.Uint64(raw[8*i:]))
		}
		a.Data = d
	case "i4":
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(order.Uint32(raw[4*i:]))
		}
		a.Data = d
	case "i8":
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(order.Uint64(raw[8*i:]))
		}
		a.Data = d
	case "i1":
		d := make([]int8, n)
		for i, v := range raw {
			d[i] = int8(v)
		}
		a.Data = d
	case "u1":
		a.Data = raw
	case "b1":
		d := make([]bool, n)
		for i, v := range raw {
			d[i] = v != 0
		}
		a.Data = d
	}
	return a, nil
}

// maxElements bounds the element count a header may declare (2^34: 64 GiB
// of float32).
const maxElements = 1 << 34

// readBytes reads exactly n bytes. A header may claim far more data than
// the input holds: an 80-byte file claiming 16 MiB used to allocate all of
// it before finding the data missing (caught by FuzzRead; regression seeds
// in testdata/fuzz/FuzzRead). So when r knows how many bytes are left (a
// file opened by ReadFile, a bytes.Reader), too few is an error before any
// allocation, and enough is read into one exact buffer; from any other
// reader the buffer starts at 1 MiB and doubles as data arrives, so memory
// stays within twice what the input held.
func readBytes(r io.Reader, n int) ([]byte, error) {
	if l, ok := r.(interface{ Len() int }); ok {
		if l.Len() < n {
			return nil, io.ErrUnexpectedEOF
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	const first = 1 << 20
	buf := make([]byte, 0, min(n, first))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		k, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// sizedReader is a reader that knows how many bytes are left in it.
type sizedReader struct {
	r    io.Reader
	left int64
}

// Read implements io.Reader.
func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}

// Len returns the number of bytes left.
func (s *sizedReader) Len() int { return int(max(s.left, 0)) }

// Float32 returns the data converted to float32 (from any numeric dtype).
func (a Array) Float32() ([]float32, error) {
	switch d := a.Data.(type) {
	case []float32:
		return d, nil
	case []float64:
		out := make([]float32, len(d))
		for i, v := range d {
			out[i] = float32(v)
		}
		return out, nil
	case []int32:
		return convert[int32, float32](d), nil
	case []int64:
		return convert[int64, float32](d), nil
	case []int8:
		return convert[int8, float32](d), nil
	case []uint8:
		return convert[uint8, float32](d), nil
	}
	return nil, fmt.Errorf("cannot convert %T to float32", a.Data)
}

// Float64 returns the data converted to float64 (from any numeric dtype).
func (a Array) Float64() ([]float64, error) {
	switch d := a.Data.(type) {
	case []float64:
		return d, nil
	case []float32:
		return convert[float32, float64](d), nil
	case []int32:
		return convert[int32, float64](d), nil
	case []int64:
		return convert[int64, float64](d), nil
	case []int8:
		return convert[int8, float64](d), nil
	case []uint8:
		return convert[uint8, float64](d), nil
	}
	return nil, fmt.Errorf("cannot convert %T to float64", a.Data)
}

// Int32 returns integer data converted to int32; int64 values outside the
// int32 range are an error.
func (a Array) Int32() ([]int32, error) {
	switch d := a.Data.(type) {
	case []int32:
		return d, nil
	case []int64:
		out := make([]int32, len(d))
		for i, v := range d {
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("value %d at index %d does not fit int32", v, i)
			}
			out[i] = int32(v)
		}
		return out, nil
	case []int8:
		return convert[int8, int32](d), nil
	case []uint8:
		return convert[uint8, int32](d), nil
	}
	return nil, fmt.Errorf("want an integer array, got %T", a.Data)
}

// Int64 returns integer data converted to int64.
func (a Array) Int64() ([]int64, error) {
	switch d := a.Data.(type) {
	case []int64:
		return d, nil
	case []int32:
		return convert[int32, int64](d), nil
	case []int8:
		return convert[int8, int64](d), nil
	case []uint8:
		return convert[uint8, int64](d), nil
	}
	return nil, fmt.Errorf("want an integer array, got %T", a.Data)
}

func convert[F, T int8 | uint8 | int32 | int64 | float32 | float64](in []F) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = T(v)
	}
	return out
}

func descrOf(data any) (string, error) {
	switch data.(type) {
	case []float32:
		return "<f4", nil
	case []float64:
		return "<f8", nil
	case []int32:
		return "<i4", nil
	case []int64:
		return "<i8", nil
	case []int8:
		return "|i1", nil
	case []uint8:
		return "|u1", nil
	case []bool:
		return "|b1", nil
	}
	return "", fmt.Errorf("unsupported data type %T", data)
}

// Write writes a as a version 1.0 .npy stream to w.
func Write(w io.Writer, a Array) error {
	descr, err := descrOf(a.Data)
	if err != nil {
		return err
	}
	var n int
	switch d := a.Data.(type) {
	case []float32:
		n = len(d)
	case []float64:
		n = len(d)
	case []int32:
		n = len(d)
	case []int64:
		n = len(d)
	case []int8:
		n = len(d)
	case []uint8:
		n = len(d)
	case []bool:
		n = len(d)
	}
	if n != a.Size() {
		return fmt.Errorf("data has %d elements, shape %v needs %d", n, a.Shape, a.Size())
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shapeStr := strings.Join(dims, ", ")
	if len(a.Shape) == 1 {
		shapeStr += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shapeStr)
	// Pad so that magic(6)+version(2)+len(2)+header is a multiple of 64, ending in '\n'.
	total := 10 + len(h) + 1
	pad := (64 - total%64) % 64
	h += strings.Repeat(" ", pad) + "\n"
	if len(h) > math.MaxUint16 {
		return fmt.Errorf("header too long")
	}
	bw := bufio.NewWriter(w)
	bw.Write(magic)
	bw.Write([]byte{1, 0})
	binary.Write(bw, binary.LittleEndian, uint16(len(h)))
	bw.WriteString(h)
	if b, ok := a.Data.([]bool); ok {
		raw := make([]uint8, len(b))
		for i, v := range b {
			if v {
				raw[i] = 1
			}
		}
		bw.Write(raw)
	} else if err := binary.Write(bw, binary.LittleEndian, a.Data); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteFile writes a to path atomically: it writes a temporary file in the
// same folder, syncs it and renames it over path.
func WriteFile(path string, a Array) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return Write(w, a) }); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}
