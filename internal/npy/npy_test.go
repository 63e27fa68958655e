package npy

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

func TestRoundTrip(t *testing.T) {
	cases := []Array{
		{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Shape: []int{4}, Data: []int64{-1, 0, 1, 1 << 40}},
		{Shape: []int{2, 1}, Data: []int32{7, -7}},
		{Shape: []int{}, Data: []float64{3.5}},
		{Shape: []int{3}, Data: []int8{-8, 0, 7}},
		{Shape: []int{2}, Data: []bool{true, false}},
		{Shape: []int{0, 5}, Data: []float32{}},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		if err := Write(&buf, c); err != nil {
			t.Fatalf("write %v: %v", c.Shape, err)
		}
		if buf.Len() < 64 || (buf.Len()-c.Size()) <= 0 {
			t.Fatalf("suspicious size %d", buf.Len())
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("read %v: %v", c.Shape, err)
		}
		if !reflect.DeepEqual(got.Shape, c.Shape) || !reflect.DeepEqual(got.Data, c.Data) {
			t.Errorf("round trip: got %v %v, want %v %v", got.Shape, got.Data, c.Shape, c.Data)
		}
	}
}

func TestReadErrors(t *testing.T) {
	var good bytes.Buffer
	if err := Write(&good, Array{Shape: []int{4}, Data: []float32{1, 2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated preamble"},
		{"magic", []byte("PK\x03\x04xxxxxxxx"), "bad magic"},
		{"truncated data", g[:len(g)-3], "truncated data"},
		{"fortran", bytes.Replace(g, []byte("'fortran_order': False"), []byte("'fortran_order': True "), 1), "fortran"},
		{"dtype", bytes.Replace(g, []byte("<f4"), []byte("<c8"), 1), "unsupported dtype"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestWriteFileAtomicAndGolden(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.npy")
	if err := WriteFile(p, Array{Shape: []int{2}, Data: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	golden := testutil.SharedPath(t, "golden", "clip-tiny", "input_ids.npy")
	a, err := ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Shape, []int{4, 16}) {
		t.Fatalf("input_ids shape %v, want [4 16]", a.Shape)
	}
	if _, err := a.Int32(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReadFloat32 reads a 16 MB float32 array (4M values) from memory.
func BenchmarkReadFloat32(b *testing.B) {
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{4 << 20}, Data: make([]float32, 4<<20)}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := Read(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFloat32Stream is BenchmarkReadFloat32 from a reader that
// does not tell its length, so Read grows its buffer as data arrives.
func BenchmarkReadFloat32Stream(b *testing.B) {
	var buf bytes.Buffer
	if err := Write(&buf, Array{Shape: []int{4 << 20}, Data: make([]float32, 4<<20)}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := Read(struct{ io.Reader }{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
	}
}
