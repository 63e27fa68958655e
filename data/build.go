package data

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Defaults of WriterOptions, matching HF datasets' save_to_disk.
const (
	// DefaultMaxShardBytes is save_to_disk's max_shard_size (500 MB).
	DefaultMaxShardBytes = 500 << 20
	// DefaultBatchRows is the rows per record batch datasets writes.
	DefaultBatchRows = 1000
	// maxBatchBytes caps the image bytes buffered for one record batch, so
	// batches of large images stay small enough to decode one at a time.
	maxBatchBytes = 16 << 20
)

// Column names the writer uses.
const (
	ColumnImage   = "image"
	ColumnCaption = "caption"
	ColumnLabel   = "label"
)

// WriterOptions configures a DatasetWriter.
type WriterOptions struct {
	// Captions adds a "caption" string column (a Value("string") feature).
	Captions bool
	// ClassNames, when not empty, adds a "label" int64 column declared as
	// a ClassLabel with these names.
	ClassNames []string
	// Split is recorded as state.json's _split and in dataset_info.json's
	// splits; "" writes a plain Dataset (_split null).
	Split string
	// DatasetName is dataset_info.json's dataset_name ("" leaves it out).
	DatasetName string
	// Description is dataset_info.json's description.
	Description string
	// MaxShardBytes starts a new shard file once a shard reaches this size
	// (DefaultMaxShardBytes when 0).
	MaxShardBytes int64
	// BatchRows is the rows per record batch (DefaultBatchRows when 0).
	BatchRows int
}

// WriteSummary describes a dataset folder a DatasetWriter finished.
type WriteSummary struct {
	Dir         string
	Rows        int
	Shards      []string // shard file names, in order
	Bytes       int64    // total size of the shards
	Fingerprint string
}

// DatasetWriter writes an HF datasets save_to_disk folder: Arrow IPC stream
// shards data-XXXXX-of-YYYYY.arrow with the features in the schema's
// "huggingface" metadata, dataset_info.json and state.json, laid out as
// datasets writes them so datasets.load_from_disk reads the folder back.
// Rows are streamed to disk a record batch at a time.
type DatasetWriter struct {
	dir      string
	opts     WriterOptions
	schema   *arrow.Schema
	features pyObject
	mem      memory.Allocator

	rb         *array.RecordBuilder
	batchRows  int
	batchBytes int64

	shard      *os.File
	shardW     *ipc.Writer
	shardCount *countWriter
	tmpNames   []string
	rows       int
	total      int64
	hash       hash.Hash
	closed     bool
}

// CreateDataset starts a dataset folder at dir, which must not exist or be
// empty.
func CreateDataset(dir string, opts WriterOptions) (*DatasetWriter, error) {
	if opts.MaxShardBytes <= 0 {
		opts.MaxShardBytes = DefaultMaxShardBytes
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = DefaultBatchRows
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("create dataset %s: folder exists and is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create dataset: %w", err)
	}
	sch, features := hfSchema(opts)
	w := &DatasetWriter{
		dir:      dir,
		opts:     opts,
		schema:   sch,
		features: features,
		mem:      memory.DefaultAllocator,
		hash:     sha256.New(),
	}
	w.rb = array.NewRecordBuilder(w.mem, w.schema)
	return w, nil
}

// hfSchema returns the Arrow schema, with its huggingface metadata, and
// the features of a dataset written with opts.
func hfSchema(opts WriterOptions) (*arrow.Schema, pyObject) {
	fields := []arrow.Field{{Name: ColumnImage, Type: hfImageType(), Nullable: true}}
	features := pyObject{{ColumnImage, pyObject{{"_type", "Image"}}}}
	if opts.Captions {
		fields = append(fields, arrow.Field{Name: ColumnCaption, Type: arrow.BinaryTypes.String, Nullable: true})
		features = append(features, pyItem{ColumnCaption, pyObject{{"dtype", "string"}, {"_type", "Value"}}})
	}
	if len(opts.ClassNames) > 0 {
		fields = append(fields, arrow.Field{Name: ColumnLabel, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
		features = append(features, pyItem{ColumnLabel, pyObject{{"names", slices.Clone(opts.ClassNames)}, {"_type", "ClassLabel"}}})
	}
	meta := pyJSON(pyObject{{"info", pyObject{{"features", features}}}}, -1)
	md := arrow.NewMetadata([]string{hfMetadataKey}, []string{meta})
	return arrow.NewSchema(fields, &md), features
}

// hfImageType is the Arrow type of HF's Image feature.
func hfImageType() arrow.DataType {
	return arrow.StructOf(
		arrow.Field{Name: "bytes", Type: arrow.BinaryTypes.Binary, Nullable: true},
		arrow.Field{Name: "path", Type: arrow.BinaryTypes.String, Nullable: true},
	)
}

// Write appends one example: its ImageBytes (null when nil) and ImagePath
// (null when empty) as the image, its Caption when the writer has captions
// and its Label (-1 for none) when it has class names.
func (w *DatasetWriter) Write(ex Example) error {
	if w.closed {
		return fmt.Errorf("write %s: writer is closed", w.dir)
	}
	n := len(w.opts.ClassNames)
	if n > 0 && (ex.Label < -1 || ex.Label >= n) {
		return fmt.Errorf("write %s: example %s: label %d out of range for %d classes", w.dir, ex.ID, ex.Label, n)
	}
	img := w.rb.Field(0).(*array.StructBuilder)
	img.Append(true)
	bb := img.FieldBuilder(0).(*array.BinaryBuilder)
	if ex.ImageBytes == nil {
		bb.AppendNull()
	} else {
		bb.Append(ex.ImageBytes)
	}
	pb := img.FieldBuilder(1).(*array.StringBuilder)
	if ex.ImagePath == "" {
		pb.AppendNull()
	} else {
		pb.Append(ex.ImagePath)
	}
	col := 1
	if w.opts.Captions {
		w.rb.Field(col).(*array.StringBuilder).Append(ex.Caption)
		col++
	}
	if n > 0 {
		lb := w.rb.Field(col).(*array.Int64Builder)
		if ex.Label < 0 {
			lb.AppendNull()
		} else {
			lb.Append(int64(ex.Label))
		}
	}
	w.batchRows++
	w.batchBytes += int64(len(ex.ImageBytes) + len(ex.ImagePath) + len(ex.Caption) + 16)
	w.rows++
	if w.batchRows >= w.opts.BatchRows || w.batchBytes >= maxBatchBytes {
		return w.flush()
	}
	return nil
}

// flush writes the buffered rows as one record batch, starting a new shard
// when the current one would pass MaxShardBytes.
func (w *DatasetWriter) flush() error {
	if w.batchRows == 0 {
		return nil
	}
	if w.shardW != nil && w.shardCount.n+w.batchBytes > w.opts.MaxShardBytes {
		if err := w.finishShard(); err != nil {
			return err
		}
	}
	if w.shardW == nil {
		name := filepath.Join(w.dir, fmt.Sprintf("data-%05d.arrow.tmp", len(w.tmpNames)))
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("write dataset: %w", err)
		}
		w.shard, w.shardCount = f, &countWriter{w: io.MultiWriter(f, w.hash)}
		w.shardW = ipc.NewWriter(w.shardCount, ipc.WithSchema(w.schema), ipc.WithAllocator(w.mem))
		w.tmpNames = append(w.tmpNames, name)
	}
	rec := w.rb.NewRecord()
	defer rec.Release()
	if err := w.shardW.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", w.shard.Name(), err)
	}
	w.batchRows, w.batchBytes = 0, 0
	return nil
}

// finishShard writes the end-of-stream marker and closes the shard file.
func (w *DatasetWriter) finishShard() error {
	if err := w.shardW.Close(); err != nil {
		w.shard.Close()
		return fmt.Errorf("write %s: %w", w.shard.Name(), err)
	}
	w.total += w.shardCount.n
	err := w.shard.Close()
	w.shard, w.shardW, w.shardCount = nil, nil, nil
	if err != nil {
		return fmt.Errorf("write dataset: %w", err)
	}
	return nil
}

// Close flushes the last batch, names the shards data-XXXXX-of-YYYYY.arrow
// and writes dataset_info.json and state.json. A dataset with no rows is
// an error.
func (w *DatasetWriter) Close() (WriteSummary, error) {
	if w.closed {
		return WriteSummary{}, fmt.Errorf("close %s: writer already closed", w.dir)
	}
	w.closed = true
	defer w.rb.Release()
	if err := w.flush(); err != nil {
		return WriteSummary{}, err
	}
	if w.shardW != nil {
		if err := w.finishShard(); err != nil {
			return WriteSummary{}, err
		}
	}
	if w.rows == 0 {
		return WriteSummary{}, fmt.Errorf("write dataset %s: no examples to write", w.dir)
	}
	sum := WriteSummary{Dir: w.dir, Rows: w.rows, Bytes: w.total}
	io.WriteString(w.hash, w.opts.Split)
	sum.Fingerprint = hex.EncodeToString(w.hash.Sum(nil))[:16]
	var files []any
	for i, tmp := range w.tmpNames {
		name := fmt.Sprintf("data-%05d-of-%05d.arrow", i, len(w.tmpNames))
		if err := os.Rename(tmp, filepath.Join(w.dir, name)); err != nil {
			return WriteSummary{}, fmt.Errorf("write dataset: %w", err)
		}
		sum.Shards = append(sum.Shards, name)
		files = append(files, pyObject{{"filename", name}})
	}
	var split any
	if w.opts.Split != "" {
		split = w.opts.Split
	}
	state := pyObject{
		{"_data_files", files},
		{"_fingerprint", sum.Fingerprint},
		{"_format_columns", nil},
		{"_format_kwargs", pyObject{}},
		{"_format_type", nil},
		{"_output_all_columns", false},
		{"_split", split},
	}
	if err := writeFileAtomic(filepath.Join(w.dir, hfStateFile), pyJSON(state, 2)); err != nil {
		return WriteSummary{}, err
	}
	if err := writeFileAtomic(filepath.Join(w.dir, hfInfoFile), pyJSON(w.info(sum), 2)); err != nil {
		return WriteSummary{}, err
	}
	return sum, nil
}

// info builds dataset_info.json: the fields HF's asdict(DatasetInfo) keeps
// for a dataset built in memory, top-level keys sorted as save_to_disk
// sorts them.
func (w *DatasetWriter) info(sum WriteSummary) pyObject {
	info := pyObject{
		{"citation", ""},
		{"description", w.opts.Description},
		{"features", w.features},
		{"homepage", ""},
		{"license", ""},
	}
	if w.opts.DatasetName != "" {
		info = append(info, pyItem{"dataset_name", w.opts.DatasetName})
	}
	info = append(info, pyItem{"dataset_size", sum.Bytes}, pyItem{"size_in_bytes", sum.Bytes})
	if w.opts.Split != "" {
		entry := pyObject{{"name", w.opts.Split}, {"num_bytes", sum.Bytes}, {"num_examples", int64(sum.Rows)}}
		if w.opts.DatasetName != "" {
			entry = append(entry, pyItem{"dataset_name", w.opts.DatasetName})
		}
		info = append(info, pyItem{"splits", pyObject{{w.opts.Split, entry}}})
	}
	sort.SliceStable(info, func(i, j int) bool { return info[i].Key < info[j].Key })
	return info
}

// Abort closes the writer and removes what it wrote.
func (w *DatasetWriter) Abort() {
	if w.shardW != nil {
		w.shardW.Close()
		w.shard.Close()
		w.shardW = nil
	}
	if !w.closed {
		w.closed = true
		w.rb.Release()
	}
	for _, n := range w.tmpNames {
		os.Remove(n)
	}
}

// WriteDatasetDict writes dir/dataset_dict.json listing splits, as
// DatasetDict.save_to_disk does. Each split lives in dir/<split>.
func WriteDatasetDict(dir string, splits []string) error {
	if len(splits) == 0 {
		return fmt.Errorf("write %s: no splits", filepath.Join(dir, hfDatasetDictFile))
	}
	return writeFileAtomic(filepath.Join(dir, hfDatasetDictFile), pyJSON(pyObject{{"splits", slices.Clone(splits)}}, -1))
}

// AddDatasetDictSplit adds split to dir/dataset_dict.json, creating the
// file when absent.
func AddDatasetDictSplit(dir, split string) error {
	var splits []string
	file := filepath.Join(dir, hfDatasetDictFile)
	if _, err := os.Stat(file); err == nil {
		lay, err := readDatasetDict(file)
		if err != nil {
			return err
		}
		splits = lay
	}
	if !slices.Contains(splits, split) {
		splits = append(splits, split)
	}
	return WriteDatasetDict(dir, splits)
}

// writeFileAtomic writes text to a temporary file and renames it over path.
func writeFileAtomic(path, text string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
