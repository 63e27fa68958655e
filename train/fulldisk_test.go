//go:build linux

package train

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fullDiskEnv carries "RUN_DIR:LIMIT_BYTES" to the child of
// TestFullDiskDuringCheckpoint.
const fullDiskEnv = "QATCLIP_TRAIN_FULLDISK_CHILD"

// TestTrainFullDiskChild resumes the run with the process's file size limit
// (RLIMIT_FSIZE) set below a checkpoint's size, so writing the next
// checkpoint fails as it would on a full disk (the Go runtime ignores
// SIGXFSZ, so the write returns EFBIG).
func TestTrainFullDiskChild(t *testing.T) {
	env := os.Getenv(fullDiskEnv)
	if env == "" {
		t.Skip("helper process of TestFullDiskDuringCheckpoint")
	}
	dir, limitStr, _ := strings.Cut(env, ":")
	limit, err := strconv.ParseUint(limitStr, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	o := killOptions(t, dir, 0, false)
	o.Resume = true
	tr := newTrainer(t, o)
	if _, err := tr.Run(); err != nil {
		t.Fatalf("run stopped: %v", err)
	}
}

// TestFullDiskDuringCheckpoint: a checkpoint write that runs out of space
// stops the run with a clear error naming the checkpoint, the previous
// checkpoint stays intact and verifiable, and a later --resume with space
// again finishes the run.
func TestFullDiskDuringCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	o := killOptions(t, dir, 0, false)
	o.MaxSteps = 3
	first := newTrainer(t, o)
	if _, err := first.Run(); err != nil {
		t.Fatal(err)
	}
	first.Close() // releases the run lock for the child
	before, err := LatestCheckpoint(filepath.Join(dir, CheckpointsDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(before.Dir, "variables.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	limit := st.Size() / 2
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainFullDiskChild$", "-test.v")
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+dir+":"+strconv.FormatInt(limit, 10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Fatalf("the run with a %d-byte file size limit did not fail:\n%s", limit, out.String())
	}
	log := out.String()
	if !strings.Contains(log, "run stopped") || !strings.Contains(log, "file too large") {
		t.Fatalf("child did not stop with a clear write error:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "run stopped") {
			t.Logf("child: %s", strings.TrimSpace(line))
		}
	}
	if strings.Contains(log, "panic:") {
		t.Fatalf("child panicked:\n%s", log)
	}
	after, err := LatestCheckpoint(filepath.Join(dir, CheckpointsDir), nil)
	if err != nil {
		t.Fatalf("no valid checkpoint after the failed write: %v", err)
	}
	if after.Dir != before.Dir {
		t.Fatalf("newest valid checkpoint %s, want the one before the failure %s", after.Dir, before.Dir)
	}
	if _, err := VerifyCheckpoint(before.Dir); err != nil {
		t.Fatalf("previous checkpoint damaged: %v", err)
	}
	o = killOptions(t, dir, 0, false)
	o.Resume = true
	res, err := newTrainer(t, o).Run()
	if err != nil {
		t.Fatalf("resume after the disk-full failure: %v", err)
	}
	if res.Steps != 40 {
		t.Fatalf("resumed run ended at step %d, want 40", res.Steps)
	}
}
