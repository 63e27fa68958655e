package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Example is one row of a dataset, as the loader consumes it.
type Example struct {
	// ID names the row: the id column's value when the source has one
	// (img2dataset's key), else "<shard file>:<row>".
	ID string
	// ImageBytes holds the encoded image (PNG, JPEG, ...); nil when the
	// source stores only a path.
	ImageBytes []byte
	// ImagePath is the image's path as stored. When ImageBytes is nil a
	// relative path is resolved against the shard's folder, so it names the
	// file to read; see ImageData.
	ImagePath string
	// Caption is the text column's value ("" when the source has none).
	Caption string
	// Label is the class index, or -1 when the source has no label.
	Label int
	// Shard and Row locate the example in its Source.
	Shard, Row int
}

// ImageData returns the encoded image: ImageBytes, or the contents of the
// file at ImagePath when the source stored only a path.
func (e *Example) ImageData() ([]byte, error) {
	if e.ImageBytes != nil {
		return e.ImageBytes, nil
	}
	if e.ImagePath == "" {
		return nil, fmt.Errorf("example %s: no image (bytes and path are null)", e.ID)
	}
	b, err := os.ReadFile(e.ImagePath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("example %s: image bytes are null and the path %s does not exist", e.ID, e.ImagePath)
		}
		return nil, fmt.Errorf("example %s: %w", e.ID, err)
	}
	return b, nil
}

// SourceOptions selects what Open reads. Empty column names are
// auto-detected.
type SourceOptions struct {
	// Split picks a split of a DatasetDict folder (default "train") or, in
	// a plain folder, the sub-folder or files named after it.
	Split string
	// ImageColumn is an Image struct<bytes, path> or binary column; by
	// default the first of image, img, jpg, jpeg, png, webp that exists,
	// else the first column of such a type.
	ImageColumn string
	// TextColumn is a string (or list of strings: the first is used)
	// column; by default caption, text, sentence, txt or captions when
	// present. Sources without one give empty captions.
	TextColumn string
	// LabelColumn is an integer (or, with ClassLabel names, string) column;
	// by default label, labels or class when present.
	LabelColumn string
	// IDColumn names rows; by default key, id or image_id when present.
	IDColumn string
	// Allocator for Arrow buffers; memory.DefaultAllocator when nil.
	Allocator memory.Allocator
}

// Columns are the column names a Source reads; "" when a role is absent.
// Status is img2dataset's status column: rows whose status is not
// "success" are left out.
type Columns struct {
	Image, Text, Label, ID, Status string
}

// ShardInfo describes one shard file of a Source.
type ShardInfo struct {
	// Path of the shard file.
	Path string
	// Rows in the shard, counting rows a status column marks as failed.
	Rows int
	// Chunks are the rows of each record batch (IPC) or row group
	// (Parquet), the units the reader decodes; reading rows within one
	// chunk after another is the cheapest access pattern.
	Chunks []int
}

// shardReader is one open shard file.
type shardReader interface {
	schema() *arrow.Schema
	chunkRows() []int64
	numRows() int64
	recordAt(row int64) (arrow.Record, int64, error)
	close() error
}

type shardHandle struct {
	info ShardInfo
	mu   sync.Mutex
	r    shardReader
}

// Source is an opened dataset: a list of shard files with a common set of
// columns. Its methods are safe for concurrent use; reads of the same shard
// are serialised, reads of different shards run in parallel.
type Source struct {
	path     string
	split    string
	cols     Columns
	schema   *arrow.Schema
	features map[string]Feature
	classes  []string
	shards   []*shardHandle
	rows     int
}

// Open opens the dataset at path: an HF save_to_disk Dataset or DatasetDict
// folder, an Arrow IPC file or stream (.arrow, .feather), a Parquet file, a
// folder of such shards or a glob. Only headers and footers are read; IPC
// files are memory-mapped and indexed by record batch.
func Open(path string, opts SourceOptions) (*Source, error) {
	lay, err := locateShards(path, opts.Split)
	if err != nil {
		return nil, err
	}
	mem := opts.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	s := &Source{path: path, split: lay.split}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for _, f := range lay.files {
		r, err := openShard(f, mem)
		if err != nil {
			return nil, err
		}
		h := &shardHandle{r: r, info: ShardInfo{Path: f, Rows: int(r.numRows())}}
		for _, c := range r.chunkRows() {
			h.info.Chunks = append(h.info.Chunks, int(c))
		}
		s.shards = append(s.shards, h)
		s.rows += h.info.Rows
	}
	s.schema = s.shards[0].r.schema()
	s.features = lay.features
	if s.features == nil {
		if s.features, err = schemaFeatures(s.schema); err != nil {
			return nil, fmt.Errorf("%s: %w", lay.files[0], err)
		}
	}
	if s.cols, err = resolveColumns(s.schema, opts, s.features); err != nil {
		return nil, fmt.Errorf("%s: %w", lay.files[0], err)
	}
	if s.cols.Label != "" {
		s.classes = s.features[s.cols.Label].Names
	}
	names := s.cols.names()
	for _, h := range s.shards {
		for _, n := range names {
			if len(h.r.schema().FieldIndices(n)) == 0 {
				return nil, fmt.Errorf("%s: column %q (found in %s) is missing; %s", h.info.Path, n, lay.files[0], describeColumns(h.r.schema()))
			}
		}
		if ps, isPQ := h.r.(*parquetShard); isPQ {
			if err := ps.project(names); err != nil {
				return nil, err
			}
		}
	}
	if s.rows == 0 {
		return nil, fmt.Errorf("%s: dataset is empty (0 rows in %d shard(s))", path, len(s.shards))
	}
	ok = true
	return s, nil
}

// openShard opens an IPC or Parquet shard, telling them apart by magic.
func openShard(path string, mem memory.Allocator) (shardReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open shard: %w", err)
	}
	head := make([]byte, 4)
	n, _ := f.Read(head)
	f.Close()
	if n == 4 && bytes.Equal(head, []byte("PAR1")) {
		return openParquetShard(path, mem)
	}
	return openIPCShard(path, mem)
}

// Path returns the path the source was opened with.
func (s *Source) Path() string { return s.path }

// Split returns the split read ("" when the source has no splits).
func (s *Source) Split() string { return s.split }

// Columns returns the columns read for each role.
func (s *Source) Columns() Columns { return s.cols }

// Schema returns the Arrow schema of the first shard (every column).
func (s *Source) Schema() *arrow.Schema { return s.schema }

// Features returns the HF features (from dataset_info.json or the schema's
// huggingface metadata) by column name; nil when the source has none.
func (s *Source) Features() map[string]Feature { return s.features }

// ClassNames returns the ClassLabel names of the label column, or nil.
func (s *Source) ClassNames() []string { return s.classes }

// NumRows returns the number of rows over all shards, counting rows a
// status column marks as failed.
func (s *Source) NumRows() int { return s.rows }

// Shards describes the shard files in reading order.
func (s *Source) Shards() []ShardInfo {
	out := make([]ShardInfo, len(s.shards))
	for i, h := range s.shards {
		out[i] = h.info
		out[i].Chunks = append([]int(nil), h.info.Chunks...)
	}
	return out
}

// ReadRange returns the examples of rows [start, end) of shard, in row
// order. Rows a status column marks as failed are left out, so the result
// may be shorter than end-start; Example.Row tells which rows are present.
// Only the chunks (record batches, row groups) overlapping the range are
// decoded, and the last one is cached, so consecutive windows are cheap.
func (s *Source) ReadRange(shard, start, end int) ([]Example, error) {
	if shard < 0 || shard >= len(s.shards) {
		return nil, fmt.Errorf("%s: shard %d out of range [0, %d)", s.path, shard, len(s.shards))
	}
	h := s.shards[shard]
	if start < 0 || end > h.info.Rows || start > end {
		return nil, fmt.Errorf("%s: rows [%d, %d) out of range [0, %d)", h.info.Path, start, end, h.info.Rows)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r == nil {
		return nil, fmt.Errorf("%s: source is closed", h.info.Path)
	}
	return h.readRange(shard, start, end, s.cols, s.classes)
}

// readRange is ReadRange on one shard, its lock held.
func (h *shardHandle) readRange(shard, start, end int, cols Columns, classes []string) (out []Example, err error) {
	// Arrow builds arrays from a record batch's metadata without checking
	// that their buffers hold as many values as its length says, and its
	// Value methods then index past the end: a corrupted shard made
	// ReadRange panic (caught by FuzzOpenShard). Turn such panics into an
	// error naming the file.
	row := start
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%s: row %d: corrupt record batch: %v", h.info.Path, row, p)
		}
	}()
	out = make([]Example, 0, min(end-start, 1<<12))
	base := filepath.Base(h.info.Path)
	dir := filepath.Dir(h.info.Path)
	for row < end {
		rec, first, err := h.r.recordAt(int64(row))
		if err != nil {
			return nil, err
		}
		x, err := newExtractor(rec, cols, classes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.info.Path, err)
		}
		stop := min(end, int(first)+int(rec.NumRows()))
		for ; row < stop; row++ {
			i := row - int(first)
			if !x.keep(i) {
				continue
			}
			ex, err := x.example(i)
			if err != nil {
				return nil, fmt.Errorf("%s: row %d: %w", h.info.Path, row, err)
			}
			ex.Shard, ex.Row = shard, row
			if ex.ID == "" {
				ex.ID = base + ":" + strconv.Itoa(row)
			}
			if ex.ImageBytes == nil && ex.ImagePath != "" && !filepath.IsAbs(ex.ImagePath) {
				ex.ImagePath = filepath.Join(dir, ex.ImagePath)
			}
			out = append(out, ex)
		}
	}
	return out, nil
}

// Close releases the shards' memory maps and cached batches.
func (s *Source) Close() error {
	var first error
	for _, h := range s.shards {
		h.mu.Lock()
		if h.r != nil {
			if err := h.r.close(); err != nil && first == nil {
				first = fmt.Errorf("close %s: %w", h.info.Path, err)
			}
			h.r = nil
		}
		h.mu.Unlock()
	}
	return first
}

// names lists the columns to read.
func (c Columns) names() []string {
	var out []string
	for _, n := range []string{c.Image, c.Text, c.Label, c.ID, c.Status} {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// describeColumns lists a schema's columns with their types for errors.
func describeColumns(sch *arrow.Schema) string {
	parts := make([]string, sch.NumFields())
	for i, f := range sch.Fields() {
		parts[i] = fmt.Sprintf("%s (%s)", f.Name, f.Type)
	}
	return "available columns: " + strings.Join(parts, ", ")
}

// Column names tried, in order, by auto-detection.
var (
	autoImageColumns = []string{"image", "img", "jpg", "jpeg", "png", "webp"}
	autoTextColumns  = []string{"caption", "text", "sentence", "txt", "captions"}
	autoLabelColumns = []string{"label", "labels", "class"}
	autoIDColumns    = []string{"key", "id", "image_id"}
)

// resolveColumns picks the column of each role, checking types.
func resolveColumns(sch *arrow.Schema, opts SourceOptions, feats map[string]Feature) (Columns, error) {
	var c Columns
	field := func(name string) (arrow.Field, bool) {
		idx := sch.FieldIndices(name)
		if len(idx) == 0 {
			return arrow.Field{}, false
		}
		return sch.Field(idx[0]), true
	}
	pick := func(role, explicit string, auto []string, ok func(arrow.DataType) bool, want string) (string, error) {
		if explicit != "" {
			f, found := field(explicit)
			if !found {
				return "", fmt.Errorf("%s_column %q not found; %s", role, explicit, describeColumns(sch))
			}
			if !ok(f.Type) {
				return "", fmt.Errorf("%s_column %q has type %s, want %s", role, explicit, f.Type, want)
			}
			return explicit, nil
		}
		for _, n := range auto {
			if f, found := field(n); found && ok(f.Type) {
				return n, nil
			}
		}
		return "", nil
	}
	var err error
	if c.Image, err = pick("image", opts.ImageColumn, autoImageColumns, isImageType, "struct<bytes, path> or binary"); err != nil {
		return c, err
	}
	if c.Image == "" {
		for _, f := range sch.Fields() {
			if isImageType(f.Type) || feats[f.Name].Type == "Image" && isImagePathType(f.Type) {
				c.Image = f.Name
				break
			}
		}
	}
	if c.Image == "" {
		return c, fmt.Errorf("no image column found (tried %s; set image_column); %s", strings.Join(autoImageColumns, ", "), describeColumns(sch))
	}
	if c.Text, err = pick("text", opts.TextColumn, autoTextColumns, isTextType, "string or list<string>"); err != nil {
		return c, err
	}
	hasNames := func(name string) bool { return len(feats[name].Names) > 0 }
	labelOK := func(dt arrow.DataType) bool { return isIntegerType(dt) || isStringType(dt) }
	if c.Label, err = pick("label", opts.LabelColumn, autoLabelColumns, labelOK, "integer or string"); err != nil {
		return c, err
	}
	if c.Label != "" {
		f, _ := field(c.Label)
		if isStringType(f.Type) && !hasNames(c.Label) {
			return c, fmt.Errorf("label_column %q holds strings but the dataset declares no ClassLabel names for it", c.Label)
		}
	}
	if c.ID, err = pick("id", opts.IDColumn, autoIDColumns, func(dt arrow.DataType) bool { return isStringType(dt) || isIntegerType(dt) }, "string or integer"); err != nil {
		return c, err
	}
	if f, found := field("status"); found && isStringType(f.Type) {
		c.Status = "status"
	}
	return c, nil
}

func isStringType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}

func isBinaryType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.BINARY, arrow.LARGE_BINARY, arrow.BINARY_VIEW:
		return true
	}
	return false
}

func isIntegerType(dt arrow.DataType) bool {
	return arrow.IsInteger(dt.ID())
}

func isTextType(dt arrow.DataType) bool {
	if isStringType(dt) {
		return true
	}
	if l, ok := dt.(arrow.ListLikeType); ok {
		return isStringType(l.Elem())
	}
	return false
}

// isImageType accepts HF's Image struct<bytes, path> and binary columns.
func isImageType(dt arrow.DataType) bool {
	if isBinaryType(dt) {
		return true
	}
	st, ok := dt.(*arrow.StructType)
	if !ok {
		return false
	}
	f, ok := st.FieldByName("bytes")
	return ok && isBinaryType(f.Type)
}

// isImagePathType accepts a string column of image paths, used only when
// the features declare it an Image.
func isImagePathType(dt arrow.DataType) bool { return isStringType(dt) }

// Interfaces satisfied by Arrow's binary and string array variants.
type (
	bytesArray interface {
		arrow.Array
		Value(int) []byte
	}
	stringArray interface {
		arrow.Array
		Value(int) string
	}
)

// extractor reads the columns of one record into Examples.
type extractor struct {
	imgBytes bytesArray  // binary column or the struct's bytes child
	imgPath  stringArray // the struct's path child, or a path column
	imgNull  arrow.Array // the struct itself, for its validity
	text     arrow.Array
	label    arrow.Array
	id       arrow.Array
	status   stringArray
	classes  []string
}

func newExtractor(rec arrow.Record, c Columns, classes []string) (*extractor, error) {
	sch := rec.Schema()
	col := func(name string) arrow.Array {
		if name == "" {
			return nil
		}
		idx := sch.FieldIndices(name)
		if len(idx) == 0 {
			return nil
		}
		return rec.Column(idx[0])
	}
	x := &extractor{classes: classes}
	img := col(c.Image)
	if img == nil {
		return nil, fmt.Errorf("image column %q missing from record", c.Image)
	}
	switch a := img.(type) {
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		x.imgNull = a
		if i, ok := st.FieldIdx("bytes"); ok {
			x.imgBytes, _ = a.Field(i).(bytesArray)
		}
		if i, ok := st.FieldIdx("path"); ok {
			x.imgPath, _ = a.Field(i).(stringArray)
		}
	case bytesArray:
		x.imgBytes = a
	case stringArray:
		x.imgPath = a
	}
	if x.imgBytes == nil && x.imgPath == nil {
		return nil, fmt.Errorf("image column %q has unsupported type %s", c.Image, img.DataType())
	}
	x.text, x.label, x.id = col(c.Text), col(c.Label), col(c.ID)
	if st := col(c.Status); st != nil {
		x.status, _ = st.(stringArray)
	}
	return x, nil
}

// keep reports whether row i is not marked failed by a status column.
func (x *extractor) keep(i int) bool {
	return x.status == nil || x.status.IsNull(i) || x.status.Value(i) == "success"
}

func (x *extractor) example(i int) (Example, error) {
	ex := Example{Label: -1}
	structNull := x.imgNull != nil && x.imgNull.IsNull(i)
	if !structNull {
		if x.imgBytes != nil && x.imgBytes.IsValid(i) {
			ex.ImageBytes = bytes.Clone(x.imgBytes.Value(i))
			if ex.ImageBytes == nil {
				ex.ImageBytes = []byte{}
			}
		}
		if x.imgPath != nil && x.imgPath.IsValid(i) {
			ex.ImagePath = x.imgPath.Value(i)
		}
	}
	if x.text != nil && x.text.IsValid(i) {
		switch a := x.text.(type) {
		case stringArray:
			ex.Caption = a.Value(i)
		case array.ListLike:
			lo, hi := a.ValueOffsets(i)
			if vals, ok := a.ListValues().(stringArray); ok {
				for j := lo; j < hi; j++ {
					if vals.IsValid(int(j)) {
						ex.Caption = vals.Value(int(j))
						break
					}
				}
			}
		}
	}
	if x.label != nil && x.label.IsValid(i) {
		l, err := labelValue(x.label, i, x.classes)
		if err != nil {
			return ex, err
		}
		ex.Label = l
	}
	if x.id != nil && x.id.IsValid(i) {
		if a, ok := x.id.(stringArray); ok {
			ex.ID = a.Value(i)
		} else if v, ok := intValue(x.id, i); ok {
			ex.ID = strconv.FormatInt(v, 10)
		}
	}
	return ex, nil
}

// labelValue reads an integer label, or maps a string through the class
// names.
func labelValue(a arrow.Array, i int, classes []string) (int, error) {
	if s, ok := a.(stringArray); ok {
		v := s.Value(i)
		for k, n := range classes {
			if n == v {
				return k, nil
			}
		}
		return -1, fmt.Errorf("label %q is not one of the ClassLabel names", v)
	}
	v, ok := intValue(a, i)
	if !ok {
		return -1, fmt.Errorf("label column has unsupported type %s", a.DataType())
	}
	if v < -1 || (len(classes) > 0 && v >= int64(len(classes))) {
		return -1, fmt.Errorf("label %d out of range for %d classes", v, len(classes))
	}
	return int(v), nil
}

// intValue reads element i of any integer array.
func intValue(a arrow.Array, i int) (int64, bool) {
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i), true
	case *array.Int32:
		return int64(a.Value(i)), true
	case *array.Int16:
		return int64(a.Value(i)), true
	case *array.Int8:
		return int64(a.Value(i)), true
	case *array.Uint64:
		return int64(a.Value(i)), true
	case *array.Uint32:
		return int64(a.Value(i)), true
	case *array.Uint16:
		return int64(a.Value(i)), true
	case *array.Uint8:
		return int64(a.Value(i)), true
	}
	return 0, false
}
