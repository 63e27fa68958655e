package data

import (
	"bytes"
	"crypto/sha256"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hashTree returns the sha256 of every file under dir by relative path.
func hashTree(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSynthShapes(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a")
	sums, err := SynthShapesDataset(out, SynthOptions{N: 40, Size: 32, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 3 || sums[0].Rows != 40 || sums[1].Rows != 10 || sums[2].Rows != 10 {
		t.Fatalf("summaries %+v", sums)
	}
	b, err := os.ReadFile(filepath.Join(out, "dataset_dict.json"))
	if err != nil || string(b) != `{"splits": ["train", "test", "ood"]}` {
		t.Errorf("dataset_dict.json = %q, %v", b, err)
	}
	// Deterministic per seed, different across seeds.
	out2 := filepath.Join(dir, "b")
	if _, err := SynthShapesDataset(out2, SynthOptions{N: 40, Size: 32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	h1, h2 := hashTree(t, out), hashTree(t, out2)
	if len(h1) != 10 {
		t.Errorf("files: %d, want 10", len(h1))
	}
	for k, v := range h1 {
		if h2[k] != v {
			t.Errorf("%s differs between two runs with the same seed", k)
		}
	}
	out3 := filepath.Join(dir, "c")
	if _, err := SynthShapesDataset(out3, SynthOptions{N: 40, Size: 32, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	if hashTree(t, out3)["train/data-00000-of-00001.arrow"] == h1["train/data-00000-of-00001.arrow"] {
		t.Error("seeds 7 and 8 gave the same train shard")
	}

	tests := []struct {
		split   string
		rows    int
		classes []string
		bgs     []string
	}{
		{"", 40, SynthShapeNames(), synthBackgrounds(false)},
		{"test", 10, SynthShapeNames(), synthBackgrounds(false)},
		{"ood", 10, SynthOODShapeNames(), synthBackgrounds(true)},
	}
	for _, tc := range tests {
		src, err := Open(out, SourceOptions{Split: tc.split})
		if err != nil {
			t.Fatal(err)
		}
		if src.NumRows() != tc.rows || !slices.Equal(src.ClassNames(), tc.classes) {
			t.Errorf("split %q: %d rows, classes %v", tc.split, src.NumRows(), src.ClassNames())
		}
		exs, err := src.ReadRange(0, 0, tc.rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range exs {
			img, err := png.Decode(bytes.NewReader(ex.ImageBytes))
			if err != nil || img.Bounds().Dx() != 32 {
				t.Fatalf("split %q row %d: %v", tc.split, ex.Row, err)
			}
			shape := tc.classes[ex.Label]
			if !strings.Contains(ex.Caption, " "+shape+" on a ") {
				t.Errorf("caption %q does not name shape %q", ex.Caption, shape)
			}
			ok := false
			for _, bg := range tc.bgs {
				ok = ok || strings.HasSuffix(ex.Caption, " on a "+bg+" background")
			}
			if !ok {
				t.Errorf("split %q: caption %q has a background outside %v", tc.split, ex.Caption, tc.bgs)
			}
		}
		src.Close()
	}
}

// TestRenderSynthShapes checks each shape covers about its expected area
// and differs from the others.
func TestRenderSynthShapes(t *testing.T) {
	const size = 64
	area := map[string]float64{}
	for _, shape := range append(SynthShapeNames(), SynthOODShapeNames()...) {
		s := SynthSpec{Shape: shape, Color: "red", Background: "plain", CX: 32, CY: 32, Radius: 20}
		img := RenderSynth(s, size)
		n := 0
		for i := 0; i < len(img.Pix); i += 4 {
			if img.Pix[i] > 200 && img.Pix[i+1] < 100 {
				n++
			}
		}
		area[shape] = float64(n) / (20 * 20)
	}
	// Areas in units of radius^2.
	want := map[string]float64{"circle": 3.14, "square": 2.25, "triangle": 1.30, "star": 1.32, "diamond": 1.2, "hexagon": 2.6, "cross": 2.04, "ring": 2.01}
	for shape, w := range want {
		if got := area[shape]; got < w*0.85 || got > w*1.15 {
			t.Errorf("%s area %.2f r^2, want about %.2f", shape, got, w)
		}
	}
}

func TestSynthBadOptions(t *testing.T) {
	for _, o := range []SynthOptions{{N: -1}, {Size: 8}} {
		if _, err := SynthShapesDataset(filepath.Join(t.TempDir(), "x"), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
