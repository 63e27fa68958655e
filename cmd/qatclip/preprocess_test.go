package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// runPreprocessCmd runs `qatclip preprocess args...` and returns the error.
func runPreprocessCmd(t *testing.T, args ...string) error {
	_, err := execCombined(t, newPreprocessCmd, args...)
	return err
}

// readPreprocessNpy reads a float32 .npy written by the command.
func readPreprocessNpy(t *testing.T, path string) ([]float32, []int) {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := a.Data.([]float32)
	if !ok {
		t.Fatalf("%s holds %T, want float32", path, a.Data)
	}
	return v, a.Shape
}

// preprocessAbsErr returns the max and mean absolute difference.
func preprocessAbsErr(got, want []float32) (maxAbs, meanAbs float64) {
	sum := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		sum += d
		maxAbs = max(maxAbs, d)
	}
	return maxAbs, sum / float64(len(got))
}

// TestPreprocessCmdGolden runs the command on the shared golden images and
// checks the tolerances (PNG: max 0.03, mean 0.004; JPEG: mean
// 0.02).
func TestPreprocessCmdGolden(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "preprocess")
	var cases struct {
		Size  int
		Cases []struct{ File string }
	}
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ext             string
		maxTol, meanTol float64
	}{{"png", 0.03, 0.004}, {"jpg", math.Inf(1), 0.02}} {
		var files []string
		for _, c := range cases.Cases {
			files = append(files, filepath.Join(dir, c.File+"."+tc.ext))
		}
		out := filepath.Join(t.TempDir(), "pixels.npy")
		args := append([]string{"--size", "224", "--out", out}, files...)
		if err := runPreprocessCmd(t, args...); err != nil {
			t.Fatal(err)
		}
		got, shape := readPreprocessNpy(t, out)
		want, wantShape := readPreprocessNpy(t, filepath.Join(dir, "pixel_values_"+tc.ext+".npy"))
		if len(shape) != 4 || len(wantShape) != 4 || shape[0] != len(files) || shape[1] != 3 || shape[2] != 224 || shape[3] != 224 || len(got) != len(want) {
			t.Fatalf("%s: shape %v, reference %v", tc.ext, shape, wantShape)
		}
		per := 3 * 224 * 224
		for i := range files {
			mx, mean := preprocessAbsErr(got[i*per:(i+1)*per], want[i*per:(i+1)*per])
			t.Logf("%s: max abs %.5f mean abs %.6f", filepath.Base(files[i]), mx, mean)
			if mx > tc.maxTol || mean > tc.meanTol {
				t.Errorf("%s: max abs %.5f (limit %g), mean abs %.6f (limit %g)", files[i], mx, tc.maxTol, mean, tc.meanTol)
			}
		}
	}
}

// TestPreprocessCmdFixtures uses the committed fixtures and Pillow
// references of package data, so it runs without the shared folder.
func TestPreprocessCmdFixtures(t *testing.T) {
	fixtures := filepath.Join(testutil.RepoRoot(t), "data", "testdata", "preprocess")
	var manifest struct {
		Size  int
		Cases []struct{ File string }
	}
	b, err := os.ReadFile(filepath.Join(fixtures, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	want, _ := readPreprocessNpy(t, filepath.Join(fixtures, "ref", "pixels24.npy"))
	s := manifest.Size
	per := 3 * s * s
	// Formats whose decoding matches Pillow exactly.
	pick := map[string]bool{"fixtures/rgb.png": true, "fixtures/rgba.png": true, "fixtures/lossy.webp": true, "fixtures/palette.gif": true}
	var files []string
	var refs [][]float32
	for i, c := range manifest.Cases {
		if pick[c.File] {
			files = append(files, filepath.Join(fixtures, c.File))
			refs = append(refs, want[i*per:(i+1)*per])
		}
	}
	if len(files) != len(pick) {
		t.Fatalf("found %d of the %d fixtures", len(files), len(pick))
	}
	dir := t.TempDir()
	chw := filepath.Join(dir, "chw.npy")
	if err := runPreprocessCmd(t, append([]string{"--size", strconv.Itoa(s), "--out", chw, "--workers", "2"}, files...)...); err != nil {
		t.Fatal(err)
	}
	got, shape := readPreprocessNpy(t, chw)
	if len(shape) != 4 || shape[0] != len(files) || shape[1] != 3 || shape[2] != s || shape[3] != s {
		t.Fatalf("shape %v, want [%d 3 %d %d]", shape, len(files), s, s)
	}
	for i := range files {
		if mx, _ := preprocessAbsErr(got[i*per:(i+1)*per], refs[i]); mx > 1e-6 {
			t.Errorf("%s: max abs %g from Pillow's", files[i], mx)
		}
	}
	hwc := filepath.Join(dir, "hwc.npy")
	if err := runPreprocessCmd(t, append([]string{"--size", strconv.Itoa(s), "--out", hwc, "--layout", "hwc"}, files...)...); err != nil {
		t.Fatal(err)
	}
	gotHWC, shape := readPreprocessNpy(t, hwc)
	if len(shape) != 4 || shape[1] != s || shape[3] != 3 {
		t.Fatalf("hwc shape %v", shape)
	}
	for n := range files {
		for c := range 3 {
			for i := range s * s {
				if gotHWC[n*per+3*i+c] != got[n*per+c*s*s+i] {
					t.Fatalf("image %d channel %d pixel %d: hwc %v, chw %v", n, c, i, gotHWC[n*per+3*i+c], got[n*per+c*s*s+i])
				}
			}
		}
	}
}

// TestPreprocessCmdErrors checks that bad input gives one clear line naming
// the file or flag.
func TestPreprocessCmdErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(testutil.RepoRoot(t), "data", "testdata", "preprocess", "fixtures", "rgb.png")
	corrupt := filepath.Join(dir, "corrupt.jpg")
	if err := os.WriteFile(corrupt, []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.png")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, raw[:len(raw)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.npy")
	missing := filepath.Join(dir, "missing.png")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no out", []string{good}, []string{"--out is required"}},
		{"no images", []string{"--out", out}, []string{"no images"}},
		{"missing file", []string{"--out", out, good, missing}, []string{missing, "no such file"}},
		{"corrupt", []string{"--out", out, corrupt}, []string{corrupt, "decode jpeg"}},
		{"truncated", []string{"--out", out, truncated}, []string{truncated, "decode png"}},
		{"unsupported", []string{"--out", out, text}, []string{text, "unsupported image format"}},
		{"bad size", []string{"--out", out, "--size", "0", good}, []string{"--size", "size 0"}},
		{"bad layout", []string{"--out", out, "--layout", "xyz", good}, []string{"--layout", "xyz"}},
		{"bad out dir", []string{"--out", filepath.Join(dir, "nodir", "x.npy"), good}, []string{"write", "nodir"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := runPreprocessCmd(t, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s written despite errors", out)
	}
}
