package data

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/qatclip/qatclip/internal/testutil"
)

// parseOrdered decodes JSON keeping object key order, for comparing our
// Python-style output with files datasets wrote.
func parseOrdered(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var value func() any
	value = func() any {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		switch x := tok.(type) {
		case json.Delim:
			if x == '{' {
				obj := pyObject{}
				for dec.More() {
					k, _ := dec.Token()
					obj = append(obj, pyItem{k.(string), value()})
				}
				dec.Token()
				return obj
			}
			arr := []any{}
			for dec.More() {
				arr = append(arr, value())
			}
			dec.Token()
			return arr
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i
			}
			f, _ := x.Float64()
			return f
		default:
			return x
		}
	}
	return value()
}

func jsonField(obj any, key string) any {
	for _, it := range obj.(pyObject) {
		if it.Key == key {
			return it.Value
		}
	}
	return nil
}

func jsonKeys(obj any) []string {
	var out []string
	for _, it := range obj.(pyObject) {
		out = append(out, it.Key)
	}
	return out
}

func TestPyJSONStrings(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{"café", `"caf\u00e9"`},
		{"a\"b\\c\n\t", `"a\"b\\c\n\t"`},
		{"<&>", `"<&>"`},
		{"\x01", `"\u0001"`},
		{"😀", `"\ud83d\ude00"`},
		{pyObject{{"a", []string{"x", "y"}}, {"b", nil}, {"c", false}, {"d", pyObject{}}, {"e", []any{}}}, `{"a": ["x", "y"], "b": null, "c": false, "d": {}, "e": []}`},
		{1.5, "1.5"},
		{2.0, "2.0"},
	}
	for _, tc := range tests {
		if got := pyJSON(tc.in, -1); got != tc.want {
			t.Errorf("pyJSON(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	got := pyJSON(pyObject{{"a", []any{pyObject{{"b", int64(1)}}}}, {"c", pyObject{}}}, 2)
	want := "{\n  \"a\": [\n    {\n      \"b\": 1\n    }\n  ],\n  \"c\": {}\n}"
	if got != want {
		t.Errorf("indented:\n%s\nwant\n%s", got, want)
	}
}

// TestPyJSONMatchesDatasetsFiles re-encodes the JSON files and schema
// metadata datasets wrote and expects the same bytes.
func TestPyJSONMatchesDatasetsFiles(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "mnist-hf")
	for _, name := range []string{"test/dataset_info.json", "test/state.json", "train/state.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := pyJSON(parseOrdered(t, b), 2); got != string(b) {
			t.Errorf("%s: re-encoded differs:\n%s", name, got)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "dataset_dict.json"))
	if got := pyJSON(parseOrdered(t, b), -1); got != string(b) {
		t.Errorf("dataset_dict.json re-encoded as %s", got)
	}
	src, err := Open(dir, SourceOptions{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	md := src.Schema().Metadata()
	meta := md.Values()[md.FindKey(hfMetadataKey)]
	if got := pyJSON(parseOrdered(t, []byte(meta)), -1); got != meta {
		t.Errorf("schema metadata re-encoded as %s", got)
	}
}

// TestWriterMatchesHFLayout writes MNIST rows with DatasetWriter and checks
// the schema, JSON files and stream framing against the real folder.
func TestWriterMatchesHFLayout(t *testing.T) {
	real := testutil.SharedPath(t, "data", "real", "mnist-hf")
	src, err := Open(real, SourceOptions{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exs, err := src.ReadRange(0, 0, 1203)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "test")
	w, err := CreateDataset(out, WriterOptions{ClassNames: src.ClassNames(), Split: "test", DatasetName: "mnist"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		ex.ImagePath = "" // MNIST stores null paths
		if err := w.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Shards) != 1 || sum.Shards[0] != "data-00000-of-00001.arrow" || sum.Rows != 1203 {
		t.Fatalf("summary %+v", sum)
	}

	// Schema, including the huggingface metadata string, equals datasets'.
	ours, err := Open(out, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	if !ours.Schema().Equal(src.Schema()) || !ours.Schema().Metadata().Equal(src.Schema().Metadata()) {
		t.Errorf("schema differs:\n%v\nwant\n%v", ours.Schema(), src.Schema())
	}
	if got := ours.Shards()[0].Chunks; len(got) != 2 || got[0] != 1000 || got[1] != 203 {
		t.Errorf("record batches %v, want [1000 203]", got)
	}

	// state.json: same keys in the same order and formatting.
	readJSON := func(p string) any {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return parseOrdered(t, b)
	}
	rs, os_ := readJSON(filepath.Join(real, "test", hfStateFile)), readJSON(filepath.Join(out, hfStateFile))
	if fmt.Sprint(jsonKeys(rs)) != fmt.Sprint(jsonKeys(os_)) {
		t.Errorf("state.json keys %v, want %v", jsonKeys(os_), jsonKeys(rs))
	}
	if pyJSON(jsonField(os_, "_data_files"), 2) != pyJSON(jsonField(rs, "_data_files"), 2) || jsonField(os_, "_split") != "test" {
		t.Errorf("state.json: %s", pyJSON(os_, 2))
	}
	if fp, _ := jsonField(os_, "_fingerprint").(string); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fp) {
		t.Errorf("fingerprint %q", fp)
	}
	// dataset_info.json: identical features, sorted top-level keys, a
	// splits entry shaped like datasets'.
	ri, oi := readJSON(filepath.Join(real, "test", hfInfoFile)), readJSON(filepath.Join(out, hfInfoFile))
	if got, want := pyJSON(jsonField(oi, "features"), 2), pyJSON(jsonField(ri, "features"), 2); got != want {
		t.Errorf("features:\n%s\nwant\n%s", got, want)
	}
	k := jsonKeys(oi)
	for i := 1; i < len(k); i++ {
		if k[i-1] >= k[i] {
			t.Errorf("dataset_info.json keys not sorted: %v", k)
		}
	}
	rsplit, osplit := jsonField(jsonField(ri, "splits"), "test"), jsonField(jsonField(oi, "splits"), "test")
	if fmt.Sprint(jsonKeys(rsplit)) != fmt.Sprint(jsonKeys(osplit)) || jsonField(osplit, "num_examples") != int64(1203) {
		t.Errorf("splits entry %s, want keys of %s", pyJSON(osplit, -1), pyJSON(rsplit, -1))
	}

	// Stream framing: continuation markers, end-of-stream marker, and a
	// stock Arrow stream reader accepts it.
	shard := filepath.Join(out, sum.Shards[0])
	b, _ := os.ReadFile(shard)
	if binary.LittleEndian.Uint32(b) != 0xFFFFFFFF || !bytes.HasSuffix(b, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) {
		t.Errorf("shard does not start with a continuation marker or end with EOS")
	}
	rb, _ := os.ReadFile(filepath.Join(real, "test", "data-00000-of-00001.arrow"))
	if !bytes.Equal(b[:4], rb[:4]) || !bytes.Equal(b[len(b)-8:], rb[len(rb)-8:]) {
		t.Errorf("framing differs from datasets' shard")
	}
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		n += int(r.Record().NumRows())
	}
	if r.Err() != nil || n != 1203 {
		t.Errorf("stock reader: %d rows, %v", n, r.Err())
	}
	r.Release()

	// Round trip of the rows.
	got, err := ours.ReadRange(0, 0, 1203)
	if err != nil {
		t.Fatal(err)
	}
	for i := range exs {
		if !bytes.Equal(got[i].ImageBytes, exs[i].ImageBytes) || got[i].Label != exs[i].Label || got[i].ImagePath != "" {
			t.Fatalf("row %d differs", i)
		}
	}
	if strings.Contains(pyJSON(oi, 2), "\n\n") {
		t.Error("blank line in dataset_info.json")
	}
}
