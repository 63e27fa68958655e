package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/data"
	"github.com/qatclip/qatclip/internal/testutil"
)

// runData runs `qatclip data args...` and returns its output.
func runData(t *testing.T, args ...string) (string, error) {
	return execCombined(t, newDataCmd, args...)
}

func TestDataSynthInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shapes")
	out, err := runData(t, "synth", "--kind", "shapes", "--out", dir, "--n", "24", "--size", "32", "--seed", "5")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "train: 24 rows") || !strings.Contains(out, "test: 6 rows") || !strings.Contains(out, "ood: 6 rows") {
		t.Errorf("synth output:\n%s", out)
	}
	thumbs := filepath.Join(t.TempDir(), "thumbs")
	out, err = runData(t, "inspect", dir, "--split", "test", "--out", thumbs, "--n", "4")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"split: test", "rows: 6 in 1 shard(s)",
		"image: struct<bytes: binary, path: utf8>  [Image]  <- image",
		"caption: utf8  [Value string]  <- text",
		"label: int64  [ClassLabel, 5 names]  <- label",
		"class names (5): circle, square, triangle, star, diamond",
		"images: 6 inline (png 6;", "captions: 6 non-empty", "wrote 4 thumbnail(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	files, _ := filepath.Glob(filepath.Join(thumbs, "*.png"))
	if len(files) != 4 {
		t.Errorf("thumbnails: %v", files)
	}
	if _, err := runData(t, "synth", "--kind", "faces", "--out", dir); err == nil || !strings.Contains(err.Error(), "only shapes") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := runData(t, "synth", "--kind", "shapes", "--out", t.TempDir(), "--n", "4", "--difficulty", "medium"); err == nil ||
		!strings.Contains(err.Error(), `difficulty "medium"`) {
		t.Errorf("unknown difficulty: %v", err)
	}
	easy := filepath.Join(t.TempDir(), "easy")
	if _, err := runData(t, "synth", "--kind", "shapes", "--out", easy, "--n", "8", "--size", "32", "--difficulty", "easy"); err != nil {
		t.Errorf("easy: %v", err)
	}
}

func TestDataBuildInspect(t *testing.T) {
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "images")
	for i, class := range []string{"black", "white"} {
		os.MkdirAll(filepath.Join(imgs, class), 0o755)
		img := image.NewGray(image.Rect(0, 0, 300, 200))
		for p := range img.Pix {
			img.Pix[p] = uint8(255 * i)
		}
		img.Set(0, 0, color.Gray{128})
		var b bytes.Buffer
		png.Encode(&b, img)
		os.WriteFile(filepath.Join(imgs, class, "a.png"), b.Bytes(), 0o644)
	}
	os.WriteFile(filepath.Join(imgs, "white", "broken.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	os.WriteFile(filepath.Join(imgs, "white", "readme.txt"), []byte("hi"), 0o644)
	out := filepath.Join(tmp, "ds")
	text, err := runData(t, "build", "--images", imgs, "--out", out, "--split", "train")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "3 rows in 1 shard(s)") || !strings.Contains(text, "classes (2): black, white") || !strings.Contains(text, "readme.txt: not a JPEG") {
		t.Errorf("build output:\n%s", text)
	}
	thumbs := filepath.Join(tmp, "thumbs")
	text, err = runData(t, "inspect", out, "--out", thumbs)
	if err != nil {
		t.Fatal(err)
	}
	// The truncated PNG is reported, not fatal.
	if !strings.Contains(text, "wrote 2 thumbnail(s)") || !strings.Contains(text, "1 example(s) could not be decoded") || !strings.Contains(text, "labels: black=1 white=2") {
		t.Errorf("inspect output:\n%s", text)
	}
	f, err := os.Open(filepath.Join(thumbs, "000-black.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 128 || cfg.Height != 85 {
		t.Errorf("thumbnail %dx%d, %v", cfg.Width, cfg.Height, err)
	}
	src, err := data.Open(out, data.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src.Close()

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build", "--images", imgs}, "--out is required"},
		{[]string{"build", "--out", filepath.Join(tmp, "x")}, "give --images DIR or --captions FILE"},
		{[]string{"build", "--images", imgs, "--out", filepath.Join(tmp, "y"), "--on-bad-record", "fail"}, "readme.txt"},
		{[]string{"build", "--images", imgs, "--out", filepath.Join(tmp, "z"), "--on-bad-record", "maybe"}, `"maybe": want skip or fail`},
		{[]string{"inspect", filepath.Join(tmp, "missing")}, "no such file"},
		{[]string{"inspect", out, "--split", "test"}, `split "test" not found (splits: train)`},
	}
	for _, tc := range tests {
		_, err := runData(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}

func TestDataInspectRealMNIST(t *testing.T) {
	dir := testutil.SharedPath(t, "data", "real", "mnist-hf")
	text, err := runData(t, "inspect", dir, "--split", "test", "--limit", "500")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "rows: 10000 in 1 shard(s)") || !strings.Contains(text, "scanned: 500 rows") || !strings.Contains(text, "class names (10): 0, 1, 2") {
		t.Errorf("inspect output:\n%s", text)
	}
	if _, err := runData(t, "inspect", dir); err == nil || !strings.Contains(err.Error(), "data-00000-of-00001.arrow listed in state.json is missing") {
		t.Errorf("train split: %v", err)
	}
}
