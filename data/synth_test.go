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

// TestSynthDifficulty checks that the default difficulty is hard (the
// same bytes as asking for hard), that easy changes only where the shapes
// are, and that an unknown difficulty is refused.
func TestSynthDifficulty(t *testing.T) {
	dir := t.TempDir()
	gen := func(name, difficulty string) map[string][32]byte {
		t.Helper()
		out := filepath.Join(dir, name)
		if _, err := SynthShapesDataset(out, SynthOptions{N: 24, Size: 16, Seed: 3, Difficulty: difficulty}); err != nil {
			t.Fatal(err)
		}
		return hashTree(t, out)
	}
	def, hard, easy := gen("default", ""), gen("hard", SynthHard), gen("easy", SynthEasy)
	for k, v := range def {
		if hard[k] != v {
			t.Errorf("%s: the default and --difficulty hard differ", k)
		}
	}
	if easy["train/data-00000-of-00001.arrow"] == hard["train/data-00000-of-00001.arrow"] {
		t.Error("easy and hard wrote the same train shard")
	}
	// The captions and labels are the same; only the images move.
	for _, split := range []string{"train", "test", "ood"} {
		a, err := Open(filepath.Join(dir, "hard"), SourceOptions{Split: split})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(filepath.Join(dir, "easy"), SourceOptions{Split: split})
		if err != nil {
			t.Fatal(err)
		}
		ea, err := a.ReadRange(0, 0, a.NumRows())
		if err != nil {
			t.Fatal(err)
		}
		eb, err := b.ReadRange(0, 0, b.NumRows())
		if err != nil {
			t.Fatal(err)
		}
		for i := range ea {
			if ea[i].Caption != eb[i].Caption || ea[i].Label != eb[i].Label {
				t.Errorf("%s row %d: hard %q/%d, easy %q/%d", split, i, ea[i].Caption, ea[i].Label, eb[i].Caption, eb[i].Label)
			}
		}
		a.Close()
		b.Close()
	}
	if _, err := SynthShapesDataset(filepath.Join(dir, "bad"), SynthOptions{N: 4, Size: 16, Difficulty: "medium"}); err == nil || !strings.Contains(err.Error(), `difficulty "medium"`) {
		t.Errorf("difficulty medium: %v", err)
	}
}

// TestSnapToGrid checks that snapped centres are grid points that keep
// the shape inside the image, the nearest such point, and that most
// shapes of a 16-pixel set still vary in place.
func TestSnapToGrid(t *testing.T) {
	cases := []struct {
		name           string
		spec           SynthSpec
		size           int
		wantCX, wantCY float64
	}{
		{"small shape goes to the nearest point", SynthSpec{CX: 5, CY: 10.5, Radius: 3.5}, 16, 4, 12},
		{"large shape is centred", SynthSpec{CX: 5, CY: 10.5, Radius: 5}, 16, 8, 8},
		{"exact fit at the edge point", SynthSpec{CX: 1, CY: 15, Radius: 4}, 16, 4, 12},
		{"halfway rounds to the lower point", SynthSpec{CX: 6, CY: 10, Radius: 3}, 16, 4, 8},
		{"larger image", SynthSpec{CX: 20, CY: 42, Radius: 7}, 64, 16, 48},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec
			s.SnapToGrid(c.size)
			if s.CX != c.wantCX || s.CY != c.wantCY {
				t.Errorf("centre (%v, %v), want (%v, %v)", s.CX, s.CY, c.wantCX, c.wantCY)
			}
		})
	}
	centres := map[[2]float64]int{}
	for i := range 400 {
		s := NewSynthSpec(1, 0, i, false, 16)
		s.SnapToGrid(16)
		if s.CX-s.Radius < 0 || s.CX+s.Radius > 16 || s.CY-s.Radius < 0 || s.CY+s.Radius > 16 {
			t.Fatalf("example %d: radius %.2f at (%v, %v) leaves the image", i, s.Radius, s.CX, s.CY)
		}
		centres[[2]float64{s.CX, s.CY}]++
	}
	if len(centres) < 5 || centres[[2]float64{8, 8}] == 400 {
		t.Errorf("snapped centres %v: want shapes at several grid points", centres)
	}
}
