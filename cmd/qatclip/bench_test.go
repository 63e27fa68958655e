package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// runBenchCmd runs `qatclip bench args...` and returns stdout, stderr and
// the error.
func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	return execSeparate(t, newBenchCmd, args...)
}

// benchJSON parses the single JSON line of a bench run.
func benchJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("bad JSON %q: %v", lines[0], err)
	}
	return m
}

func TestBenchTrainTiny(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	out, errOut, err := runBenchCmd(t, "train", "--config", "tiny", "--batch", "2", "--steps", "1", "--warmup", "0",
		"--backend", "go", "--recipe", "none", "--cpuprofile", prof)
	if err != nil {
		t.Fatalf("bench train: %v\n%s", err, errOut)
	}
	m := benchJSON(t, out)
	want := map[string]any{"impl": "qatclip", "mode": "train", "config": "tiny", "quant": "none", "batch": 2.0, "steps": 1.0, "precision": "f32"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, k := range []string{"images_per_s", "step_ms_median", "cpu_ms_median", "compile_s", "peak_mem_mb", "flops_per_step", "device"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %s: %s", k, out)
		}
	}
	if !strings.Contains(errOut, "images/s") || !strings.Contains(errOut, "train") {
		t.Errorf("stderr lacks the table:\n%s", errOut)
	}
	if fi, err := filepath.Glob(prof); err != nil || len(fi) != 1 {
		t.Errorf("no CPU profile written at %s", prof)
	}
}

func TestBenchQuantTiny(t *testing.T) {
	out, errOut, err := runBenchCmd(t, "quant", "--config", "tiny", "--batch", "2", "--steps", "1", "--warmup", "0", "--rounds", "1", "--backend", "go")
	if err != nil {
		t.Fatalf("bench quant: %v\n%s", err, errOut)
	}
	m := benchJSON(t, out)
	if m["mode"] != "fakequant-cost" || m["quant"] != "w8a8" {
		t.Errorf("result %v", m)
	}
	if r, ok := m["ratio_fwd_bwd"].(float64); !ok || r <= 0 {
		t.Errorf("ratio_fwd_bwd = %v", m["ratio_fwd_bwd"])
	}
	if !strings.Contains(errOut, "fake-quant cost") {
		t.Errorf("stderr lacks the table:\n%s", errOut)
	}
}

// TestBenchBF16 runs train and embed with bf16 matmuls, and checks that
// the loader, which cannot, reports a result with an error field rather
// than failing (as bench.py reports an unsupported configuration).
func TestBenchBF16(t *testing.T) {
	for _, sub := range []string{"train", "embed", "loader"} {
		out, errOut, err := runBenchCmd(t, sub, "--precision", "bf16", "--batch", "2", "--steps", "1", "--backend", "go")
		if err != nil {
			t.Fatalf("%s: %v\n%s", sub, err, errOut)
		}
		m := benchJSON(t, out)
		e, _ := m["error"].(string)
		if m["precision"] != "bf16" || (sub == "loader") != strings.Contains(e, "bf16") {
			t.Errorf("%s: result %v", sub, m)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "name what to time"},
		{[]string{"train", "--config", "huge"}, `--config: unknown config "huge"`},
		{[]string{"embed", "--batch", "0"}, "--batch must be positive"},
		{[]string{"train", "--steps", "0"}, "--steps must be positive"},
		{[]string{"loader", "--warmup", "-1"}, "--warmup must not be negative"},
		{[]string{"train", "--precision", "f16"}, `--precision "f16"`},
		{[]string{"quant", "--rounds", "0"}, "--rounds must be positive"},
		{[]string{"train", "--recipe", "missing.yaml", "--batch", "2", "--backend", "go"}, "missing.yaml"},
		{[]string{"loader", "--recipe", "x"}, "unknown flag: --recipe"},
	}
	for _, tt := range tests {
		_, _, err := runBenchCmd(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("bench %v: error %v, want %q", tt.args, err, tt.want)
		}
	}
}
