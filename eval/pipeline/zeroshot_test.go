package pipeline

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/qatclip/qatclip/layers/clip"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadClassNames(t *testing.T) {
	dir := t.TempDir()
	lines := writeFile(t, dir, "names.txt", "cat\r\n\n dog \nred fox\n")
	list := writeFile(t, dir, "names.json", `["cat", "dog", "red fox"]`)
	obj := writeFile(t, dir, "zs.json", `{"classes": ["cat", "dog", "red fox"], "templates": ["a {}."]}`)
	noKey := writeFile(t, dir, "nokey.json", `{"labels": ["cat"]}`)
	empty := writeFile(t, dir, "empty.txt", "\n\n")
	badJSON := writeFile(t, dir, "bad.json", `["cat", 3]`)
	want := []string{"cat", "dog", "red fox"}
	tests := []struct {
		name, spec string
		dataset    []string
		want       []string
		err        string
	}{
		{"lines", lines, nil, want, ""},
		{"json list", list, nil, want, ""},
		{"json object", obj, nil, want, ""},
		{"from dataset", FromDataset, want, want, ""},
		{"file matching dataset", lines, []string{"a", "b", "c"}, want, ""},
		{"count mismatch", lines, []string{"a", "b"}, nil, "3 names, but the ID set's label has 2 classes"},
		{"dataset without names", FromDataset, nil, nil, "the ID set has no ClassLabel names"},
		{"missing file", filepath.Join(dir, "nope.txt"), nil, nil, "nope.txt: no such file"},
		{"no classes key", noKey, nil, nil, `has no "classes" list`},
		{"empty", empty, nil, nil, "no entries"},
		{"not strings", badJSON, nil, nil, "not a JSON list of strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadClassNames(tc.spec, tc.dataset)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v, want one line containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLoadTemplates(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "t.txt", "a photo of a {}.\nart of the {}.\n")
	obj := writeFile(t, dir, "zs.json", `{"classes": ["x"], "templates": ["a {}.", "the {}!"]}`)
	noSlot := writeFile(t, dir, "bad.txt", "a photo of a {}.\na photo.\n")
	tests := []struct {
		spec string
		want []string
		err  string
	}{
		{DefaultTemplateSet, DefaultTemplates(), ""},
		{SimpleTemplateSet, []string{SimpleTemplate}, ""},
		{file, []string{"a photo of a {}.", "art of the {}."}, ""},
		{obj, []string{"a {}.", "the {}!"}, ""},
		{noSlot, nil, `template 2 "a photo." has no {}`},
		{filepath.Join(dir, "missing.txt"), nil, "missing.txt: no such file"},
	}
	for _, tc := range tests {
		got, err := LoadTemplates(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
	for _, tpl := range DefaultTemplates() {
		if !strings.Contains(tpl, "{}") {
			t.Errorf("default template %q has no {}", tpl)
		}
	}
	if got := Prompts([]string{"cat", "dog"}, []string{"a {}.", "{} and {}"}); !slices.Equal(got, []string{"a cat.", "cat and cat", "a dog.", "dog and dog"}) {
		t.Errorf("Prompts: %q", got)
	}
}

func TestClassEmbeddings(t *testing.T) {
	// Two classes, two templates, d = 2: class 0's templates point along
	// x with different lengths (mean direction x); class 1's are x and y
	// (mean direction the diagonal).
	feats := []float32{3, 0, 0.5, 0, 2, 0, 0, 5}
	w, err := ClassEmbeddings(feats, 2, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := float32(1 / math.Sqrt2)
	want := []float32{1, 0, s, s}
	for i := range want {
		if math.Abs(float64(w[i]-want[i])) > 1e-7 {
			t.Fatalf("got %v, want %v", w, want)
		}
	}
	if _, err := ClassEmbeddings([]float32{0, 0, 1, 1}, 1, 2, 2); err == nil || !strings.Contains(err.Error(), "norm 0") {
		t.Errorf("zero embedding: error %v", err)
	}
	if _, err := ClassEmbeddings([]float32{1, 0, -1, 0}, 1, 2, 2); err == nil || !strings.Contains(err.Error(), "average to zero") {
		t.Errorf("opposite embeddings: error %v", err)
	}
}

// countingEncoder returns features that are a deterministic function of
// each row's ids and counts its calls.
type countingEncoder struct {
	calls, rows int
	d           int
}

func (c *countingEncoder) TextFeatures(ids []int32, m, l, batch int) ([]float32, error) {
	c.calls++
	c.rows += m
	out := make([]float32, m*c.d)
	for i := range m {
		h := fnv.New64a()
		for _, id := range ids[i*l : (i+1)*l] {
			binary.Write(h, binary.LittleEndian, id)
		}
		s := h.Sum64()
		for j := range c.d {
			s = s*6364136223846793005 + 1442695040888963407
			out[i*c.d+j] = float32(s>>40)/float32(1<<24) - 0.5
		}
	}
	return out, nil
}

// TestHeadCache checks that the head is encoded once per (tower key,
// prompts) and read back bit for bit, and that any change of the key, the
// classes or the templates re-encodes.
func TestHeadCache(t *testing.T) {
	tok := testTokenizer(t)
	cache := t.TempDir()
	enc := &countingEncoder{d: 8}
	classes := []string{"circle", "square", "triangle"}
	tpls := []string{"a photo of a {}.", "a drawing of a {}."}
	opt := HeadOptions{Tokenizer: tok, ContextLength: 24, VocabSize: tok.VocabSize(), TowerKey: "tower-A", CacheDir: cache}
	h1, err := BuildHead(enc, classes, tpls, opt)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Cached || enc.calls == 0 || enc.rows != 6 || h1.D != 8 || len(h1.W) != 3*8 {
		t.Fatalf("first build: cached %v, %d calls, %d rows, D %d", h1.Cached, enc.calls, enc.rows, h1.D)
	}
	h2, err := BuildHead(enc, classes, tpls, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !h2.Cached || enc.rows != 6 || !slices.Equal(h1.W, h2.W) || h2.Key != h1.Key {
		t.Fatalf("second build: cached %v, %d calls, same W %v", h2.Cached, enc.calls, slices.Equal(h1.W, h2.W))
	}
	changes := []struct {
		name    string
		classes []string
		tpls    []string
		key     string
	}{
		{"tower", classes, tpls, "tower-B"},
		{"classes", []string{"circle", "square", "star"}, tpls, "tower-A"},
		{"templates", classes, tpls[:1], "tower-A"},
	}
	for _, c := range changes {
		o := opt
		o.TowerKey = c.key
		rows := enc.rows
		h, err := BuildHead(enc, c.classes, c.tpls, o)
		if err != nil {
			t.Fatal(err)
		}
		if h.Cached || enc.rows != rows+len(c.classes)*len(c.tpls) || h.Key == h1.Key {
			t.Errorf("%s changed: cached %v, rows %d -> %d", c.name, h.Cached, rows, enc.rows)
		}
	}
	// A corrupt key file is a miss, and rewriting it heals the cache.
	_, jsonPath := cachePaths(cache, h1.Key)
	if err := os.WriteFile(jsonPath, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := enc.rows
	if h, err := BuildHead(enc, classes, tpls, opt); err != nil || h.Cached || enc.rows != rows+6 {
		t.Errorf("corrupt cache: cached %v, err %v", h != nil && h.Cached, err)
	}
	if h, err := BuildHead(enc, classes, tpls, opt); err != nil || !h.Cached {
		t.Errorf("after rewrite: err %v", err)
	}
	// No tower key: never cached.
	o := opt
	o.TowerKey = ""
	rows = enc.rows
	if h, err := BuildHead(enc, classes, tpls, o); err != nil || h.Cached || enc.rows != rows+6 {
		t.Errorf("no tower key: cached %v, err %v", h != nil && h.Cached, err)
	}
}

// TestTextTowerKey checks that the key follows the text tower and the
// hook key only.
func TestTextTowerKey(t *testing.T) {
	tok := testTokenizer(t)
	cfg := tinyConfig(tok)
	ctx := randomModel(t, cfg, 1)
	k1, err := TextTowerKey(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := TextTowerKey(ctx, ""); k != k1 {
		t.Fatal("key is not stable")
	}
	if k, _ := TextTowerKey(ctx, "w8a8"); k == k1 {
		t.Error("hook key does not change the key")
	}
	bump := func(name string) {
		p, _ := clip.ParamByName(cfg, name)
		v := ctx.GetVariableByScopeAndName(p.Scope(ctx.Scope()), p.Var)
		old := tensors.MustCopyFlatData[float32](v.MustValue())
		old[0] += 1
		v.MustSetValue(tensors.FromFlatDataAndDimensions(old, p.Shape...))
	}
	bump("vision_model.encoder.layers.0.mlp.fc1.weight")
	if k, _ := TextTowerKey(ctx, ""); k != k1 {
		t.Error("a vision weight changed the text tower key")
	}
	bump("text_model.encoder.layers.0.mlp.fc1.weight")
	k2, _ := TextTowerKey(ctx, "")
	if k2 == k1 {
		t.Error("a text weight did not change the key")
	}
	bump("text_projection.weight")
	if k, _ := TextTowerKey(ctx, ""); k == k2 {
		t.Error("the text projection did not change the key")
	}
	// The key is relative to the model's scope.
	sub := randomModel(t, cfg, 1)
	nested := sub.In("model")
	if err := randomCheckpoint(cfg, 1).SetVariables(nested); err != nil {
		t.Fatal(err)
	}
	kn, err := TextTowerKey(nested, "")
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := TextTowerKey(randomModel(t, cfg, 1), "")
	if kn != kr {
		t.Error("the same weights under another scope give another key")
	}
}

// TestHeadTrimmedPrompts checks that cutting the prompts after the last
// end token gives the head full-length prompts give.
func TestHeadTrimmedPrompts(t *testing.T) {
	tok := testTokenizer(t)
	cfg := tinyConfig(tok)
	ctx := randomModel(t, cfg, 2)
	emb, err := clip.NewEmbedder(testBackend(t), ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	classes := []string{"circle", "square", "star"}
	tpls := []string{"a photo of a {}.", "a {}.", "a very bright photo of the {}."}
	counted := &countingText{enc: emb}
	h, err := BuildHead(counted, classes, tpls, HeadOptions{Tokenizer: tok, ContextLength: 24, VocabSize: cfg.Text.VocabSize, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(counted.lengths) < 2 {
		t.Errorf("prompts encoded at lengths %v; want several buckets", counted.lengths)
	}
	rows, err := tok.Tokenize(Prompts(classes, tpls), tokenizerOptions(24))
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Concat(rows...)
	feats, err := emb.TextFeatures(ids, len(rows), 24, 8)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ClassEmbeddings(feats, 3, 3, cfg.ProjectionDim)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := math.Abs(float64(h.W[i] - want[i])); d > 2e-6 {
			t.Fatalf("W[%d] = %v, full-length prompts give %v", i, h.W[i], want[i])
		}
	}
}

// countingText records the lengths a text encoder is called with.
type countingText struct {
	enc     TextEncoder
	lengths []int
}

func (c *countingText) TextFeatures(ids []int32, m, l, batch int) ([]float32, error) {
	c.lengths = append(c.lengths, l)
	return c.enc.TextFeatures(ids, m, l, batch)
}
