package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"io"
	"math"
	"sort"
)

// Tensor is a named tensor to write: little-endian bytes of DType elements in
// row-major order.
type Tensor struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the element type of Data.
	DType DType
	// Shape is the tensor's dimensions; empty for a scalar.
	Shape []int
	// Data holds product(Shape) elements of DType, little-endian.
	Data []byte
}

// Float32Tensor returns an F32 tensor holding data with the given shape.
func Float32Tensor(name string, shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int(nil), shape...), Data: b}
}

// Int8Tensor returns an I8 tensor holding data with the given shape.
func Int8Tensor(name string, shape []int, data []int8) Tensor {
	b := make([]byte, len(data))
	for i, v := range data {
		b[i] = byte(v)
	}
	return Tensor{Name: name, DType: I8, Shape: append([]int(nil), shape...), Data: b}
}

// Int32Tensor returns an I32 tensor holding data with the given shape.
func Int32Tensor(name string, shape []int, data []int32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return Tensor{Name: name, DType: I32, Shape: append([]int(nil), shape...), Data: b}
}

// Write writes tensors and optional metadata to w in safetensors format.
// Tensors are laid out in name order; names must be unique and each Data
// must hold exactly the bytes its DType and Shape describe.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := make(map[string]any, len(sorted)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for i, t := range sorted {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: duplicate tensor %q", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			// Checked so a huge shape cannot wrap around to the data's
			// length, as it did in the reader before FuzzOpen caught it.
			if d > 0 && n > math.MaxInt/d {
				return fmt.Errorf("safetensors: tensor %q: shape %v is too large", t.Name, t.Shape)
			}
			n *= d
		}
		if n > len(t.Data)/t.DType.Size() || len(t.Data) != n*t.DType.Size() {
			return fmt.Errorf("safetensors: tensor %q: %s shape %v needs %d bytes, got %d", t.Name, t.DType, t.Shape, n*t.DType.Size(), len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, Offsets: []int64{offset, offset + int64(len(t.Data))}}
		offset += int64(len(t.Data))
	}
	hdr, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: encode header: %w", err)
	}
	// Pad the header with spaces so the data section starts 8-byte aligned.
	for len(hdr)%8 != 0 {
		hdr = append(hdr, ' ')
	}
	var pre [8]byte
	binary.LittleEndian.PutUint64(pre[:], uint64(len(hdr)))
	if _, err := w.Write(pre[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, t := range sorted {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// WriteFile writes tensors to path atomically: it writes a temporary file in
// the same folder, syncs it and renames it over path once complete.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, tensors, metadata) })
}
