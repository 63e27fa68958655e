package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/data/tokenizer"
	"github.com/qatclip/qatclip/internal/npy"
)

// TextEncoder computes text features [m, D] for m rows of l token ids;
// *clip.Embedder implements it.
type TextEncoder interface {
	TextFeatures(ids []int32, m, l, batch int) ([]float32, error)
}

// Head is a zero-shot classification head: one unit-norm text embedding per
// class, the normalised mean of the class's normalised template embeddings.
type Head struct {
	// Classes and Templates are the prompts' parts, Classes in label order.
	Classes   []string
	Templates []string
	// W holds the class embeddings, row-major [len(Classes), D].
	W []float32
	D int
	// Key is the hex SHA-256 of what the head was computed from: the
	// text-tower key and the token ids of every prompt.
	Key string
	// Cached reports whether W was read from the cache.
	Cached bool
}

// HeadOptions configures [BuildHead].
type HeadOptions struct {
	// Tokenizer turns prompts into ids. Required.
	Tokenizer *tokenizer.Tokenizer
	// ContextLength is the model's max_position_embeddings; longer prompts
	// are cut to it (the last id being the end token).
	ContextLength int
	// VocabSize is the model's vocabulary size; prompts with larger ids
	// are an error (wrong tokenizer).
	VocabSize int
	// Batch is the number of prompts per text-tower call (default 256).
	Batch int
	// TowerKey identifies the text tower's weights and quantization (see
	// [TextTowerKey]). With CacheDir it keys the cache.
	TowerKey string
	// CacheDir holds cached heads; "" (or an empty TowerKey) disables the
	// cache.
	CacheDir string
}

// headCacheFormat versions the cache layout and the head computation.
const headCacheFormat = "qatclip-zeroshot-head/1"

// headKeyFile is the JSON stored beside each cached head.
type headKeyFile struct {
	Format    string   `json:"format"`
	Key       string   `json:"key"`
	TowerKey  string   `json:"tower_key"`
	Shape     []int    `json:"shape"`
	Tokens    int      `json:"tokens_per_prompt"`
	Classes   []string `json:"classes"`
	Templates []string `json:"templates"`
}

// BuildHead returns the zero-shot head for classes x templates, encoding
// the prompts with enc, or reads it from opt.CacheDir when the same text
// tower already encoded the same prompts. With CLIP's causal text mask and
// end-token pooling, the padding after a prompt's end token does not change
// its features, so prompts are encoded in length buckets (each cut to its
// longest end token rounded up to a multiple of [lengthBucket]) rather than
// at the model's full context length: ImageNet's 80 templates average 10
// tokens of 77.
func BuildHead(enc TextEncoder, classes, templates []string, opt HeadOptions) (*Head, error) {
	if err := CheckClassNames(classes); err != nil {
		return nil, err
	}
	if len(templates) == 0 {
		return nil, errors.New("zero-shot head: no templates")
	}
	if opt.Tokenizer == nil {
		return nil, errors.New("zero-shot head: no tokenizer")
	}
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	ids, l, lens, err := tokenizePrompts(Prompts(classes, templates), opt)
	if err != nil {
		return nil, err
	}
	c, t := len(classes), len(templates)
	h := &Head{Classes: classes, Templates: templates, Key: headKey(opt.TowerKey, ids, c*t, l)}
	useCache := opt.CacheDir != "" && opt.TowerKey != ""
	if useCache {
		if w, d, ok := readCachedHead(opt.CacheDir, h.Key, c); ok {
			h.W, h.D, h.Cached = w, d, true
			return h, nil
		}
	}
	feats, d, err := encodeBucketed(enc, ids, l, lens, opt.Batch)
	if err != nil {
		return nil, err
	}
	h.D = d
	if h.W, err = ClassEmbeddings(feats, c, t, h.D); err != nil {
		return nil, err
	}
	if useCache {
		kf := headKeyFile{Format: headCacheFormat, Key: h.Key, TowerKey: opt.TowerKey, Shape: []int{c, h.D},
			Tokens: l, Classes: classes, Templates: templates}
		if err := writeCachedHead(opt.CacheDir, kf, h.W); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ClassEmbeddings averages template embeddings into class embeddings:
// feats holds classes*templates rows of d values, class-major; each row is
// L2-normalised, the rows of a class are averaged and the mean is
// normalised again (sums in float64). A zero row is an error.
func ClassEmbeddings(feats []float32, classes, templates, d int) ([]float32, error) {
	if len(feats) != classes*templates*d {
		return nil, fmt.Errorf("zero-shot head: %d values, want %d classes x %d templates x %d", len(feats), classes, templates, d)
	}
	w := make([]float32, classes*d)
	acc := make([]float64, d)
	for c := range classes {
		clear(acc)
		for t := range templates {
			row := feats[(c*templates+t)*d : (c*templates+t+1)*d]
			var n float64
			for _, v := range row {
				n += float64(v) * float64(v)
			}
			n = math.Sqrt(n)
			if !(n > 0) || math.IsInf(n, 0) {
				return nil, fmt.Errorf("zero-shot head: class %d template %d has a text embedding of norm %v", c, t, n)
			}
			for i, v := range row {
				acc[i] += float64(v) / n
			}
		}
		var n float64
		for _, v := range acc {
			n += v * v
		}
		n = math.Sqrt(n)
		if !(n > 0) {
			return nil, fmt.Errorf("zero-shot head: class %d's template embeddings average to zero", c)
		}
		for i, v := range acc {
			w[c*d+i] = float32(v / n)
		}
	}
	return w, nil
}

// lengthBucket is the granularity of the prompt lengths encoded together:
// few distinct lengths keep the compiled graphs few.
const lengthBucket = 4

// encodeBucketed encodes the prompts ids [m, l], whose lengths up to and
// including the end token are lens, grouped by length bucket, and returns
// their features [m, d] in prompt order.
func encodeBucketed(enc TextEncoder, ids []int32, l int, lens []int, batch int) ([]float32, int, error) {
	m := len(lens)
	buckets := map[int][]int{}
	for i, n := range lens {
		b := min(l, (n+lengthBucket-1)/lengthBucket*lengthBucket)
		buckets[b] = append(buckets[b], i)
	}
	keys := make([]int, 0, len(buckets))
	for k := range buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []float32
	d := 0
	for _, bl := range keys {
		rows := buckets[bl]
		sub := make([]int32, len(rows)*bl)
		for k, r := range rows {
			copy(sub[k*bl:(k+1)*bl], ids[r*l:r*l+bl])
		}
		f, err := enc.TextFeatures(sub, len(rows), bl, batch)
		if err != nil {
			return nil, 0, fmt.Errorf("zero-shot head: %w", err)
		}
		if len(f) == 0 || len(f)%len(rows) != 0 || (d != 0 && len(f) != len(rows)*d) {
			return nil, 0, fmt.Errorf("zero-shot head: text encoder returned %d values for %d prompts", len(f), len(rows))
		}
		if d == 0 {
			d = len(f) / len(rows)
			out = make([]float32, m*d)
		}
		for k, r := range rows {
			copy(out[r*d:(r+1)*d], f[k*d:(k+1)*d])
		}
	}
	return out, d, nil
}

// tokenizePrompts returns the prompts' ids [len(prompts), l], l being one
// past the latest end token of any prompt, and each prompt's length up to
// and including its end token.
func tokenizePrompts(prompts []string, opt HeadOptions) ([]int32, int, []int, error) {
	ctxLen := opt.ContextLength
	if ctxLen <= 0 {
		ctxLen = tokenizer.DefaultContextLength
	}
	rows, err := opt.Tokenizer.Tokenize(prompts, tokenizer.Options{ContextLength: ctxLen, Truncate: true})
	if err != nil {
		return nil, 0, nil, fmt.Errorf("zero-shot head: %w", err)
	}
	eot := int32(opt.Tokenizer.EndID())
	l := 1
	lens := make([]int, len(rows))
	for i, r := range rows {
		p := slices.Index(r, eot)
		if p < 0 {
			return nil, 0, nil, fmt.Errorf("zero-shot head: prompt %q has no end token", prompts[i])
		}
		lens[i] = p + 1
		l = max(l, p+1)
	}
	ids := make([]int32, 0, len(rows)*l)
	for i, r := range rows {
		for _, id := range r[:l] {
			if opt.VocabSize > 0 && int(id) >= opt.VocabSize {
				return nil, 0, nil, fmt.Errorf("zero-shot head: prompt %q tokenizes to id %d, outside the model's vocabulary of %d (wrong tokenizer?)", prompts[i], id, opt.VocabSize)
			}
		}
		ids = append(ids, r[:l]...)
	}
	return ids, l, lens, nil
}

// headKey hashes the tower key and the prompt ids.
func headKey(towerKey string, ids []int32, m, l int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d %d\n", headCacheFormat, towerKey, m, l)
	b := make([]byte, 4*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// cachePaths returns the .npy and .json paths of a head key.
func cachePaths(dir, key string) (string, string) {
	base := filepath.Join(dir, "zeroshot-head-"+key[:24])
	return base + ".npy", base + ".json"
}

// readCachedHead returns the cached head of key, if a valid one exists.
// Anything unreadable or inconsistent counts as a miss.
func readCachedHead(dir, key string, classes int) ([]float32, int, bool) {
	npyPath, jsonPath := cachePaths(dir, key)
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, 0, false
	}
	var kf headKeyFile
	if json.Unmarshal(b, &kf) != nil || kf.Format != headCacheFormat || kf.Key != key || len(kf.Shape) != 2 || kf.Shape[0] != classes {
		return nil, 0, false
	}
	a, err := npy.ReadFile(npyPath)
	if err != nil || !slices.Equal(a.Shape, kf.Shape) {
		return nil, 0, false
	}
	w, ok := a.Data.([]float32)
	if !ok {
		return nil, 0, false
	}
	return w, kf.Shape[1], true
}

// writeCachedHead stores a head: the .npy first, then the key file that
// makes it valid, each through a temporary file renamed into place.
func writeCachedHead(dir string, kf headKeyFile, w []float32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	npyPath, jsonPath := cachePaths(dir, kf.Key)
	tmp := npyPath + ".tmp"
	if err := npy.WriteFile(tmp, npy.Array{Shape: kf.Shape, Data: w}); err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	if err := os.Rename(tmp, npyPath); err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	b, err := json.MarshalIndent(kf, "", " ")
	if err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	if err := os.WriteFile(jsonPath+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	if err := os.Rename(jsonPath+".tmp", jsonPath); err != nil {
		return fmt.Errorf("zero-shot head cache: %w", err)
	}
	return nil
}

// DefaultCacheDir returns $XDG_CACHE_HOME/qatclip (or the OS user cache
// folder's qatclip), or "" when none is known.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "qatclip")
}

// TextTowerKey returns the hex SHA-256 of the text tower's state in ctx:
// every variable under the text_model.* and text_projection scopes below
// ctx's scope (weights and quantizer state, sorted by scope and name, with
// dtype and shape) and hookKey, which must identify the quantization plan
// (the same variables under another recipe give other features). A head
// built under one key is valid for any model with the same key.
func TextTowerKey(ctx *context.Context, hookKey string) (string, error) {
	root := ctx.Scope()
	if !strings.HasSuffix(root, context.ScopeSeparator) {
		root += context.ScopeSeparator
	}
	var vars []*context.Variable
	for v := range ctx.IterVariablesInScope() {
		rel := strings.TrimPrefix(v.Scope(), root)
		top, _, _ := strings.Cut(rel, context.ScopeSeparator)
		if strings.HasPrefix(top, "text_model") || top == "text_projection" {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return "", fmt.Errorf("text tower key: no text_model variables under scope %q", ctx.Scope())
	}
	slices.SortFunc(vars, func(a, b *context.Variable) int { return strings.Compare(a.ScopeAndName(), b.ScopeAndName()) })
	h := sha256.New()
	fmt.Fprintf(h, "qatclip-text-tower/1\nhook %q\n", hookKey)
	for _, v := range vars {
		if err := hashVariable(h, root, v); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashVariable writes a variable's relative name, dtype, shape and bytes.
func hashVariable(h hash.Hash, root string, v *context.Variable) error {
	t, err := v.Value()
	if err != nil {
		return fmt.Errorf("text tower key: %s: %w", v.ScopeAndName(), err)
	}
	fmt.Fprintf(h, "%s %s %v\n", strings.TrimPrefix(v.ScopeAndName(), root), t.DType(), t.Shape().Dimensions)
	return t.ConstBytes(func(b []byte) { h.Write(b) })
}
