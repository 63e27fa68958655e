package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/recipes"
)

// runRecipe runs `qatclip recipe args...` and returns stdout, stderr and
// the error.
func runRecipe(t *testing.T, args ...string) (stdout, stderr string, err error) {
	return execSeparate(t, newRecipeCmd, args...)
}

func TestRecipeValidateShipped(t *testing.T) {
	dir := filepath.Join(testutil.RepoRoot(t), "recipes")
	var files []string
	for _, name := range recipes.Shipped() {
		files = append(files, filepath.Join(dir, name))
	}
	out, errOut, err := runRecipe(t, append([]string{"validate"}, files...)...)
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, errOut)
	}
	for _, f := range files {
		if !strings.Contains(out, "ok "+f+"\n") {
			t.Errorf("output lacks %q:\n%s", "ok "+f, out)
		}
	}
}

func TestRecipeValidateBad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("name: good\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("name: bad\nquantization:\n  default:\n    weights: {bits: 12}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runRecipe(t, "validate", good, bad)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 recipes invalid") {
		t.Errorf("err = %v, want 1 of 2 invalid", err)
	}
	if out != "ok "+good+"\n" {
		t.Errorf("stdout = %q", out)
	}
	want := bad + ":4: quantization.default.weights.bits: 12 "
	if !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
}

func TestRecipeValidateAgainstModel(t *testing.T) {
	tiny := testutil.SharedPath(t, "golden", "clip-tiny")
	f := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(f, []byte("quantization:\n  ignore: [visual_projectoin]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Without a model the typo cannot be seen; with one it is an error.
	if _, errOut, err := runRecipe(t, "validate", f); err != nil {
		t.Fatalf("validate without model: %v %s", err, errOut)
	}
	_, errOut, err := runRecipe(t, "validate", "--model", tiny, f)
	if err == nil || !strings.Contains(errOut, f+":2: quantization.ignore[0]: \"visual_projectoin\" matches no layer") {
		t.Errorf("err %v, stderr %q", err, errOut)
	}
}

func TestRecipeShowClipTiny(t *testing.T) {
	tiny := testutil.SharedPath(t, "golden", "clip-tiny")
	out, errOut, err := runRecipe(t, "show", filepath.Join(testutil.RepoRoot(t), "recipes", "w4a8-lsq.yaml"), "--model", tiny)
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errOut)
	}
	cfg, err := clip.LoadConfig(filepath.Join(tiny, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	linears := clip.LinearModules(cfg)
	if len(linears) != 27 {
		t.Fatalf("clip-tiny has %d Linears, want 27", len(linears))
	}
	for _, name := range linears {
		row, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("no row for %s:\n%s", name, out)
		case strings.Contains(name, "embeddings") || strings.HasSuffix(name, "_projection"):
			if !strings.HasPrefix(row, "float: ignored by") || !strings.HasSuffix(row, " -") {
				t.Errorf("%s: %q, want float", name, row)
			}
		case strings.HasPrefix(name, "text_model."):
			if row != "lsq int8 sym per-channel lsq uint8 asym per-tensor" {
				t.Errorf("%s: %q", name, row)
			}
		default:
			if row != "lsq int4 sym per-channel lsq uint8 asym per-tensor" {
				t.Errorf("%s: %q", name, row)
			}
		}
	}
	if !strings.Contains(out, "24 of 27 Linear layers quantized") {
		t.Errorf("summary missing:\n%s", out)
	}
}

func TestRecipeShowEmbeddedAndSet(t *testing.T) {
	tiny := testutil.SharedPath(t, "golden", "clip-tiny")
	out, errOut, err := runRecipe(t, "show", "w8a8-int-attention", "--model", tiny, "--set", "quantization.default.activations.bits=6")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		"<embedded>/w8a8-int-attention.yaml",
		"vision_model.encoder.layers.1.self_attn (q, k, probs, v)",
		"minmax uint6 asym per-tensor ema=0.9",
		"4 of 4 attention modules with quantized matmuls",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRecipeShowErrors(t *testing.T) {
	tiny := testutil.SharedPath(t, "golden", "clip-tiny")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"show", "no-such-recipe.yaml"}, "read recipe:"},
		{[]string{"show", "w4a8-lsq", "--model", filepath.Join(t.TempDir(), "missing")}, "model "},
		{[]string{"show", "w4a8-lsq", "--model", tiny, "--set", "quantization.targets=[\"re:.*fc9$\"]"},
			"--set quantization.targets=[\"re:.*fc9$\"]: quantization.targets[0]: \"re:.*fc9$\" matches no layer"},
	}
	for _, tc := range tests {
		_, _, err := runRecipe(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}
