package data

import (
	"io"
	"math"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

// TestLoaderRealMNIST loads batches from the real HF save_to_disk MNIST
// test split.
func TestLoaderRealMNIST(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "mnist-hf")
	src, err := Open(dir, SourceOptions{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pc := DefaultPreprocessConfig()
	pc.Size = 32
	l, err := NewLoader(src, LoaderConfig{BatchSize: 64, Preprocess: pc, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Fields() != FieldPixels|FieldLabels || l.StepsPerEpoch() != 157 {
		t.Fatalf("fields %v, %d steps; want pixels+labels, 157", l.Fields(), l.StepsPerEpoch())
	}
	it, err := l.Epoch(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for step := 0; step < 3; step++ {
		b, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 && (b.IDs[0] != "data-00000-of-00001.arrow:0" || b.Labels[0] != 7) {
			t.Errorf("first example %s label %d, want row 0, a 7", b.IDs[0], b.Labels[0])
		}
		for _, v := range b.Pixels {
			if math.IsNaN(float64(v)) || v < -2 || v > 2.2 {
				t.Fatalf("pixel value %v out of CLIP's normalised range", v)
			}
		}
		for _, lab := range b.Labels {
			if lab < 0 || lab > 9 {
				t.Fatalf("label %d", lab)
			}
		}
		b.Release()
	}
}

// TestLoaderRealParquetPathOnly: every image of the HF-hub Parquet export
// has null bytes and a dangling path, so skip mode finds no usable example
// and fail mode names the first one.
func TestLoaderRealParquetPathOnly(t *testing.T) {
	file := testutil.SharedPath(t, "data", "real", "parquet-pathonly", "train-00000-of-00001.parquet")
	src, err := Open(file, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pc := DefaultPreprocessConfig()
	pc.Size = 32
	for _, tc := range []struct {
		mode BadRecordMode
		want []string
	}{
		{BadRecordSkip, []string{"no usable example left"}},
		{BadRecordFail, []string{"bad record", "train-00000-of-00001.parquet row", "does not exist", "on-bad-record is fail"}},
	} {
		l, err := NewLoader(src, LoaderConfig{BatchSize: 16, Preprocess: pc, Workers: 2, OnBadRecord: tc.mode, Shuffle: true})
		if err != nil {
			t.Fatal(err)
		}
		it, err := l.Epoch(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = it.Next()
		if err == nil || err == io.EOF {
			t.Fatalf("%v: Next gave %v, want an error", tc.mode, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", tc.mode, err, w)
			}
		}
		it.Close()
		l.Close()
	}
}
