package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"github.com/qatclip/qatclip/layers/clip"
)

// The teacher cache (train.teacher_cache) lives in RUN/teacher-cache:
// TeacherCacheFile holds the float teacher's image and text embeddings of
// every example of the training set, TeacherManifestFile says what they
// were computed for and the SHA-256 of the Arrow file. Run fills it with
// one pass of the teacher over every example ([ExampleSet.All]) before
// the first step, and a resumed run reads it back (or computes it again,
// with the same result, when it is missing or invalid), so an interrupted
// run and an uninterrupted one feed the steps the same values.
const (
	// TeacherCacheDir is the folder of a run's teacher cache.
	TeacherCacheDir = "teacher-cache"
	// TeacherCacheFile is the Arrow IPC stream of the cached embeddings:
	// one row per example with the columns "index" (int64, the example's
	// Batch.Index), "image_embeds" and "text_embeds" (fixed-size lists of
	// projection_dim float32), rows in increasing index order.
	TeacherCacheFile = "teacher.arrow"
	// TeacherManifestFile is the JSON manifest of the cache.
	TeacherManifestFile = "manifest.json"
)

// teacherCacheFormat is the version of the cache's layout; a cache of
// another version is rebuilt.
const teacherCacheFormat = 1

// teacherCacheRecordRows is the number of rows per Arrow record batch.
const teacherCacheRecordRows = 4096

// ExampleSet is a [Batches] that numbers its examples, which the teacher
// cache (train.teacher_cache) needs to find an example's teacher outputs
// whatever batch and epoch it comes in. Its batches carry Batch.Index, and
// an index always stands for the same pixels and token ids: an ExampleSet
// applies no random augmentation that changes between epochs (the
// loader's preprocessing, a resize and a center crop, has none).
type ExampleSet interface {
	Batches
	// NumExamples returns the number of examples; every Batch.Index value
	// is in [0, NumExamples()).
	NumExamples() int
	// Identity describes the data (where it comes from and how it is
	// preprocessed) for the teacher cache's manifest: a cache computed for
	// another identity is rebuilt.
	Identity() (string, error)
	// All returns an iterator over every example once, in increasing
	// index order, in batches of at most batchSize examples (the last one
	// may be shorter). Examples the data cannot produce (bad records) may
	// be left out; they never appear in an epoch either.
	All(batchSize int) (BatchIterator, error)
}

// teacherKey identifies what a teacher cache was computed for; a cache
// whose key differs from the run's is rebuilt.
type teacherKey struct {
	// Format is teacherCacheFormat.
	Format int `json:"format"`
	// ModelSource is the recipe's model.source.
	ModelSource string `json:"model_source"`
	// ModelSHA256 is the fingerprint of the teacher's config and weights
	// (modelFingerprint).
	ModelSHA256 string `json:"model_sha256"`
	// DataPath is the recipe's train.data.path.
	DataPath string `json:"data_path"`
	// Data is the data's ExampleSet.Identity.
	Data string `json:"data"`
	// Examples is ExampleSet.NumExamples.
	Examples int `json:"examples"`
	// ImageSize and ProjectionDim are the model's.
	ImageSize     int `json:"image_size"`
	ProjectionDim int `json:"projection_dim"`
	// Precision is the recipe's train.precision.
	Precision string `json:"precision"`
}

// teacherManifest is the content of TeacherManifestFile.
type teacherManifest struct {
	// Key says what the embeddings were computed for.
	Key teacherKey `json:"key"`
	// Rows is the number of rows of TeacherCacheFile.
	Rows int `json:"rows"`
	// SHA256 is the checksum of TeacherCacheFile.
	SHA256 string `json:"sha256"`
	// Created is when the cache was written (RFC 3339), for people.
	Created string `json:"created"`
}

// teacherCache holds the teacher's embeddings of every example, indexed
// by Batch.Index.
type teacherCache struct {
	dim int
	// img and txt are [examples, dim], row-major.
	img, txt []float32
	// have marks the examples with embeddings.
	have []bool
	rows int
}

// newTeacherCache returns an empty cache for n examples of dim values.
func newTeacherCache(n, dim int) *teacherCache {
	return &teacherCache{dim: dim, img: make([]float32, n*dim), txt: make([]float32, n*dim), have: make([]bool, n)}
}

// set stores the embeddings of example i.
func (c *teacherCache) set(i int, img, txt []float32) {
	copy(c.img[i*c.dim:(i+1)*c.dim], img)
	copy(c.txt[i*c.dim:(i+1)*c.dim], txt)
	if !c.have[i] {
		c.have[i] = true
		c.rows++
	}
}

// gather returns the cached image and text embeddings [N, dim] of a
// batch's examples.
func (c *teacherCache) gather(b Batch) (img, txt *tensors.Tensor, err error) {
	if len(b.Index) != b.N {
		return nil, nil, fmt.Errorf("the batch carries %d example indices for %d examples; the teacher cache needs one per example", len(b.Index), b.N)
	}
	d := c.dim
	ib, tb := make([]float32, b.N*d), make([]float32, b.N*d)
	for j, i := range b.Index {
		if i < 0 || i >= len(c.have) || !c.have[i] {
			return nil, nil, fmt.Errorf("example %d has no cached teacher output (the cache holds %d of %d examples)", i, c.rows, len(c.have))
		}
		copy(ib[j*d:(j+1)*d], c.img[i*d:(i+1)*d])
		copy(tb[j*d:(j+1)*d], c.txt[i*d:(i+1)*d])
	}
	return tensors.FromFlatDataAndDimensions(ib, b.N, d), tensors.FromFlatDataAndDimensions(tb, b.N, d), nil
}

// usesTeacherCache reports whether the steps read the teacher's outputs
// from the cache: train.teacher_cache is on and a loss term needs the
// teacher (distillation; the classification head is built once, outside
// the step).
func (t *Trainer) usesTeacherCache() bool {
	r := t.recipe.Train
	return r.TeacherCache && r.Loss.Distill.Weight > 0
}

// prepareTeacherCache makes t.teacher hold the teacher's embeddings of
// every training example, when the cache is on: loaded from
// RUN/teacher-cache when it was computed for this model and data and its
// checksum holds, else computed by one pass of the teacher over the data
// (before the first step) and written there. Without a run folder the
// cache is kept in memory only. A Trainer computes it at most once.
func (t *Trainer) prepareTeacherCache() error {
	if !t.usesTeacherCache() || t.teacher != nil {
		return nil
	}
	set, ok := t.opts.Data.(ExampleSet)
	if !ok {
		return fmt.Errorf("recipe %s: train.teacher_cache: the training data (%T) does not number its examples, so the teacher's outputs cannot be cached; set train.teacher_cache: false", t.recipe.Source(), t.opts.Data)
	}
	id, err := set.Identity()
	if err != nil {
		return fmt.Errorf("teacher cache: %w", err)
	}
	key := teacherKey{Format: teacherCacheFormat, ModelSource: t.recipe.Model.Source, ModelSHA256: t.teacherSHA,
		DataPath: t.recipe.Train.Data.Path, Data: id, Examples: set.NumExamples(),
		ImageSize: t.cfg.Vision.ImageSize, ProjectionDim: t.cfg.ProjectionDim, Precision: t.recipe.Train.Precision}
	dir := ""
	if t.opts.RunDir != "" {
		dir = filepath.Join(t.opts.RunDir, TeacherCacheDir)
		removeTeacherTemps(dir)
		c, err := loadTeacherCache(dir, key)
		switch {
		case err == nil:
			fmt.Fprintf(t.log, "teacher cache: loaded the teacher's embeddings of %d examples from %s\n", c.rows, dir)
			t.teacher = c
			return nil
		case errors.Is(err, fs.ErrNotExist):
		default:
			fmt.Fprintf(t.log, "teacher cache %s: %v; rebuilding it\n", dir, err)
		}
	}
	start := time.Now()
	fmt.Fprintf(t.log, "teacher cache: computing the teacher's embeddings of %d examples (once, before training)\n", key.Examples)
	c, err := t.computeTeacherCache(set)
	if err != nil {
		return err
	}
	where := "memory"
	if dir != "" {
		if err := saveTeacherCache(dir, key, c); err != nil {
			return err
		}
		where = dir
	}
	fmt.Fprintf(t.log, "teacher cache: %d examples in %s, kept in %s\n", c.rows, time.Since(start).Round(time.Millisecond), where)
	t.teacher = c
	return nil
}

// teacherFeaturesGraph runs the float teacher's two towers.
func (t *Trainer) teacherFeaturesGraph(ctx *context.Context, pixels, ids *Node) (img, txt *Node) {
	return t.features(ctx.In(TeacherScope), pixels, ids, false)
}

// computeTeacherCache runs the teacher over every example of set, in
// batches of train.batch_size.
func (t *Trainer) computeTeacherCache(set ExampleSet) (*teacherCache, error) {
	n, d := set.NumExamples(), t.cfg.ProjectionDim
	if n < 1 {
		return nil, fmt.Errorf("teacher cache: the training data has %d examples", n)
	}
	exec, err := context.NewExec(t.backend, t.ctx, t.teacherFeaturesGraph)
	if err != nil {
		return nil, fmt.Errorf("teacher cache: build the teacher graph: %w", err)
	}
	defer exec.Finalize()
	it, err := set.All(t.recipe.Train.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("teacher cache: %w", err)
	}
	defer it.Close()
	c := newTeacherCache(n, d)
	for bi := 0; ; bi++ {
		b, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		where := fmt.Sprintf("teacher cache: batch %d", bi)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if len(b.Index) != b.N {
			return nil, fmt.Errorf("%s: %d example indices for %d examples", where, len(b.Index), b.N)
		}
		pixels, ids, _, err := t.batchTensors(b, where)
		if err != nil {
			return nil, err
		}
		outs, err := exec.Exec(pixels, ids)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		img, txt := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
		for j, i := range b.Index {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("%s: example index %d outside [0, %d)", where, i, n)
			}
			c.set(i, img[j*d:(j+1)*d], txt[j*d:(j+1)*d])
		}
	}
	if c.rows == 0 {
		return nil, errors.New("teacher cache: the data yielded no example")
	}
	return c, nil
}

// modelFingerprint returns the SHA-256 of a checkpoint's config and
// weights (names in sorted order, values as little-endian float32 bits).
func modelFingerprint(ck *clip.Checkpoint) (string, error) {
	h := sha256.New()
	cfg, err := json.Marshal(ck.Config)
	if err != nil {
		return "", fmt.Errorf("model fingerprint: %w", err)
	}
	h.Write(cfg)
	names := make([]string, 0, len(ck.Weights))
	for name := range ck.Weights {
		names = append(names, name)
	}
	sort.Strings(names)
	buf := make([]byte, 0, 1<<16)
	for _, name := range names {
		w := ck.Weights[name]
		fmt.Fprintf(h, "\x00%s\x00%d\x00", name, len(w))
		hashFloat32s(h, buf, w)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFloat32s writes the little-endian bits of vals to w through buf.
func hashFloat32s(w io.Writer, buf []byte, vals []float32) {
	for len(vals) > 0 {
		k := min(len(vals), cap(buf)/4)
		b := buf[:0]
		for _, v := range vals[:k] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		w.Write(b)
		vals = vals[k:]
	}
}

// hashInt32s writes the little-endian bits of vals to w through buf.
func hashInt32s(w io.Writer, buf []byte, vals []int32) {
	for len(vals) > 0 {
		k := min(len(vals), cap(buf)/4)
		b := buf[:0]
		for _, v := range vals[:k] {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
		w.Write(b)
		vals = vals[k:]
	}
}

// teacherSchema returns the cache file's schema for embeddings of dim
// values.
func teacherSchema(dim int) *arrow.Schema {
	emb := arrow.FixedSizeListOf(int32(dim), arrow.PrimitiveTypes.Float32)
	return arrow.NewSchema([]arrow.Field{
		{Name: "index", Type: arrow.PrimitiveTypes.Int64},
		{Name: "image_embeds", Type: emb},
		{Name: "text_embeds", Type: emb},
	}, nil)
}

// saveTeacherCache writes c to dir: the manifest is removed first, then
// the Arrow file and last the manifest are written atomically, so a cache
// interrupted half-way has no manifest and is rebuilt.
func saveTeacherCache(dir string, key teacherKey, c *teacherCache) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("teacher cache: %w", err)
	}
	manifestPath := filepath.Join(dir, TeacherManifestFile)
	if err := os.Remove(manifestPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("teacher cache: %w", err)
	}
	h := sha256.New()
	err := atomicfile.Write(filepath.Join(dir, TeacherCacheFile), func(w io.Writer) error {
		return writeTeacherArrow(io.MultiWriter(w, h), c)
	})
	if err != nil {
		return fmt.Errorf("teacher cache: %w", err)
	}
	m := teacherManifest{Key: key, Rows: c.rows, SHA256: hex.EncodeToString(h.Sum(nil)), Created: time.Now().UTC().Format(time.RFC3339)}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("teacher cache: %w", err)
	}
	if err := atomicfile.WriteBytes(manifestPath, append(js, '\n')); err != nil {
		return fmt.Errorf("teacher cache: %w", err)
	}
	return nil
}

// writeTeacherArrow writes the rows of c as an Arrow IPC stream.
func writeTeacherArrow(w io.Writer, c *teacherCache) error {
	mem := memory.NewGoAllocator()
	schema := teacherSchema(c.dim)
	wr := ipc.NewWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	idx := rb.Field(0).(*array.Int64Builder)
	lists := [2]*array.FixedSizeListBuilder{rb.Field(1).(*array.FixedSizeListBuilder), rb.Field(2).(*array.FixedSizeListBuilder)}
	src := [2][]float32{c.img, c.txt}
	d := c.dim
	flush := func() error {
		rec := rb.NewRecord()
		defer rec.Release()
		return wr.Write(rec)
	}
	pending := 0
	for i, ok := range c.have {
		if !ok {
			continue
		}
		idx.Append(int64(i))
		for k, lb := range lists {
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(src[k][i*d:(i+1)*d], nil)
		}
		if pending++; pending == teacherCacheRecordRows {
			if err := flush(); err != nil {
				return err
			}
			pending = 0
		}
	}
	if pending > 0 {
		if err := flush(); err != nil {
			return err
		}
	}
	return wr.Close()
}

// loadTeacherCache reads the cache in dir when its manifest matches key
// and its checksum holds. It returns an error wrapping fs.ErrNotExist when
// there is no cache at all, and an error saying why for a cache that
// cannot be used (another model or data, half-written, corrupt).
func loadTeacherCache(dir string, key teacherKey) (*teacherCache, error) {
	arrowPath := filepath.Join(dir, TeacherCacheFile)
	js, err := os.ReadFile(filepath.Join(dir, TeacherManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(arrowPath); serr == nil {
			return nil, fmt.Errorf("%s has no manifest (the cache was not completed)", TeacherCacheFile)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	var m teacherManifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", TeacherManifestFile, err)
	}
	if what := keyDiff(m.Key, key); what != "" {
		return nil, fmt.Errorf("it was computed for another %s", what)
	}
	f, err := os.Open(arrowPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("read %s: %w", arrowPath, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return nil, fmt.Errorf("corrupt %s: SHA-256 %s, the manifest says %s", TeacherCacheFile, got[:12], short(m.SHA256))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	c, err := readTeacherArrow(f, key.Examples, key.ProjectionDim)
	if err != nil {
		return nil, fmt.Errorf("corrupt %s: %w", TeacherCacheFile, err)
	}
	if c.rows != m.Rows {
		return nil, fmt.Errorf("corrupt %s: %d rows, the manifest says %d", TeacherCacheFile, c.rows, m.Rows)
	}
	return c, nil
}

// short returns the first 12 characters of a checksum.
func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// keyDiff names the first field where a cache's key differs from the
// run's ("" when they match).
func keyDiff(got, want teacherKey) string {
	switch {
	case got.Format != want.Format:
		return fmt.Sprintf("cache format (%d, now %d)", got.Format, want.Format)
	case got.ModelSource != want.ModelSource || got.ModelSHA256 != want.ModelSHA256:
		return fmt.Sprintf("model (%s %s, now %s %s)", got.ModelSource, short(got.ModelSHA256), want.ModelSource, short(want.ModelSHA256))
	case got.DataPath != want.DataPath || got.Data != want.Data || got.Examples != want.Examples:
		return fmt.Sprintf("data set (%q with %d examples, now %q with %d)", got.DataPath, got.Examples, want.DataPath, want.Examples)
	case got.ImageSize != want.ImageSize || got.ProjectionDim != want.ProjectionDim:
		return fmt.Sprintf("model shape (image size %d, projection dim %d; now %d, %d)", got.ImageSize, got.ProjectionDim, want.ImageSize, want.ProjectionDim)
	case got.Precision != want.Precision:
		return fmt.Sprintf("precision (%s, now %s)", got.Precision, want.Precision)
	}
	return ""
}

// readTeacherArrow decodes a cache file of n examples of dim values.
func readTeacherArrow(r io.Reader, n, dim int) (c *teacherCache, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, fmt.Errorf("arrow decode: %v", p)
		}
	}()
	rd, err := ipc.NewReader(r, ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	if !rd.Schema().Equal(teacherSchema(dim)) {
		return nil, fmt.Errorf("schema %s, want %s", rd.Schema(), teacherSchema(dim))
	}
	c = newTeacherCache(n, dim)
	for rd.Next() {
		rec := rd.Record()
		idx := rec.Column(0).(*array.Int64)
		img := rec.Column(1).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
		txt := rec.Column(2).(*array.FixedSizeList).ListValues().(*array.Float32).Float32Values()
		rows := int(rec.NumRows())
		if idx.NullN() > 0 || len(img) < rows*dim || len(txt) < rows*dim {
			return nil, errors.New("malformed record")
		}
		for j := range rows {
			i := int(idx.Value(j))
			if i < 0 || i >= n || c.have[i] {
				return nil, fmt.Errorf("example index %d repeated or outside [0, %d)", i, n)
			}
			c.set(i, img[j*dim:(j+1)*dim], txt[j*dim:(j+1)*dim])
		}
	}
	if err := rd.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// removeTeacherTemps deletes temporary files a killed run left in dir.
func removeTeacherTemps(dir string) {
	for _, name := range []string{TeacherCacheFile, TeacherManifestFile} {
		tmps, _ := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*"))
		for _, p := range tmps {
			os.Remove(p)
		}
	}
}

// identityHash returns a short SHA-256 of in-memory example data.
func identityHash(pixels []float32, ids, labels []int32) string {
	h := sha256.New()
	buf := make([]byte, 0, 1<<16)
	hashFloat32s(h, buf, pixels)
	h.Write([]byte{0})
	hashInt32s(h, buf, ids)
	h.Write([]byte{0})
	hashInt32s(h, buf, labels)
	return hex.EncodeToString(h.Sum(nil))
}

// teacherInputs are the cached teacher embeddings of one batch, or why
// they are missing.
type teacherInputs struct {
	img, txt *tensors.Tensor
	err      error
}

// teacherFeed passes an epoch's batches through to the prefetcher and,
// with the teacher cache, gathers each batch's cached teacher embeddings
// as it goes (in the prefetching goroutine), queued in batch order: the
// step takes them with args in the order it takes the batches.
type teacherFeed struct {
	BatchIterator
	cache *teacherCache
	mu    sync.Mutex
	queue []teacherInputs
}

// teacherFeed wraps it; without the teacher cache it only passes the
// batches through.
func (t *Trainer) teacherFeed(it BatchIterator) *teacherFeed {
	return &teacherFeed{BatchIterator: it, cache: t.teacher}
}

// Next implements BatchIterator.
func (f *teacherFeed) Next() (Batch, error) {
	b, err := f.BatchIterator.Next()
	if err != nil || f.cache == nil {
		return b, err
	}
	var ti teacherInputs
	ti.img, ti.txt, ti.err = f.cache.gather(b)
	f.mu.Lock()
	f.queue = append(f.queue, ti)
	f.mu.Unlock()
	return b, nil
}

// args returns the inputs of the step of the next batch: in, followed
// with the teacher cache by the batch's teacher image and text
// embeddings.
func (f *teacherFeed) args(where string, in ...any) ([]any, error) {
	if f.cache == nil {
		return in, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return nil, fmt.Errorf("%s: internal error: no teacher embeddings queued for the batch", where)
	}
	ti := f.queue[0]
	f.queue = f.queue[1:]
	if ti.err != nil {
		return nil, fmt.Errorf("%s: %w", where, ti.err)
	}
	return append(in, ti.img, ti.txt), nil
}

// release frees the teacher embeddings args added, once the step ran.
func (f *teacherFeed) release(args []any) {
	if f.cache == nil || len(args) < 2 {
		return
	}
	for _, a := range args[len(args)-2:] {
		if x, ok := a.(*tensors.Tensor); ok {
			_ = x.FinalizeAll()
		}
	}
}
