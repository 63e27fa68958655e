package data

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/qatclip/qatclip/internal/testutil"
)

// benchRows is the size of the benchmark datasets.
const benchRows = 2000

// benchDataset writes benchRows rows of a 512x512 JPEG (about 20 KB) with
// captions and labels as an HF stream shard (1000-row batches) and as a
// Parquet file with 100-row row groups (as HF hub exports of image
// datasets), returning both paths and the bytes per image.
func benchDataset(b *testing.B) (stream, pq string, imgBytes int) {
	b.Helper()
	spec := SynthSpec{Shape: "star", Color: "red", Background: "striped", CX: 256, CY: 256, Radius: 150, Period: 40, Dir: 0.5}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, RenderSynth(spec, 512), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	w, err := CreateDataset(filepath.Join(dir, "hf"), WriterOptions{Captions: true, ClassNames: SynthShapeNames()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < benchRows; i++ {
		ex := Example{ImageBytes: jb.Bytes(), ImagePath: fmt.Sprintf("%d.jpg", i), Caption: "a red star on a striped background", Label: i % 5}
		if err := w.Write(ex); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	stream = filepath.Join(dir, "hf", "data-00000-of-00001.arrow")

	// The same rows as Parquet.
	src, err := Open(stream, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	pq = filepath.Join(dir, "train.parquet")
	f, err := os.Create(pq)
	if err != nil {
		b.Fatal(err)
	}
	pw, err := pqarrow.NewFileWriter(src.Schema(), f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(100)), pqarrow.DefaultWriterProps())
	if err != nil {
		b.Fatal(err)
	}
	sf, _ := os.Open(stream)
	r, err := ipc.NewReader(sf)
	if err != nil {
		b.Fatal(err)
	}
	for r.Next() {
		if err := pw.WriteBuffered(r.Record()); err != nil {
			b.Fatal(err)
		}
	}
	r.Release()
	sf.Close()
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	return stream, pq, jb.Len()
}

// benchReadAll reads every row of path through Source.ReadRange in
// windows of 256 rows, as a loader's shuffle buffer would.
func benchReadAll(b *testing.B, path string, imgBytes int) {
	src, err := Open(path, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.SetBytes(int64(benchRows * imgBytes))
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		n := 0
		for row := 0; row < benchRows; row += 256 {
			exs, err := src.ReadRange(0, row, min(benchRows, row+256))
			if err != nil {
				b.Fatal(err)
			}
			n += len(exs)
		}
		if n != benchRows {
			b.Fatalf("read %d rows", n)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadStreamShard: Examples from an HF save_to_disk stream shard.
func BenchmarkReadStreamShard(b *testing.B) {
	stream, _, n := benchDataset(b)
	benchReadAll(b, stream, n)
}

// BenchmarkReadParquet: Examples from a Parquet file of 100-row groups.
func BenchmarkReadParquet(b *testing.B) {
	_, pq, n := benchDataset(b)
	benchReadAll(b, pq, n)
}

// BenchmarkStockIPCStreamReader is the baseline: Arrow's sequential stream
// reader decoding every record batch of the same shard, without building
// Examples.
func BenchmarkStockIPCStreamReader(b *testing.B) {
	stream, _, n := benchDataset(b)
	b.SetBytes(int64(benchRows * n))
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		f, err := os.Open(stream)
		if err != nil {
			b.Fatal(err)
		}
		r, err := ipc.NewReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			b.Fatal(err)
		}
		rows := 0
		for r.Next() {
			img := r.Record().Column(0).(*array.Struct).Field(0).(*array.Binary)
			for i := 0; i < img.Len(); i++ {
				rows += min(1, len(img.Value(i)))
			}
		}
		r.Release()
		f.Close()
		if rows != benchRows {
			b.Fatalf("read %d rows", rows)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRandomRowStreamShard reads single rows in a strided order that
// changes record batch every read, the worst case for the batch cache.
func BenchmarkRandomRowStreamShard(b *testing.B) {
	stream, _, _ := benchDataset(b)
	src, err := Open(stream, SourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		row := (it * 1009) % benchRows
		if _, err := src.ReadRange(0, row, row+1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkOpenIndexStreamShard measures opening a shard: mapping it and
// indexing its record batches from the message headers.
func BenchmarkOpenIndexStreamShard(b *testing.B) {
	stream, _, _ := benchDataset(b)
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		src, err := Open(stream, SourceOptions{})
		if err != nil {
			b.Fatal(err)
		}
		src.Close()
	}
}

// BenchmarkSynthShapes generates the 64-pixel shapes DatasetDict with
// n=200 (300 images in all).
func BenchmarkSynthShapes(b *testing.B) {
	dir := b.TempDir()
	for it := 0; it < b.N; it++ {
		out := filepath.Join(dir, fmt.Sprint(it))
		if _, err := SynthShapesDataset(out, SynthOptions{N: 200, Size: 64, Seed: 1}); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(out)
	}
	b.ReportMetric(float64(300*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkReadRealMNIST reads the 10,000 rows of the real HF MNIST test
// shard (PNG bytes of about 275 bytes each) in 1000-row windows.
func BenchmarkReadRealMNIST(b *testing.B) {
	dir := testutil.SharedPath(b, "data", "real", "mnist-hf")
	src, err := Open(dir, SourceOptions{Split: "test"})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for row := 0; row < src.NumRows(); row += 1000 {
			if _, err := src.ReadRange(0, row, row+1000); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(src.NumRows()*b.N)/b.Elapsed().Seconds(), "rows/s")
}
