package train

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/data/tokenizer"
)

// distillRecipe is a distillation recipe for the teacher cache tests.
func distillRecipe(kind string, cache bool) string {
	return lsqQuant + fmt.Sprintf(`train:
  epochs: 2
  batch_size: 4
  optimizer: {name: adamw, lr: 3e-3, weight_decay: 0.1, quantizer_lr: 1e-3}
  schedule: {name: cosine, warmup_steps: 2}
  loss: {contrastive: 1.0, distill: {weight: 1.0, kind: %s, temperature: 2}}
  teacher_cache: %v
`, kind, cache)
}

// TestTeacherCacheSameLosses trains the same recipe with the teacher in
// the step and with its embeddings read from the cache: every step's
// losses agree to 1e-5 (the cached embeddings come from a separate graph,
// so they may round differently), and the cache pass ran once.
func TestTeacherCacheSameLosses(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	for _, kind := range []string{"logits", "features"} {
		t.Run(kind, func(t *testing.T) {
			dirs := map[bool]string{}
			logs := map[bool]*bytes.Buffer{}
			for _, cache := range []bool{false, true} {
				dirs[cache], logs[cache] = t.TempDir(), &bytes.Buffer{}
				tr := newTrainer(t, Options{Recipe: parseRecipe(t, distillRecipe(kind, cache)), Backend: be,
					Model: randomCheckpoint(cfg, 6), Data: memData(t, cfg, 14, 4, true, 8), RunDir: dirs[cache], LogEvery: 1, Log: logs[cache]})
				if _, err := tr.Run(); err != nil {
					t.Fatal(err)
				}
				if cache && tr.teacher == nil {
					t.Fatal("the trainer holds no teacher cache")
				}
			}
			if n := strings.Count(logs[true].String(), "teacher cache: computing"); n != 1 {
				t.Errorf("the cache pass ran %d times; log:\n%s", n, logs[true])
			}
			if strings.Contains(logs[false].String(), "teacher cache") {
				t.Errorf("a run without teacher_cache mentions it:\n%s", logs[false])
			}
			if _, err := os.Stat(filepath.Join(dirs[true], TeacherCacheDir, TeacherCacheFile)); err != nil {
				t.Error(err)
			}
			without, _ := readMetrics(t, dirs[false])
			with, _ := readMetrics(t, dirs[true])
			if len(without) != 6 || len(with) != len(without) {
				t.Fatalf("%d and %d step lines, want 6", len(without), len(with))
			}
			worst := 0.0
			for i := range without {
				for _, key := range []string{"loss", TermContrastive, TermDistill} {
					a, b := without[i][key].(float64), with[i][key].(float64)
					rel := math.Abs(a-b) / math.Max(math.Abs(a), 1e-6)
					worst = math.Max(worst, rel)
					if rel > 1e-5 {
						t.Errorf("step %d %s: %.8g without the cache, %.8g with it", i+1, key, a, b)
					}
				}
			}
			if d := without[0][TermDistill].(float64); d == 0 {
				t.Errorf("distill loss is 0 at the first step; the test needs a teacher that differs from the quantized student")
			}
			t.Logf("largest relative difference: %.3g", worst)
		})
	}
}

// TestTeacherCacheRebuild writes a cache, then reuses it, or rebuilds it
// with one log line after it was corrupted, half written, or made for
// another model or data set.
func TestTeacherCacheRebuild(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	r := parseRecipe(t, distillRecipe("features", true))
	file := func(dir string) string { return filepath.Join(dir, TeacherCacheDir, TeacherCacheFile) }
	manifest := func(dir string) string { return filepath.Join(dir, TeacherCacheDir, TeacherManifestFile) }
	for _, tc := range []struct {
		name string
		// spoil changes the run folder before the second trainer opens it.
		spoil func(t *testing.T, dir string)
		// modelSeed and dataSeed are the second trainer's.
		modelSeed, dataSeed uint64
		// log is what the second trainer's log must say.
		log string
	}{
		{name: "reused", modelSeed: 1, dataSeed: 2, log: "teacher cache: loaded the teacher's embeddings of 10 examples"},
		{name: "flipped byte", modelSeed: 1, dataSeed: 2, log: "corrupt teacher.arrow: SHA-256",
			spoil: func(t *testing.T, dir string) {
				b, err := os.ReadFile(file(dir))
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x40
				if err := os.WriteFile(file(dir), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "truncated", modelSeed: 1, dataSeed: 2, log: "corrupt teacher.arrow",
			spoil: func(t *testing.T, dir string) {
				if err := os.Truncate(file(dir), 100); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "no manifest", modelSeed: 1, dataSeed: 2, log: "teacher.arrow has no manifest",
			spoil: func(t *testing.T, dir string) {
				if err := os.Remove(manifest(dir)); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "bad manifest", modelSeed: 1, dataSeed: 2, log: "corrupt manifest.json",
			spoil: func(t *testing.T, dir string) {
				if err := os.WriteFile(manifest(dir), []byte("{\"key\": "), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "other model", modelSeed: 3, dataSeed: 2, log: "it was computed for another model"},
		{name: "other data", modelSeed: 1, dataSeed: 5, log: "it was computed for another data set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prepare := func(modelSeed, dataSeed uint64) (*teacherCache, string) {
				var log bytes.Buffer
				tr := newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, modelSeed),
					Data: memData(t, cfg, 10, 4, true, dataSeed), RunDir: dir, Log: &log})
				defer tr.Close()
				if err := tr.prepareTeacherCache(); err != nil {
					t.Fatal(err)
				}
				return tr.teacher, log.String()
			}
			first, log := prepare(1, 2)
			if !strings.Contains(log, "computing the teacher's embeddings of 10 examples") {
				t.Fatalf("first run log: %s", log)
			}
			if tc.spoil != nil {
				tc.spoil(t, dir)
			}
			second, log := prepare(tc.modelSeed, tc.dataSeed)
			if !strings.Contains(log, tc.log) {
				t.Errorf("log %q does not say %q", log, tc.log)
			}
			if n := strings.Count(log, "rebuilding"); n != btoi(tc.name != "reused") {
				t.Errorf("%d lines say rebuilding: %q", n, log)
			}
			same := slices.Equal(first.img, second.img) && slices.Equal(first.txt, second.txt)
			if other := tc.modelSeed != 1 || tc.dataSeed != 2; same == other {
				t.Errorf("cached embeddings equal to the first run's: %v, want %v", same, !other)
			}
			// The rebuilt cache is valid on disk: a third trainer loads it.
			third, log := prepare(tc.modelSeed, tc.dataSeed)
			if !strings.Contains(log, "loaded") || !slices.Equal(third.img, second.img) || !slices.Equal(third.txt, second.txt) {
				t.Errorf("third run did not load the rebuilt cache: %s", log)
			}
		})
	}
}

// btoi is 1 for true.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTeacherCacheResumeBitIdentical interrupts a distillation run with
// the teacher cache twice, the second time with the cache file corrupted
// so the resumed run rebuilds it, and checks that weights, optimizer
// state and metrics equal those of an uninterrupted run.
func TestTeacherCacheResumeBitIdentical(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	r := parseRecipe(t, resumeRecipe(t), "train.teacher_cache=true")
	opts := func(dir string) Options {
		return Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 6), Data: memData(t, cfg, 16, 4, true, 8),
			RunDir: dir, LogEvery: 1}
	}
	straight := t.TempDir()
	ts := newTrainer(t, opts(straight))
	if _, err := ts.Run(); err != nil {
		t.Fatal(err)
	}
	want := variableValues(t, ts.Context(), ModelScope, OptimizerScope)

	dir := t.TempDir()
	var last *Trainer
	for i, stop := range []int{5, 7, 0} {
		o := opts(dir)
		o.MaxSteps, o.Resume = stop, i > 0
		var log bytes.Buffer
		o.Log = &log
		if i == 2 {
			if err := os.WriteFile(filepath.Join(dir, TeacherCacheDir, TeacherCacheFile), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		last = newTrainer(t, o)
		if _, err := last.Run(); err != nil {
			t.Fatal(err)
		}
		wantLog := []string{"computing", "loaded", "rebuilding"}[i]
		if !strings.Contains(log.String(), wantLog) {
			t.Errorf("run %d: log does not say %q:\n%s", i, wantLog, log.String())
		}
		if stop > 0 {
			last.Close()
		}
	}
	got := variableValues(t, last.Context(), ModelScope, OptimizerScope)
	sameVariables(t, got, want)
	s1, _ := readMetrics(t, straight)
	s2, _ := readMetrics(t, dir)
	if len(s1) != 8 || len(s2) != len(s1) {
		t.Fatalf("metrics: %d/%d step lines", len(s1), len(s2))
	}
	for i := range s1 {
		delete(s1[i], "images_per_s")
		delete(s2[i], "images_per_s")
		if fmt.Sprint(s1[i]) != fmt.Sprint(s2[i]) {
			t.Errorf("metrics line %d: %v vs %v", i, s1[i], s2[i])
		}
	}
}

// TestTeacherCacheNeedsExampleSet checks the errors and notes of
// train.teacher_cache: data that does not number its examples is refused,
// and without distillation there is nothing to cache.
func TestTeacherCacheNeedsExampleSet(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	plain := struct{ Batches }{memData(t, cfg, 8, 4, true, 1)}
	tr := newTrainer(t, Options{Recipe: parseRecipe(t, distillRecipe("logits", true)), Backend: be,
		Model: randomCheckpoint(cfg, 1), Data: plain})
	_, err := tr.Run()
	if err == nil || !strings.Contains(err.Error(), "train.teacher_cache: the training data") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v", err)
	}

	var log bytes.Buffer
	r := parseRecipe(t, distillRecipe("logits", true), "train.loss.distill.weight=0")
	tr = newTrainer(t, Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 1), Data: plain, Log: &log})
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "nothing to cache") || tr.teacher != nil {
		t.Errorf("log: %s", log.String())
	}
}

// TestLoaderDataExamples checks LoaderData as an ExampleSet: All yields
// every row once in index order, and a shuffled epoch's example with index
// i has the pixels, ids and label that All gives for i.
func TestLoaderDataExamples(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shapes")
	if _, err := data.SynthShapesDataset(dir, data.SynthOptions{N: 23, TestN: 4, OODN: 4, Size: 16, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromMerges("test", tokenizer.LearnMerges([]string{"a red circle on a plain background"}, 20))
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig()
	cfg.Text.VocabSize, cfg.Text.BosTokenID, cfg.Text.EosTokenID = tok.VocabSize(), tok.StartID(), tok.EndID()
	r := parseRecipe(t, floatQuant+"train: {batch_size: 5, seed: 4, loss: {contrastive: 1}}\n", "train.data.path="+dir, "train.data.split=train")
	d, _, err := OpenLoaderData(r, randomCheckpoint(cfg, 1), goBackend(t), LoaderOptions{Tokenizer: tok, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var set ExampleSet = d
	if set.NumExamples() != 23 {
		t.Fatalf("%d examples, want 23", set.NumExamples())
	}
	if id, err := set.Identity(); err != nil || !strings.Contains(id, dir) {
		t.Errorf("identity %q, %v", id, err)
	}
	type example struct {
		pixels []float32
		ids    []int32
		label  int32
	}
	split := func(b Batch, j int) example {
		p, l := len(b.Pixels)/b.N, b.SeqLen()
		return example{slices.Clone(b.Pixels[j*p : (j+1)*p]), slices.Clone(b.InputIDs[j*l : (j+1)*l]), b.Labels[j]}
	}
	all := map[int]example{}
	it, err := set.All(4)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for j, i := range b.Index {
			if i != next {
				t.Fatalf("All: example %d where %d was due", i, next)
			}
			next++
			all[i] = split(b, j)
		}
	}
	it.Close()
	if len(all) != 23 {
		t.Fatalf("All yielded %d examples, want 23", len(all))
	}
	for epoch := range 2 {
		it, err := set.Epoch(epoch, 0)
		if err != nil {
			t.Fatal(err)
		}
		var order []int
		for {
			b, err := it.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for j, i := range b.Index {
				got, want := split(b, j), all[i]
				if !slices.Equal(got.pixels, want.pixels) || !slices.Equal(got.ids, want.ids) || got.label != want.label {
					t.Fatalf("epoch %d: example %d differs from All's", epoch, i)
				}
				order = append(order, i)
			}
		}
		it.Close()
		if len(order) != 20 || slices.IsSorted(order) {
			t.Errorf("epoch %d order %v: want 20 shuffled examples", epoch, order)
		}
	}

	// A distillation run over the loader with the teacher cache.
	var log bytes.Buffer
	rd := parseRecipe(t, distillRecipe("logits", true), "train.data.path="+dir, "train.batch_size=5")
	tr := newTrainer(t, Options{Recipe: rd, Backend: goBackend(t), Model: randomCheckpoint(cfg, 1), Data: d, RunDir: t.TempDir(), Log: &log})
	res, err := tr.Run()
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 8 || !strings.Contains(log.String(), "computing the teacher's embeddings of 23 examples") || tr.teacher.rows != 23 {
		t.Errorf("%d steps; log:\n%s", res.Steps, log.String())
	}
}
