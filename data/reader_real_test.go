package data

import (
	"bytes"
	"image/png"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
)

// TestReadRealMNIST reads the real HF save_to_disk DatasetDict written by
// the Python datasets library.
func TestReadRealMNIST(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "mnist-hf")
	src, err := Open(dir, SourceOptions{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := src.NumRows(); got != 10000 {
		t.Errorf("NumRows = %d, want 10000", got)
	}
	if c := src.Columns(); c.Image != "image" || c.Label != "label" || c.Text != "" {
		t.Errorf("Columns = %+v", c)
	}
	want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if got := src.ClassNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ClassNames = %v", got)
	}
	sh := src.Shards()
	if len(sh) != 1 || sh[0].Rows != 10000 || len(sh[0].Chunks) != 10 || sh[0].Chunks[0] != 1000 {
		t.Errorf("Shards = %+v", sh)
	}
	// Rows across a batch boundary, read out of order.
	for _, r := range [][2]int{{995, 1005}, {0, 3}, {9998, 10000}} {
		exs, err := src.ReadRange(0, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(exs) != r[1]-r[0] {
			t.Fatalf("ReadRange%v returned %d rows", r, len(exs))
		}
		for i, ex := range exs {
			if ex.Row != r[0]+i || ex.Label < 0 || ex.Label > 9 {
				t.Errorf("row %d: %+v", r[0]+i, ex)
			}
			img, err := png.Decode(bytes.NewReader(ex.ImageBytes))
			if err != nil {
				t.Fatalf("row %d: %v", ex.Row, err)
			}
			if b := img.Bounds(); b.Dx() != 28 || b.Dy() != 28 {
				t.Errorf("row %d: image %v", ex.Row, b)
			}
		}
	}
	first, err := src.ReadRange(0, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if first[0].Label != 7 {
		t.Errorf("row 0 label = %d, want 7", first[0].Label)
	}
	if first[0].ID != "data-00000-of-00001.arrow:0" {
		t.Errorf("row 0 ID = %q", first[0].ID)
	}
}

// TestReadRealMNISTMissingTrainShard: the train split's shard is absent on
// purpose; the default split (train) must fail with a clear error.
func TestReadRealMNISTMissingTrainShard(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "mnist-hf")
	for _, split := range []string{"", "train"} {
		_, err := Open(dir, SourceOptions{Split: split})
		if err == nil {
			t.Fatalf("split %q: no error", split)
		}
		msg := err.Error()
		if !strings.Contains(msg, "data-00000-of-00001.arrow") || !strings.Contains(msg, "missing") || strings.Contains(msg, "\n") {
			t.Errorf("split %q: error %q", split, msg)
		}
	}
	_, err := Open(dir, SourceOptions{Split: "validation"})
	if err == nil || !strings.Contains(err.Error(), `split "validation" not found (splits: train, test)`) {
		t.Errorf("unknown split: %v", err)
	}
}

// TestReadRealParquetPathOnly reads an HF-hub Parquet export whose image
// structs have null bytes and absolute paths that do not exist.
func TestReadRealParquetPathOnly(t *testing.T) {
	file := testutil.SharedPath(t, "data", "real", "parquet-pathonly", "train-00000-of-00001.parquet")
	src, err := Open(file, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.NumRows() != 2389 || len(src.Shards()[0].Chunks) != 24 {
		t.Errorf("rows %d, shards %+v", src.NumRows(), src.Shards())
	}
	if c := src.Columns(); c.Image != "image" || c.Text != "" || c.Label != "" {
		t.Errorf("Columns = %+v", c)
	}
	exs, err := src.ReadRange(0, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		if ex.ImageBytes != nil || !filepath.IsAbs(ex.ImagePath) {
			t.Errorf("row %d: bytes %d, path %q", ex.Row, len(ex.ImageBytes), ex.ImagePath)
		}
		_, err := ex.ImageData()
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), ex.ImagePath) {
			t.Errorf("row %d: ImageData error %v", ex.Row, err)
		}
	}
	// With the problem column as text.
	src2, err := Open(file, SourceOptions{TextColumn: "problem"})
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	exs, err = src2.ReadRange(0, 2380, 2389)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 9 || exs[0].Caption == "" {
		t.Errorf("got %d rows, caption %q", len(exs), exs[0].Caption)
	}
	_, err = Open(file, SourceOptions{TextColumn: "caption"})
	if err == nil || !strings.Contains(err.Error(), `text_column "caption" not found; available columns: image (struct<bytes: binary, path: utf8>), image_path (utf8), problem (utf8), solution (utf8)`) {
		t.Errorf("missing column error: %v", err)
	}
}
