package npy

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// npyBytes frames header as a version 1.0 .npy stream followed by data.
func npyBytes(header string, data []byte) []byte {
	b := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// dataLen returns the number of elements of a's Data slice.
func dataLen(a Array) int {
	return reflect.ValueOf(a.Data).Len()
}

// FuzzRead feeds arbitrary bytes to Read. Read must never panic, nor
// allocate more than the input can fill; an array it accepts must have as
// many elements as its shape says and must survive Write/Read unchanged.
func FuzzRead(f *testing.F) {
	for _, a := range []Array{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, float32(math.NaN())}},
		{Shape: []int{}, Data: []int64{-7}},
		{Shape: []int{0, 4}, Data: []uint8{}},
		{Shape: []int{3}, Data: []bool{true, false, true}},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", []byte{0, 0, 0, 1, 0, 0, 0, 2}))
	f.Add(append([]byte("\x93NUMPY\x02\x00\x20\x00\x00\x00"), "{'descr': '<f8', 'shape': (1,), 'fortran_order': False}"...))
	// testdata/fuzz/FuzzRead holds the crashes found: shapes whose product
	// overflows int or is far larger than the data.
	f.Fuzz(func(t *testing.T, data []byte) {
		// Read from a reader that knows its length (as ReadFile's does) and
		// from a plain stream: both must agree, and neither may allocate
		// more than the header and the elements the input holds (at most
		// 8 bytes of Go value per input byte, for bools), twice while
		// growing, plus small change; never what a header claims.
		var a, b Array
		var err, errStream error
		for _, read := range []func(){
			func() { a, err = Read(bytes.NewReader(data)) },
			func() { b, errStream = Read(struct{ io.Reader }{bytes.NewReader(data)}) },
		} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			read()
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(32*len(data)+1<<20) {
				t.Fatalf("Read of %d bytes allocated %d bytes", len(data), alloc)
			}
		}
		if (err == nil) != (errStream == nil) || !reflect.DeepEqual(a.Shape, b.Shape) || reflect.TypeOf(a.Data) != reflect.TypeOf(b.Data) {
			t.Fatalf("Read from a sized reader (%v) and from a stream (%v) disagree", err, errStream)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		want := big.NewInt(1)
		for _, d := range a.Shape {
			if d < 0 {
				t.Fatalf("negative dimension in shape %v", a.Shape)
			}
			want.Mul(want, big.NewInt(int64(d)))
		}
		if want.Cmp(big.NewInt(int64(dataLen(a)))) != 0 {
			t.Fatalf("shape %v holds %v elements, data has %d", a.Shape, want, dataLen(a))
		}
		var first bytes.Buffer
		if err := Write(&first, a); err != nil {
			t.Fatalf("Write of an array Read accepted: %v", err)
		}
		c, err := Read(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("Read of rewritten array: %v", err)
		}
		var second bytes.Buffer
		if err := Write(&second, c); err != nil {
			t.Fatal(err)
		}
		// Compare the encodings, not the values, so NaN payloads count.
		if !reflect.DeepEqual(c.Shape, a.Shape) || !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("round trip changed the array: shape %v -> %v", a.Shape, c.Shape)
		}
	})
}

// FuzzWriteRead builds a valid array from fuzzed parts (a dtype selector,
// a shape and raw element bytes), writes it and reads it back: the result
// must equal the original bit for bit.
func FuzzWriteRead(f *testing.F) {
	f.Add(uint8(0), []byte{2, 3}, []byte("abcdefghijklmnopqrstuvwx"))
	f.Add(uint8(3), []byte{}, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(6), []byte{4, 0, 9}, []byte{})
	f.Add(uint8(5), []byte{1, 1, 1, 1, 5}, []byte{0, 1, 2, 254, 255})
	f.Fuzz(func(t *testing.T, kind uint8, dims []byte, raw []byte) {
		if len(dims) > 8 {
			dims = dims[:8]
		}
		// Up to 8 dimensions of up to 15, at most 4096 elements.
		shape := make([]int, len(dims))
		n := 1
		for i, d := range dims {
			shape[i] = int(d % 16)
			if n*shape[i] > 4096 {
				shape[i] = 1
			}
			n *= shape[i]
		}
		a := Array{Shape: shape}
		size := []int{4, 8, 4, 8, 1, 1, 1}[int(kind)%7]
		if len(raw) < n*size {
			raw = append(raw, make([]byte, n*size-len(raw))...)
		}
		raw = raw[:n*size]
		le := binary.LittleEndian
		switch kind % 7 {
		case 0:
			d := make([]float32, n)
			for i := range d {
				d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
			}
			a.Data = d
		case 1:
			d := make([]float64, n)
			for i := range d {
				d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
			}
			a.Data = d
		case 2:
			d := make([]int32, n)
			for i := range d {
				d[i] = int32(le.Uint32(raw[4*i:]))
			}
			a.Data = d
		case 3:
			d := make([]int64, n)
			for i := range d {
				d[i] = int64(le.Uint64(raw[8*i:]))
			}
			a.Data = d
		case 4:
			d := make([]int8, n)
			for i := range d {
				d[i] = int8(raw[i])
			}
			a.Data = d
		case 5:
			a.Data = append([]uint8{}, raw...)
		case 6:
			d := make([]bool, n)
			for i := range d {
				d[i] = raw[i]&1 != 0
			}
			a.Data = d
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("Write(%v %T): %v", shape, a.Data, err)
		}
		if buf.Len()%64 != n*size%64 {
			t.Fatalf("header of %d bytes is not padded to 64", buf.Len()-n*size)
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("Read after Write(%v %T): %v", shape, a.Data, err)
		}
		if !reflect.DeepEqual(got.Shape, a.Shape) || reflect.TypeOf(got.Data) != reflect.TypeOf(a.Data) {
			t.Fatalf("round trip: shape %v %T, want %v %T", got.Shape, got.Data, a.Shape, a.Data)
		}
		var again bytes.Buffer
		if err := Write(&again, got); err != nil {
			t.Fatal(err)
		}
		var orig bytes.Buffer
		Write(&orig, a)
		if !bytes.Equal(again.Bytes(), orig.Bytes()) {
			t.Fatalf("round trip changed the data of %v %T", shape, a.Data)
		}
	})
}
