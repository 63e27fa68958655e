package train

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// killEnv names the run folder of the child process of TestKillAndResume;
// killCacheEnv, when "1", turns train.teacher_cache on in it.
const (
	killEnv      = "QATCLIP_TRAIN_KILL_CHILD"
	killCacheEnv = "QATCLIP_TRAIN_KILL_TEACHER_CACHE"
)

// killOptions are the options of the run TestKillAndResume kills: 20
// epochs of 2 steps, a checkpoint after every step, an end-of-epoch
// callback that sleeps (child only) so the parent has time to kill; cache
// turns train.teacher_cache on.
func killOptions(t *testing.T, dir string, sleep time.Duration, cache bool) Options {
	cfg := tinyConfig()
	r := parseRecipe(t, lsqQuant+fmt.Sprintf("train:\n  teacher_cache: %v\n", cache)+`
  epochs: 20
  batch_size: 8
  optimizer: {name: adamw, lr: 1e-3, weight_decay: 0.1, quantizer_lr: 1e-3}
  schedule: {name: cosine, warmup_steps: 3}
  loss: {contrastive: 1.0, distill: {weight: 1.0, kind: features}}
  checkpoint: {every_steps: 1, keep: 3}
`)
	return Options{Recipe: r, Backend: goBackend(t), Model: randomCheckpoint(cfg, 9), Data: memData(t, cfg, 16, 8, true, 4),
		RunDir: dir, LogEvery: 1, EpochEnd: func(_ *context.Context, epoch int) (map[string]float64, error) {
			time.Sleep(sleep)
			return map[string]float64{"acc1": float64(epoch % 3)}, nil
		}}
}

// TestTrainKillChild is the child process of TestKillAndResume.
func TestTrainKillChild(t *testing.T) {
	dir := os.Getenv(killEnv)
	if dir == "" {
		t.Skip("helper process of TestKillAndResume")
	}
	tr := newTrainer(t, killOptions(t, dir, 25*time.Millisecond, os.Getenv(killCacheEnv) == "1"))
	if _, err := tr.Run(); err != nil {
		t.Fatal(err)
	}
}

// TestKillAndResume kills a training process with SIGKILL in its third
// epoch, resumes the run and checks that it ends with the weights,
// optimizer state and metrics of an uninterrupted run; with
// train.teacher_cache both runs read the teacher's embeddings from the
// cache the killed process wrote.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("teacher_cache=%v", cache), func(t *testing.T) { killAndResume(t, cache) })
	}
}

// killAndResume is TestKillAndResume with or without the teacher cache.
func killAndResume(t *testing.T, cache bool) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainKillChild$")
	cmd.Env = append(os.Environ(), killEnv+"="+dir, fmt.Sprintf("%s=%d", killCacheEnv, btoi(cache)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	target := filepath.Join(dir, CheckpointsDir, checkpointName(5))
	killed := false
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case err := <-done:
			t.Logf("child ended before the kill: %v", err)
			break wait
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("child wrote no checkpoint in 2 minutes")
		case <-time.After(2 * time.Millisecond):
			if _, err := os.Stat(target); err == nil {
				cmd.Process.Kill()
				<-done
				killed = true
				break wait
			}
		}
	}
	paths, _ := ListCheckpoints(filepath.Join(dir, CheckpointsDir))
	t.Logf("killed=%v; checkpoints at the kill: %d, newest %s", killed, len(paths), filepath.Base(paths[len(paths)-1]))

	o := killOptions(t, dir, 0, cache)
	o.Resume = true
	var log bytes.Buffer
	o.Log = &log
	tr := newTrainer(t, o)
	res, err := tr.Run()
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 40 {
		t.Fatalf("resumed run ended at step %d", res.Steps)
	}
	if cache && !strings.Contains(log.String(), "teacher cache: loaded") {
		t.Errorf("the resumed run did not load the killed run's teacher cache:\n%s", log.String())
	}
	straightDir := t.TempDir()
	ts := newTrainer(t, killOptions(t, straightDir, 0, cache))
	if _, err := ts.Run(); err != nil {
		t.Fatal(err)
	}
	want := variableValues(t, ts.Context(), ModelScope, OptimizerScope)
	got := variableValues(t, tr.Context(), ModelScope, OptimizerScope)
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s differs from the uninterrupted run", name)
		}
	}
	s1, e1 := readMetrics(t, straightDir)
	s2, e2 := readMetrics(t, dir)
	if len(s1) != len(s2) || len(e1) != len(e2) {
		t.Fatalf("metrics: %d/%d step lines, %d/%d epoch lines", len(s1), len(s2), len(e1), len(e2))
	}
	for i := range s1 {
		delete(s1[i], "images_per_s")
		delete(s2[i], "images_per_s")
		if fmt.Sprint(s1[i]) != fmt.Sprint(s2[i]) {
			t.Errorf("metrics line %d: %v vs %v", i, s1[i], s2[i])
		}
	}
}
