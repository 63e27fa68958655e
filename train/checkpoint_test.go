package train

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/recipes"
)

// checkpointContext returns a context with variables of several dtypes.
func checkpointContext(scale float32) *context.Context {
	ctx := context.New().Checked(false)
	ctx.In(ModelScope).In("layer").VariableWithValue("weight", [][]float32{{1 * scale, 2}, {3, 4}})
	ctx.In(ModelScope).VariableWithValue("logit_scale", 2.5*scale).SetTrainable(true)
	ctx.In(OptimizerScope).VariableWithValue("count", []int64{7, 8}).SetTrainable(false)
	ctx.VariableWithValue("rng", []uint64{1 << 60, 3}).SetTrainable(false)
	ctx.In(TeacherScope).VariableWithValue("weight", []float32{9})
	return ctx
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := checkpointContext(1)
	path, err := SaveCheckpoint(src, dir, Manifest{Step: 12, Epoch: 1, Batch: 3, Eval: map[string]float64{"acc1": 0.5}}, keepInCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "step-00000012" {
		t.Errorf("checkpoint folder %s", path)
	}
	dst := checkpointContext(0) // same variables, other values
	m, err := LoadCheckpoint(dst, path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Step != 12 || m.Epoch != 1 || m.Batch != 3 || m.Eval["acc1"] != 0.5 || len(m.Variables) != 4 {
		t.Errorf("manifest %+v", m)
	}
	for _, name := range []string{"/model/layer/weight", "/model/logit_scale", "/optimizer/count", "/rng"} {
		scope, vname := context.SplitScope(name)
		a, b := src.GetVariableByScopeAndName(scope, vname), dst.GetVariableByScopeAndName(scope, vname)
		av, _ := a.Value()
		bv, _ := b.Value()
		if av.String() != bv.String() {
			t.Errorf("%s: loaded %s, saved %s", name, bv, av)
		}
	}
	// The teacher is not saved: dst keeps its own.
	tv, _ := dst.GetVariableByScopeAndName("/"+TeacherScope, "weight").Value()
	if tensors.MustCopyFlatData[float32](tv)[0] != 9 {
		t.Error("teacher changed")
	}
	// Loading into an empty context creates the variables.
	fresh := context.New()
	if _, err := LoadCheckpoint(fresh, path); err != nil {
		t.Fatal(err)
	}
	if v := fresh.GetVariableByScopeAndName("/model", "logit_scale"); v == nil || !v.Trainable {
		t.Errorf("logit_scale not recreated as trainable: %v", v)
	}
	if v := fresh.GetVariableByScopeAndName("/optimizer", "count"); v == nil || v.Trainable {
		t.Errorf("optimizer state not recreated as non-trainable: %v", v)
	}
	// A shape mismatch is an error naming the variable.
	bad := context.New().Checked(false)
	bad.In(ModelScope).In("layer").VariableWithValue("weight", []float32{1, 2, 3})
	if _, err := LoadCheckpoint(bad, path); err == nil || !strings.Contains(err.Error(), "/model/layer/weight") {
		t.Errorf("shape mismatch: %v", err)
	}
}

func TestCorruptCheckpointFallsBack(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, VariablesFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}},
		{"truncated", func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, VariablesFile), 10)
		}},
		{"no manifest", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ManifestFile))
		}},
		{"bad manifest", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte("{"), 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := checkpointContext(1)
			older, err := SaveCheckpoint(ctx, dir, Manifest{Step: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			newer, err := SaveCheckpoint(ctx, dir, Manifest{Step: 2}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.corrupt(t, newer)
			var warn bytes.Buffer
			info, err := LatestCheckpoint(dir, &warn)
			if err != nil {
				t.Fatal(err)
			}
			if info == nil || info.Dir != older {
				t.Fatalf("latest valid checkpoint %+v, want %s", info, older)
			}
			if !strings.Contains(warn.String(), "warning: skipping checkpoint") || !strings.Contains(warn.String(), newer) {
				t.Errorf("warning %q", warn.String())
			}
			if _, err := LoadCheckpoint(context.New(), newer); err == nil {
				t.Error("loading the corrupt checkpoint succeeded")
			}
		})
	}
}

// TestResumeSkipsCorruptCheckpoint resumes a run whose newest checkpoint
// is corrupt: it continues from the previous one and ends as the
// uninterrupted run does.
func TestResumeSkipsCorruptCheckpoint(t *testing.T) {
	cfg := tinyConfig()
	be := goBackend(t)
	r := parseRecipe(t, resumeRecipe(t))
	opts := func(dir string) Options {
		return Options{Recipe: r, Backend: be, Model: randomCheckpoint(cfg, 6), Data: memData(t, cfg, 16, 4, true, 8), RunDir: dir}
	}
	straight := t.TempDir()
	tr := newTrainer(t, opts(straight))
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	want := variableValues(t, tr.Context(), ModelScope)

	dir := t.TempDir()
	o := opts(dir)
	o.MaxSteps = 7
	tr1 := newTrainer(t, o)
	if _, err := tr1.Run(); err != nil {
		t.Fatal(err)
	}
	tr1.Close()
	ck := filepath.Join(dir, CheckpointsDir)
	os.Truncate(filepath.Join(ck, "step-00000006", VariablesFile), 100)
	// A temporary folder left by a crash during a checkpoint write.
	os.MkdirAll(filepath.Join(ck, ".tmp-step-00000007-123"), 0o755)
	o = opts(dir)
	o.Resume = true
	var log bytes.Buffer
	o.Log = &log
	tr2 := newTrainer(t, o)
	if _, err := tr2.Run(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "warning: skipping checkpoint") || !strings.Contains(log.String(), "step-00000004") {
		t.Errorf("log: %s", log.String())
	}
	got := variableValues(t, tr2.Context(), ModelScope)
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s differs", name)
		}
	}
	if _, err := os.Stat(filepath.Join(ck, ".tmp-step-00000007-123")); !os.IsNotExist(err) {
		t.Error("stale temporary checkpoint folder not removed")
	}
}

func TestPruneCheckpoints(t *testing.T) {
	dir := t.TempDir()
	ctx := checkpointContext(1)
	evals := []map[string]float64{nil, {"acc1": 0.9, "ts_ece": 0.2}, nil, {"acc1": 0.5, "ts_ece": 0.1}, nil, nil}
	for i, e := range evals {
		if _, err := SaveCheckpoint(ctx, dir, Manifest{Step: i + 1, Eval: e}, nil); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() []string {
		paths, _ := ListCheckpoints(dir)
		var names []string
		for _, p := range paths {
			names = append(names, filepath.Base(p))
		}
		return names
	}
	ts, _ := recipes.ParseMetric("acc1")
	best, err := PruneCheckpoints(dir, 3, ts, "max")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"step-00000002", "step-00000004", "step-00000005", "step-00000006"}
	if got := snapshot(); !slices.Equal(got, want) || filepath.Base(best) != "step-00000002" {
		t.Errorf("kept %v best %s, want %v best step-00000002", got, best, want)
	}
	// acc1 - 10*ts_ece: step 2 scores -1.1, step 4 scores -0.5 (best).
	ts, _ = recipes.ParseMetric("acc1 - 10*ts_ece")
	best, err = PruneCheckpoints(dir, 1, ts, "max")
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshot(); !slices.Equal(got, []string{"step-00000004", "step-00000006"}) || filepath.Base(best) != "step-00000004" {
		t.Errorf("kept %v best %s", got, best)
	}
}
