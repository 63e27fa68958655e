package data

import (
	"bytes"
	"flag"
	"fmt"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

var updateDatasetFixtures = flag.Bool("update-datasets", false, "regenerate the committed fixtures in testdata/datasets")

const datasetFixtureDir = "testdata/datasets"

// fixtureImage returns small deterministic PNG (even i) or JPEG (odd i)
// bytes.
func fixtureImage(t testing.TB, i int) []byte {
	t.Helper()
	names := SynthShapeNames()
	spec := SynthSpec{Shape: names[i%len(names)], Color: "blue", Background: "striped", CX: 8, CY: 8, Radius: 5, Period: 3, Dir: 0.3}
	img := RenderSynth(spec, 16)
	var b bytes.Buffer
	var err error
	if i%2 == 0 {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// img2datasetRow is one row of the img2dataset fixture.
type img2datasetRow struct {
	key, caption, status string
	jpg                  []byte
}

func img2datasetRows(t testing.TB) []img2datasetRow {
	rows := make([]img2datasetRow, 6)
	for i := range rows {
		rows[i] = img2datasetRow{key: fmt.Sprintf("%09d", i), caption: fmt.Sprintf("caption number %d", i), status: "success", jpg: fixtureImage(t, 2*i+1)}
	}
	rows[2].status, rows[2].jpg = "failed_to_download", nil
	rows[4].jpg = []byte("this is not an image") // a bad record the loader must skip
	return rows
}

// writeImg2datasetParquet writes rows like img2dataset's parquet output:
// key, caption, jpg, status, error_message, width, height; 2 row groups.
func writeImg2datasetParquet(t testing.TB, path string) {
	rows := img2datasetRows(t)
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "key", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "caption", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "jpg", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "status", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "error_message", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "width", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "height", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.StringBuilder).Append(r.key)
		b.Field(1).(*array.StringBuilder).Append(r.caption)
		if r.jpg == nil {
			b.Field(2).(*array.BinaryBuilder).AppendNull()
			b.Field(4).(*array.StringBuilder).Append("HTTP 404")
			b.Field(5).(*array.Int32Builder).AppendNull()
			b.Field(6).(*array.Int32Builder).AppendNull()
		} else {
			b.Field(2).(*array.BinaryBuilder).Append(r.jpg)
			b.Field(4).(*array.StringBuilder).AppendNull()
			b.Field(5).(*array.Int32Builder).Append(16)
			b.Field(6).(*array.Int32Builder).Append(16)
		}
		b.Field(3).(*array.StringBuilder).Append(r.status)
	}
	rec := b.NewRecord()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pqarrow.NewFileWriter(sch, f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(3)), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeFeatherFixture writes the synthetic rows of a DatasetWriter schema
// as an Arrow IPC file (random-access format) with two record batches.
func writeFeatherFixture(t testing.TB, path string, wopts ...ipc.Option) []Example {
	var exs []Example
	for i := 0; i < 5; i++ {
		exs = append(exs, Example{ImageBytes: fixtureImage(t, i), ImagePath: fmt.Sprintf("img%d.png", i), Caption: fmt.Sprintf("a blue %s on a striped background", SynthShapeNames()[i%5]), Label: i % 5})
	}
	if path == "" {
		return exs
	}
	sch, _ := hfSchema(WriterOptions{Captions: true, ClassNames: SynthShapeNames()})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, append([]ipc.Option{ipc.WithSchema(sch)}, wopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]Example{exs[:3], exs[3:]} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
		for _, ex := range part {
			img := b.Field(0).(*array.StructBuilder)
			img.Append(true)
			img.FieldBuilder(0).(*array.BinaryBuilder).Append(ex.ImageBytes)
			img.FieldBuilder(1).(*array.StringBuilder).Append(ex.ImagePath)
			b.Field(1).(*array.StringBuilder).Append(ex.Caption)
			b.Field(2).(*array.Int64Builder).Append(int64(ex.Label))
		}
		rec := b.NewRecord()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return exs
}

// TestGenerateFixtures rewrites the committed fixtures with -update-datasets.
func TestGenerateFixtures(t *testing.T) {
	if !*updateDatasetFixtures {
		t.Skip("run with -update-datasets to regenerate testdata/datasets")
	}
	if err := os.MkdirAll(datasetFixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeImg2datasetParquet(t, filepath.Join(datasetFixtureDir, "img2dataset-tiny.parquet"))
	writeFeatherFixture(t, filepath.Join(datasetFixtureDir, "shapes-tiny.feather"))
}

func TestReadImg2datasetParquet(t *testing.T) {
	src, err := Open(filepath.Join(datasetFixtureDir, "img2dataset-tiny.parquet"), SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := Columns{Image: "jpg", Text: "caption", ID: "key", Status: "status"}
	if src.Columns() != want {
		t.Errorf("Columns = %+v, want %+v", src.Columns(), want)
	}
	if sh := src.Shards(); src.NumRows() != 6 || len(sh[0].Chunks) != 2 {
		t.Errorf("rows %d, shards %+v", src.NumRows(), sh)
	}
	rows := img2datasetRows(t)
	// Read in several windows, backwards too, to exercise the cursor.
	for _, r := range [][2]int{{0, 6}, {4, 6}, {1, 4}, {0, 1}, {3, 3}} {
		exs, err := src.ReadRange(0, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		var wantRows []int
		for i := r[0]; i < r[1]; i++ {
			if rows[i].status == "success" {
				wantRows = append(wantRows, i)
			}
		}
		if len(exs) != len(wantRows) {
			t.Fatalf("ReadRange%v: %d examples, want %d", r, len(exs), len(wantRows))
		}
		for j, ex := range exs {
			w := rows[wantRows[j]]
			if ex.Row != wantRows[j] || ex.ID != w.key || ex.Caption != w.caption || !bytes.Equal(ex.ImageBytes, w.jpg) || ex.Label != -1 {
				t.Errorf("ReadRange%v[%d] = row %d id %q caption %q", r, j, ex.Row, ex.ID, ex.Caption)
			}
		}
	}
	st, err := src.Stats(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 6 || st.Failed != 1 || st.WithBytes != 5 || st.Formats["jpeg"] != 4 || st.Formats["unknown"] != 1 || st.Captions != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestReadFeatherFile(t *testing.T) {
	tmp := t.TempDir()
	for _, path := range []string{
		filepath.Join(datasetFixtureDir, "shapes-tiny.feather"),
		// pyarrow's write_feather compresses with LZ4 by default.
		filepath.Join(tmp, "lz4.feather"),
		filepath.Join(tmp, "zstd.arrow"),
	} {
		switch filepath.Base(path) {
		case "lz4.feather":
			writeFeatherFixture(t, path, ipc.WithLZ4())
		case "zstd.arrow":
			writeFeatherFixture(t, path, ipc.WithZstd())
		}
		t.Run(filepath.Base(path), func(t *testing.T) { testReadFeather(t, path) })
	}
}

func testReadFeather(t *testing.T, path string) {
	src, err := Open(path, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := writeFeatherFixture(t, "")
	if src.NumRows() != 5 || len(src.Shards()[0].Chunks) != 2 || strings.Join(src.ClassNames(), ",") != strings.Join(SynthShapeNames(), ",") {
		t.Fatalf("rows %d, shards %+v, classes %v", src.NumRows(), src.Shards(), src.ClassNames())
	}
	got, err := src.ReadRange(0, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range got {
		w := want[i]
		if !bytes.Equal(ex.ImageBytes, w.ImageBytes) || ex.ImagePath != w.ImagePath || ex.Caption != w.Caption || ex.Label != w.Label {
			t.Errorf("row %d: got %q %q %d", i, ex.ImagePath, ex.Caption, ex.Label)
		}
	}
}

// TestOpenFolderAndGlob reads the fixtures through a folder and a glob.
func TestOpenFolderAndGlob(t *testing.T) {
	for _, p := range []string{datasetFixtureDir, filepath.Join(datasetFixtureDir, "*")} {
		src, err := Open(p, SourceOptions{ImageColumn: "image"})
		if err == nil {
			src.Close()
			t.Errorf("%s: shards with different columns opened without error", p)
		} else if !strings.Contains(err.Error(), `column "image"`) && !strings.Contains(err.Error(), `image_column "image" not found`) {
			t.Errorf("%s: %v", p, err)
		}
	}
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		writeFeatherFixture(t, filepath.Join(dir, fmt.Sprintf("part-%d.feather", i)))
	}
	for _, p := range []string{dir, filepath.Join(dir, "part-*.feather")} {
		src, err := Open(p, SourceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if src.NumRows() != 10 || len(src.Shards()) != 2 {
			t.Errorf("%s: %d rows in %d shards", p, src.NumRows(), len(src.Shards()))
		}
		exs, err := src.ReadRange(1, 2, 5)
		if err != nil || len(exs) != 3 || exs[0].Shard != 1 || exs[0].Row != 2 {
			t.Errorf("%s: ReadRange(1, 2, 5) = %d examples, %v", p, len(exs), err)
		}
		src.Close()
	}
	if _, err := Open(filepath.Join(dir, "nothing-*.arrow"), SourceOptions{}); err == nil || !strings.Contains(err.Error(), "matches no") {
		t.Errorf("empty glob: %v", err)
	}
}

// writeShapes writes a small synthetic DatasetDict and returns its train
// shard path.
func writeShapes(t *testing.T, n int) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shapes")
	if _, err := SynthShapesDataset(dir, SynthOptions{N: n, Size: 16, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "train", "data-00000-of-00001.arrow")
}

// TestBadInput: each bad input gives a one-line error naming the file.
func TestBadInput(t *testing.T) {
	dir, shard := writeShapes(t, 2500)
	full, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	put := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A stream with a schema and no batches.
	var empty bytes.Buffer
	w := ipc.NewWriter(&empty, ipc.WithSchema(arrow.NewSchema([]arrow.Field{{Name: "image", Type: hfImageType(), Nullable: true}}, nil)))
	w.Close()
	strOnly := filepath.Join(tmp, "strings.parquet")
	{
		sch := arrow.NewSchema([]arrow.Field{{Name: "text", Type: arrow.BinaryTypes.String}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
		b.Field(0).(*array.StringBuilder).Append("hello")
		rec := b.NewRecord()
		f, _ := os.Create(strOnly)
		pw, _ := pqarrow.NewFileWriter(sch, f, nil, pqarrow.DefaultWriterProps())
		pw.Write(rec)
		pw.Close()
		f.Close()
	}
	tests := []struct {
		name string
		path string
		opts SourceOptions
		want string
	}{
		{"truncated shard", put("trunc.arrow", full[:len(full)*6/10]), SourceOptions{}, "truncated"},
		{"truncated header", put("trunc2.arrow", full[:6]), SourceOptions{}, "truncated"},
		{"not arrow", put("junk.arrow", []byte("this is certainly not an arrow stream at all")), SourceOptions{}, "junk.arrow"},
		{"empty file", put("zero.arrow", nil), SourceOptions{}, "empty"},
		{"empty dataset", put("empty.arrow", empty.Bytes()), SourceOptions{}, "dataset is empty"},
		{"bad parquet", put("bad.parquet", []byte("PAR1 and then nothing")), SourceOptions{}, "not a readable Parquet file"},
		{"missing image column", dir, SourceOptions{ImageColumn: "picture"}, `image_column "picture" not found; available columns: image (struct<bytes: binary, path: utf8>), caption (utf8), label (int64)`},
		{"missing text column", dir, SourceOptions{TextColumn: "sentence"}, `text_column "sentence" not found`},
		{"wrong column type", dir, SourceOptions{LabelColumn: "image"}, `label_column "image" has type`},
		{"no image column", strOnly, SourceOptions{}, "no image column found"},
		{"missing path", filepath.Join(tmp, "nope"), SourceOptions{}, "no such file"},
		{"unknown split", dir, SourceOptions{Split: "val"}, `split "val" not found (splits: train, test, ood)`},
	}
	for _, tc := range tests {
		src, err := Open(tc.path, tc.opts)
		if err == nil {
			src.Close()
			t.Errorf("%s: no error", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q, want one line containing %q", tc.name, msg, tc.want)
		}
	}
	// A shard whose end-of-stream marker is cut off is still complete.
	src, err := Open(put("noeos.arrow", full[:len(full)-8]), SourceOptions{})
	if err != nil {
		t.Fatalf("shard without EOS: %v", err)
	}
	if src.NumRows() != 2500 {
		t.Errorf("shard without EOS: %d rows", src.NumRows())
	}
	if _, err := src.ReadRange(0, 2400, 2600); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("ReadRange past the end: %v", err)
	}
	src.Close()
	if _, err := src.ReadRange(0, 0, 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("ReadRange after Close: %v", err)
	}
}

// TestConcurrentReads reads shards from several goroutines at once; run
// with -race.
func TestConcurrentReads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	w, err := CreateDataset(dir, WriterOptions{Captions: true, BatchRows: 7, MaxShardBytes: 4000})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 120
	for i := 0; i < rows; i++ {
		if err := w.Write(Example{ImageBytes: []byte(fmt.Sprintf("img-%03d-%s", i, strings.Repeat("x", 50))), Caption: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Image bytes are not images: the reader does not care, decoding is
	// the loader's job.
	src, err := Open(dir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	shards := src.Shards()
	if len(shards) < 2 {
		t.Fatalf("want several shards, got %d", len(shards))
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for k := 0; k < 20; k++ {
				si := (g + k) % len(shards)
				start := (g*3 + k) % shards[si].Rows
				exs, err := src.ReadRange(si, start, min(shards[si].Rows, start+5))
				if err != nil {
					errs <- err
					return
				}
				for _, ex := range exs {
					if want := "img-" + fmt.Sprintf("%03d", ex.Row+rowBase(shards, si)); !strings.HasPrefix(string(ex.ImageBytes), want) || ex.Caption != fmt.Sprint(ex.Row+rowBase(shards, si)) {
						errs <- fmt.Errorf("shard %d row %d: caption %q with image %q", si, ex.Row, ex.Caption, ex.ImageBytes[:7])
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// rowBase returns the global row of shard si's first row.
func rowBase(shards []ShardInfo, si int) int {
	n := 0
	for _, s := range shards[:si] {
		n += s.Rows
	}
	return n
}

// TestPathOnlyImages: null image bytes with a relative path resolve
// against the dataset folder; absolute paths are kept.
func TestPathOnlyImages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ds")
	w, err := CreateDataset(dir, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img := fixtureImage(t, 0)
	abs := filepath.Join(t.TempDir(), "abs.png")
	os.WriteFile(abs, img, 0o644)
	for _, p := range []string{"imgs/rel.png", abs, "imgs/gone.png"} {
		if err := w.Write(Example{ImagePath: p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "imgs"), 0o755)
	os.WriteFile(filepath.Join(dir, "imgs", "rel.png"), img, 0o644)
	src, err := Open(dir, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exs, err := src.ReadRange(0, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, ex := range exs[:2] {
		b, err := ex.ImageData()
		if err != nil || !bytes.Equal(b, img) {
			t.Errorf("row %d (%s): %v", i, ex.ImagePath, err)
		}
	}
	if exs[0].ImagePath != filepath.Join(dir, "imgs", "rel.png") || exs[1].ImagePath != abs {
		t.Errorf("paths %q %q", exs[0].ImagePath, exs[1].ImagePath)
	}
	if _, err := exs[2].ImageData(); err == nil || !strings.Contains(err.Error(), "gone.png does not exist") {
		t.Errorf("dangling path: %v", err)
	}
}
