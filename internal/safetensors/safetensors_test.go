package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawFile writes a safetensors file made of the given header JSON and data.
func rawFile(t *testing.T, header string, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenRejectsBadFiles(t *testing.T) {
	data16 := make([]byte, 16)
	for _, c := range []struct {
		name   string
		path   func(t *testing.T) string
		errHas []string
	}{
		{"empty file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "x.safetensors")
			os.WriteFile(p, []byte{1, 2, 3}, 0o644)
			return p
		}, []string{"truncated header", "3 bytes"}},
		{"header past end", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "x.safetensors")
			os.WriteFile(p, []byte{0xff, 0, 0, 0, 0, 0, 0, 0, '{', '}'}, 0o644)
			return p
		}, []string{"truncated header", "header length 255"}},
		{"not json", func(t *testing.T) string { return rawFile(t, "{nope", nil) }, []string{"not a JSON object"}},
		{"unknown dtype", func(t *testing.T) string {
			return rawFile(t, `{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}`, data16)
		}, []string{`"w"`, "unknown dtype", "F8_E4M3"}},
		{"offsets past end", func(t *testing.T) string {
			return rawFile(t, `{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`, data16)
		}, []string{`"w"`, "past the end"}},
		{"wrong byte count", func(t *testing.T) string {
			return rawFile(t, `{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}`, data16)
		}, []string{`"w"`, "needs 12 bytes", "hold 16"}},
		{"overlap", func(t *testing.T) string {
			return rawFile(t, `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, data16)
		}, []string{`"a"`, `"b"`, "overlap"}},
		{"reversed offsets", func(t *testing.T) string {
			return rawFile(t, `{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, data16)
		}, []string{`"a"`, "bad data_offsets"}},
		{"negative dim", func(t *testing.T) string {
			return rawFile(t, `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, data16)
		}, []string{`"a"`, "negative"}},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.safetensors") }, []string{"none.safetensors", "no such file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.path(t)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(c.errHas, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	w := []float32{1, -2.5, 3e-8, float32(math.Inf(1)), 0, 7}
	tensors := []Tensor{
		Float32Tensor("z.weight", []int{2, 3}, w),
		Int8Tensor("a.q", []int{4}, []int8{-128, -1, 0, 127}),
		Float32Tensor("scalar", nil, []float32{2.6592}),
		Int32Tensor("ids", []int{2}, []int32{-7, 49407}),
	}
	if err := WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Names(); !slices.Equal(got, []string{"a.q", "ids", "scalar", "z.weight"}) {
		t.Errorf("names %v", got)
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	got, shape, err := f.Float32("z.weight")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, w) || !slices.Equal(shape, []int{2, 3}) {
		t.Errorf("z.weight = %v %v", got, shape)
	}
	if s, _, _ := f.Float32("scalar"); len(s) != 1 || s[0] != 2.6592 {
		t.Errorf("scalar = %v", s)
	}
	if info, _ := f.Info("scalar"); len(info.Shape) != 0 {
		t.Errorf("scalar shape %v", info.Shape)
	}
	b, err := f.Bytes("a.q")
	if err != nil || !bytes.Equal(b, []byte{0x80, 0xff, 0, 0x7f}) {
		t.Errorf("a.q bytes %v %v", b, err)
	}
	if _, _, err := f.Float32("a.q"); err == nil || !strings.Contains(err.Error(), "I8") {
		t.Errorf("Float32 of an I8 tensor: %v", err)
	}
	if _, _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	// The data section starts 8-byte aligned.
	raw, _ := os.ReadFile(path)
	if hl := binary.LittleEndian.Uint64(raw); hl%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", hl)
	}
}

func TestWriteRejects(t *testing.T) {
	for _, c := range []struct {
		name    string
		tensors []Tensor
		errHas  string
	}{
		{"duplicate", []Tensor{Float32Tensor("a", []int{1}, []float32{1}), Float32Tensor("a", []int{1}, []float32{2})}, "duplicate"},
		{"bad size", []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, "needs 8 bytes"},
		{"unknown dtype", []Tensor{{Name: "a", DType: "X", Shape: []int{1}, Data: make([]byte, 4)}}, "unknown dtype"},
		{"empty name", []Tensor{Float32Tensor("", []int{1}, []float32{1})}, "invalid tensor name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Write(&b, c.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("error %v, want one containing %q", err, c.errHas)
			}
		})
	}
}

func TestDecodeFloat32(t *testing.T) {
	le16 := func(v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], x)
		}
		return b
	}
	for _, c := range []struct {
		name  string
		dtype DType
		data  []byte
		want  []float32
	}{
		// F16: 1, -2, 65504 (max), smallest subnormal 2^-24, 0.333251953125, -0.
		{"f16", F16, le16(0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8000), []float32{1, -2, 65504, 1.0 / (1 << 24), 0.333251953125, float32(math.Copysign(0, -1))}},
		{"f16 inf", F16, le16(0x7c00, 0xfc00), []float32{float32(math.Inf(1)), float32(math.Inf(-1))}},
		// BF16: upper halves of float32 bit patterns.
		{"bf16", BF16, le16(0x3f80, 0xc040, 0x3eab), []float32{1, -3, math.Float32frombits(0x3eab0000)}},
		{"f64", F64, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1)), []float32{0.1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeFloat32(c.dtype, c.data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.want {
				if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
					t.Errorf("[%d] = %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
	if h := HalfToFloat32(0x7e00); !math.IsNaN(float64(h)) {
		t.Errorf("f16 NaN decoded as %v", h)
	}
}

// BenchmarkDecodeFloat32 measures converting 1M stored values to float32.
func BenchmarkDecodeFloat32(b *testing.B) {
	for _, dt := range []DType{F32, BF16, F16} {
		data := make([]byte, (1<<20)*dt.Size())
		for i := range data {
			data[i] = byte(i * 31)
		}
		b.Run(string(dt), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DecodeFloat32(dt, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
