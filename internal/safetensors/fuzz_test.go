package safetensors

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzSeedFile returns a small valid safetensors file holding one tensor of
// each kind the fuzzer should start from: float, half, integer, scalar,
// empty, plus metadata.
func fuzzSeedFile(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tensors := []Tensor{
		Float32Tensor("w", []int{2, 3}, []float32{1, -2, 3.5, 0, 1e-8, -0}),
		Int8Tensor("q", []int{4}, []int8{-128, -1, 0, 127}),
		Int32Tensor("s", nil, []int32{42}),
		{Name: "h", DType: F16, Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x00, 0xfc}},
		{Name: "b", DType: BF16, Shape: []int{1, 1}, Data: []byte{0x80, 0x3f}},
		{Name: "e", DType: F64, Shape: []int{0, 3}, Data: []byte{}},
	}
	if err := Write(&buf, tensors, map[string]string{"format": "pt"}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// rawSafetensors frames header as a safetensors file followed by data.
func rawSafetensors(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// FuzzOpen feeds arbitrary bytes to Open through a file. Open must never
// panic; an error must be one line naming the file; a file it accepts must
// describe tensors whose byte ranges match their shapes exactly (no
// overflow), read back without error, and survive a Write/Open round trip
// unchanged.
func FuzzOpen(f *testing.F) {
	f.Add(fuzzSeedFile(f))
	f.Add([]byte{})
	f.Add(rawSafetensors(`{}`, nil))
	f.Add(rawSafetensors(`{"__metadata__":{"a":"b"},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 2, 3}))
	f.Add(rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`, make([]byte, 8)))
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.safetensors")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line naming the file: %q", msg)
			}
			return
		}
		defer sf.Close()
		var tensors []Tensor
		for _, name := range sf.Names() {
			info, ok := sf.Info(name)
			if !ok {
				t.Fatalf("Names lists %q but Info does not know it", name)
			}
			// The element count times the element size, computed without
			// overflow, must be the byte range's length.
			want := big.NewInt(int64(info.DType.Size()))
			for _, d := range info.Shape {
				want.Mul(want, big.NewInt(int64(d)))
			}
			if want.Cmp(big.NewInt(info.End-info.Begin)) != 0 {
				t.Fatalf("tensor %q: %s shape %v needs %v bytes, range [%d, %d] holds %d", name, info.DType, info.Shape, want, info.Begin, info.End, info.End-info.Begin)
			}
			b, err := sf.Bytes(name)
			if err != nil {
				t.Fatalf("Bytes(%q): %v", name, err)
			}
			if info.DType.IsFloat() {
				vs, shape, err := sf.Float32(name)
				if err != nil || len(vs) != info.NumElements() || !reflect.DeepEqual(shape, info.Shape) {
					t.Fatalf("Float32(%q) = %d values, shape %v, %v; want %d values, shape %v", name, len(vs), shape, err, info.NumElements(), info.Shape)
				}
			}
			tensors = append(tensors, Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: b})
		}
		var buf bytes.Buffer
		if err := Write(&buf, tensors, sf.Metadata()); err != nil {
			t.Fatalf("Write of tensors Open accepted: %v", err)
		}
		again := filepath.Join(dir, "again.safetensors")
		if err := os.WriteFile(again, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		sf2, err := Open(again)
		if err != nil {
			t.Fatalf("Open of rewritten file: %v", err)
		}
		defer sf2.Close()
		if !reflect.DeepEqual(sf2.Names(), sf.Names()) {
			t.Fatalf("names %v after round trip, want %v", sf2.Names(), sf.Names())
		}
		if len(sf.Metadata()) > 0 && !reflect.DeepEqual(sf2.Metadata(), sf.Metadata()) {
			t.Fatalf("metadata %v after round trip, want %v", sf2.Metadata(), sf.Metadata())
		}
		for _, tn := range tensors {
			info, _ := sf2.Info(tn.Name)
			b, err := sf2.Bytes(tn.Name)
			if err != nil || info.DType != tn.DType || !reflect.DeepEqual(info.Shape, tn.Shape) || !bytes.Equal(b, tn.Data) {
				t.Fatalf("tensor %q after round trip: %s %v %d bytes (%v), want %s %v %d bytes", tn.Name, info.DType, info.Shape, len(b), err, tn.DType, tn.Shape, len(tn.Data))
			}
		}
	})
}
