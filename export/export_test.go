package export

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
	"github.com/qatclip/qatclip/train"
)

func TestPackRows(t *testing.T) {
	// compressed-tensors' worked example: 8-bit values [1, 2] are offset to
	// [129, 130], padded to four bytes and read little-endian: 33409.
	got, words, err := packRows([]int8{1, 2}, 1, 2, 8)
	if err != nil || words != 1 || got[0] != 33409 {
		t.Fatalf("pack [1 2] at 8 bits = %v (%d words, %v), want [33409]", got, words, err)
	}
	// 4 bits: -8 -> 0, 7 -> 15; eight values per word, first in the low bits.
	got, _, _ = packRows([]int8{-8, 7, 0, 0, 0, 0, 0, 0}, 1, 8, 4)
	if want := uint32(0x8888_88F0); uint32(got[0]) != want {
		t.Fatalf("pack 4-bit = %#x, want %#x", uint32(got[0]), want)
	}
	for _, bits := range []int{2, 3, 4, 5, 8} {
		lo, hi := -(1 << (bits - 1)), (1<<(bits-1))-1
		rows, cols := 3, 13
		v := make([]int8, rows*cols)
		for i := range v {
			v[i] = int8(lo + (i*7)%(hi-lo+1))
		}
		p, _, err := packRows(v, rows, cols, bits)
		if err != nil {
			t.Fatal(err)
		}
		back, err := unpackRows(p, rows, cols, bits)
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			if back[i] != int32(v[i]) {
				t.Fatalf("%d bits: value %d: %d -> %d", bits, i, v[i], back[i])
			}
		}
	}
}

// TestWriteErrors checks the one-line errors of bad exports.
func TestWriteErrors(t *testing.T) {
	b := newBackend(t)
	dir := fixtureModel(t)
	q := calibrated(t, b, dir, "w8a8-minmax-ptq.yaml")
	existing := t.TempDir()
	float := calibrated(t, b, dir, "w8a8-minmax-ptq.yaml",
		"quantization.default.weights.method=none", "quantization.default.activations.method=none")

	ck, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	fresh := context.New()
	if err := ck.SetVariables(fresh); err != nil {
		t.Fatal(err)
	}
	r, _ := recipes.Load("w8a8-minmax-ptq.yaml")
	hook, plan, _ := clip.QuantHook(r, ck.Config)
	// Build the quantizers' variables without calibrating them.
	if _, err := clip.NewEmbedder(b, fresh, ck.Config, hook); err != nil {
		t.Fatal(err)
	}
	e, _ := clip.NewEmbedder(b, fresh, ck.Config, hook)
	if _, err := e.ImageFeatures(q.in.pixels, q.in.n, 4); err != nil {
		t.Fatal(err)
	}
	uncal := Source{Config: ck.Config, Ctx: fresh, Plan: plan}

	cases := []struct {
		name string
		src  Source
		dir  string
		opts Options
		want string
	}{
		{"no quantizers", float.source(), filepath.Join(t.TempDir(), "x"), Options{}, "has no quantizers"},
		{"unknown format", q.source(), filepath.Join(t.TempDir(), "x"), Options{Format: "gguf"}, `unknown format "gguf"`},
		{"existing folder", q.source(), existing, Options{}, "already exists (pass --force"},
		{"pack with fake-quant", q.source(), filepath.Join(t.TempDir(), "x"), Options{Format: FormatFakeQuantF32, PackInt4: true}, "--pack-int4 needs format"},
		{"not calibrated", uncal, filepath.Join(t.TempDir(), "x"), Options{}, "is not calibrated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Write(c.dir, c.src, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	// --force replaces the folder.
	if err := os.WriteFile(filepath.Join(existing, "stale.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(existing, q.source(), Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(existing, "stale.txt")); !os.IsNotExist(err) {
		t.Errorf("--force kept the old folder's files")
	}
	entries, _ := os.ReadDir(filepath.Dir(existing))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary folder %s left behind", e.Name())
		}
	}
}

// TestLoadErrors checks that a damaged export fails with a clear error.
func TestLoadErrors(t *testing.T) {
	b := newBackend(t)
	q := calibrated(t, b, fixtureModel(t), "w4a8-lsq.yaml")
	out := filepath.Join(t.TempDir(), "export")
	if _, err := Write(out, q.source(), Options{}); err != nil {
		t.Fatal(err)
	}
	// The float loader points at this package instead of failing on int8.
	if _, err := clip.Load(out); err == nil || !strings.Contains(err.Error(), "quantized export") {
		t.Errorf("clip.Load of a compressed-tensors export: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), QuantFileName) {
		t.Errorf("Load of an empty folder: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, QuantFileName), []byte(`{"format":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(out); err == nil || !strings.Contains(err.Error(), `format "other"`) {
		t.Errorf("Load with a bad %s: %v", QuantFileName, err)
	}
}

// TestExportFolderContents checks the card, the tokenizer copy and the
// size report.
func TestExportFolderContents(t *testing.T) {
	b := newBackend(t)
	model := t.TempDir()
	src := fixtureModel(t)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(model, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(model, "vocab.json"), []byte(`{"a":0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	q := calibrated(t, b, model, "w4a8-lsq.yaml")
	out := filepath.Join(t.TempDir(), "export")
	rep, err := Write(out, q.source(), Options{ModelDir: model, Eval: map[string]float64{"acc1": 0.5, "ece": 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "vocab.json")); err != nil {
		t.Errorf("tokenizer file not copied: %v", err)
	}
	card, err := os.ReadFile(filepath.Join(out, CardFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"w4a8-lsq", "| acc1 | 0.5000 |", "```yaml", "vision_model.encoder.layers.0.mlp.fc1"} {
		if !strings.Contains(string(card), want) {
			t.Errorf("model card lacks %q", want)
		}
	}
	var sb strings.Builder
	if _, err := rep.WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	for _, tw := range rep.Towers {
		if tw.Tower == "vision" && !(tw.ExportBytes < tw.FloatBytes) {
			t.Errorf("vision tower: export %d bytes, float %d: 4-bit weights should shrink it", tw.ExportBytes, tw.FloatBytes)
		}
	}
	if !strings.Contains(sb.String(), "vision") || !strings.Contains(sb.String(), "total") {
		t.Errorf("size report:\n%s", sb.String())
	}
}

// TestRunFolderRoundTrip writes a run folder, reads it back, exports it and
// checks the embeddings of the run, as Open sees it, match the model's.
func TestRunFolderRoundTrip(t *testing.T) {
	b := newBackend(t)
	dir := fixtureModel(t)
	ck, err := clip.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	root := context.New()
	mctx := root.In(ModelScope)
	if err := ck.SetVariables(mctx); err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load("w8a8-minmax-ptq.yaml", "model.source="+dir)
	if err != nil {
		t.Fatal(err)
	}
	hook, _, err := clip.QuantHook(r, ck.Config)
	if err != nil {
		t.Fatal(err)
	}
	in := readInputs(t, dir)
	e, err := clip.NewEmbedder(b, mctx, ck.Config, hook)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Calibrate(in.pixels, in.n, in.ids, in.m, in.l, 4); err != nil {
		t.Fatal(err)
	}
	wantImg, wantTxt := embed(t, b, mctx, ck.Config, hook, in)

	runDir := filepath.Join(t.TempDir(), "run")
	if _, err := WriteRun(runDir, r, ck.Config, root, train.Manifest{Eval: map[string]float64{"acc1": 0.25}}); err != nil {
		t.Fatal(err)
	}
	if !IsRun(runDir) || IsExport(runDir) {
		t.Fatalf("IsRun %v, IsExport %v", IsRun(runDir), IsExport(runDir))
	}
	m, err := Open(runDir)
	if err != nil {
		t.Fatal(err)
	}
	gotImg, gotTxt := embed(t, b, m.Ctx, m.Config, m.Hook, in)
	if d := max(maxAbsDiff(gotImg, wantImg), maxAbsDiff(gotTxt, wantTxt)); d != 0 {
		t.Errorf("run folder model differs by %g", d)
	}
	run, err := LoadRun(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if run.ModelDir != dir || run.Manifest.Eval["acc1"] != 0.25 {
		t.Errorf("run: model dir %q, eval %v", run.ModelDir, run.Manifest.Eval)
	}
	out := filepath.Join(t.TempDir(), "export")
	if _, err := Write(out, run.Source(), Options{ModelDir: run.ModelDir, Eval: run.Manifest.Eval}); err != nil {
		t.Fatal(err)
	}
	x, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	gotImg, gotTxt = embed(t, b, x.Ctx, x.Config, x.Hook, in)
	if d := max(maxAbsDiff(gotImg, wantImg), maxAbsDiff(gotTxt, wantTxt)); d > 1e-5 {
		t.Errorf("export of the run differs by %g", d)
	}
	if none, err := Open(dir); err != nil || none != nil {
		t.Errorf("Open(float HF folder) = %v, %v; want nil, nil", none, err)
	}
	if !slices.Contains(r.Quantization.Targets, "*") {
		t.Fatal("unexpected recipe")
	}
}
