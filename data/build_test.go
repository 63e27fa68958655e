package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// makeImageFolder writes class folders of fixture images plus a non-image
// file and a hidden file, and returns the expected rows in build order.
func makeImageFolder(t *testing.T, dir string) []Example {
	t.Helper()
	var want []Example
	n := 0
	for label, class := range []string{"cat", "dog", "zebra"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 3+label; j++ {
			b := fixtureImage(t, n)
			ext := ".png"
			if n%2 == 1 {
				ext = ".jpg"
			}
			name := fmt.Sprintf("%s%02d%s", class, j, ext)
			if err := os.WriteFile(filepath.Join(dir, class, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			want = append(want, Example{ImageBytes: b, ImagePath: name, Label: label})
			n++
		}
	}
	os.WriteFile(filepath.Join(dir, "dog", "notes.txt"), []byte("not an image"), 0o644)
	os.WriteFile(filepath.Join(dir, "dog", ".DS_Store"), []byte("hidden"), 0o644)
	return want
}

// TestBuildImageFolderRoundTrip builds a dataset from class folders across
// several shards and reads back identical bytes and labels.
func TestBuildImageFolderRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "images")
	want := makeImageFolder(t, imgs)
	out := filepath.Join(tmp, "out")
	rep, err := BuildFromImageFolder(imgs, out, BuildOptions{Writer: WriterOptions{BatchRows: 2, MaxShardBytes: 1500}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != len(want) || rep.Skipped != 1 || !strings.Contains(rep.SkippedFiles[0], "notes.txt: not a JPEG") {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Shards) < 3 {
		t.Errorf("want several shards with a 1500-byte limit, got %v", rep.Shards)
	}
	for i, s := range rep.Shards {
		if s != fmt.Sprintf("data-%05d-of-%05d.arrow", i, len(rep.Shards)) {
			t.Errorf("shard name %s", s)
		}
	}
	src, err := Open(out, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if !slices.Equal(src.ClassNames(), []string{"cat", "dog", "zebra"}) || src.Columns().Text != "" {
		t.Errorf("classes %v, columns %+v", src.ClassNames(), src.Columns())
	}
	var got []Example
	for i, sh := range src.Shards() {
		exs, err := src.ReadRange(i, 0, sh.Rows)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, exs...)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].ImageBytes, want[i].ImageBytes) || got[i].Label != want[i].Label || got[i].ImagePath != want[i].ImagePath {
			t.Errorf("row %d: got %s label %d, want %s label %d", i, got[i].ImagePath, got[i].Label, want[i].ImagePath, want[i].Label)
		}
	}
	// The output folder is not overwritten.
	if _, err := BuildFromImageFolder(imgs, out, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second build into the same folder: %v", err)
	}
	// FailOnBad turns the skip into an error naming the file.
	if _, err := BuildFromImageFolder(imgs, filepath.Join(tmp, "strict"), BuildOptions{FailOnBad: true}); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Errorf("FailOnBad: %v", err)
	}
}

// TestBuildCaptionsRoundTrip builds from TSV, CSV (with and without a
// header, either column order) and JSONL caption files.
func TestBuildCaptionsRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "imgs")
	os.MkdirAll(imgs, 0o755)
	captions := []string{"a blue circle, small", "a \"quoted\" square", "tab-free triangle", "étoile ✨"}
	var images [][]byte
	for i := range captions {
		b := fixtureImage(t, i)
		images = append(images, b)
		os.WriteFile(filepath.Join(imgs, fmt.Sprintf("%d.img", i)), b, 0o644)
	}
	lines := func(f func(i int) string) string {
		var sb strings.Builder
		for i := range captions {
			sb.WriteString(f(i) + "\n")
		}
		return sb.String()
	}
	csvq := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	tests := []struct {
		name, file, text string
		labels           bool
	}{
		{"tsv header", "c.tsv", "filepath\tcaption\n" + lines(func(i int) string { return fmt.Sprintf("imgs/%d.img\t%s", i, csvq(captions[i])) }), false},
		{"csv no header", "c.csv", lines(func(i int) string { return fmt.Sprintf("imgs/%d.img,%s", i, csvq(captions[i])) }), false},
		{"csv swapped", "s.csv", lines(func(i int) string { return fmt.Sprintf("%s,imgs/%d.img", csvq(captions[i]), i) }), false},
		{"csv labels", "l.csv", "caption,image,label\n" + lines(func(i int) string {
			return fmt.Sprintf("%s,imgs/%d.img,%s", csvq(captions[i]), i, []string{"b", "a"}[i%2])
		}), true},
		{"jsonl", "c.jsonl", lines(func(i int) string { return fmt.Sprintf(`{"file_name": "imgs/%d.img", "text": %q}`, i, captions[i]) }), false},
	}
	for _, tc := range tests {
		file := filepath.Join(tmp, tc.file)
		os.WriteFile(file, []byte(tc.text), 0o644)
		out := filepath.Join(tmp, "out-"+strings.ReplaceAll(tc.name, " ", "-"))
		rep, err := BuildFromCaptions(file, out, BuildOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		src, err := Open(out, SourceOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		exs, err := src.ReadRange(0, 0, src.NumRows())
		src.Close()
		if err != nil || len(exs) != len(captions) || rep.Skipped != 0 {
			t.Fatalf("%s: %d rows, skipped %d, %v", tc.name, len(exs), rep.Skipped, err)
		}
		for i, ex := range exs {
			wantLabel := -1
			if tc.labels {
				wantLabel = []int{1, 0}[i%2] // classes sorted: a, b
			}
			if ex.Caption != captions[i] || !bytes.Equal(ex.ImageBytes, images[i]) || ex.Label != wantLabel {
				t.Errorf("%s row %d: caption %q label %d", tc.name, i, ex.Caption, ex.Label)
			}
		}
	}
	// A missing image is skipped and reported.
	bad := filepath.Join(tmp, "bad.tsv")
	os.WriteFile(bad, []byte("imgs/0.img\tok\nimgs/missing.png\tgone\n"), 0o644)
	rep, err := BuildFromCaptions(bad, filepath.Join(tmp, "out-bad"), BuildOptions{})
	if err != nil || rep.Rows != 1 || rep.Skipped != 1 || !strings.Contains(rep.SkippedFiles[0], "missing.png: file not found") {
		t.Errorf("missing image: %+v, %v", rep, err)
	}
	if _, err := BuildFromCaptions(filepath.Join(tmp, "c.txt"), filepath.Join(tmp, "o"), BuildOptions{}); err == nil || !strings.Contains(err.Error(), "want a .tsv, .csv or .jsonl") {
		t.Errorf("unknown extension: %v", err)
	}
}

// TestBuildEmpty: building from nothing is a one-line error.
func TestBuildEmpty(t *testing.T) {
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	os.MkdirAll(empty, 0o755)
	if _, err := BuildFromImageFolder(empty, filepath.Join(tmp, "o1"), BuildOptions{}); err == nil || !strings.Contains(err.Error(), "no files found") {
		t.Errorf("empty folder: %v", err)
	}
	junk := filepath.Join(tmp, "junk")
	os.MkdirAll(junk, 0o755)
	os.WriteFile(filepath.Join(junk, "a.jpg"), []byte("not a jpeg"), 0o644)
	_, err := BuildFromImageFolder(junk, filepath.Join(tmp, "o2"), BuildOptions{})
	if err == nil || !strings.Contains(err.Error(), "every file was skipped (1)") {
		t.Errorf("only bad files: %v", err)
	}
	w, err := CreateDataset(filepath.Join(tmp, "o3"), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err == nil || !strings.Contains(err.Error(), "no examples") {
		t.Errorf("empty writer: %v", err)
	}
	w, _ = CreateDataset(filepath.Join(tmp, "o4"), WriterOptions{ClassNames: []string{"a"}})
	if err := w.Write(Example{ImageBytes: []byte{1}, Label: 3}); err == nil || !strings.Contains(err.Error(), "label 3 out of range") {
		t.Errorf("bad label: %v", err)
	}
	w.Abort()
}

// TestDatasetDictSplits builds two splits into one DatasetDict.
func TestDatasetDictSplits(t *testing.T) {
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "images")
	want := makeImageFolder(t, imgs)
	out := filepath.Join(tmp, "dd")
	for _, split := range []string{"train", "test"} {
		if _, err := BuildFromImageFolder(imgs, filepath.Join(out, split), BuildOptions{Writer: WriterOptions{Split: split}}); err != nil {
			t.Fatal(err)
		}
		if err := AddDatasetDictSplit(out, split); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "dataset_dict.json"))
	if string(b) != `{"splits": ["train", "test"]}` {
		t.Errorf("dataset_dict.json = %s", b)
	}
	for _, split := range []string{"", "test"} {
		src, err := Open(out, SourceOptions{Split: split})
		if err != nil {
			t.Fatal(err)
		}
		if src.NumRows() != len(want) || src.Split() != map[string]string{"": "train", "test": "test"}[split] {
			t.Errorf("split %q: %d rows, split %q", split, src.NumRows(), src.Split())
		}
		src.Close()
	}
}
