package data

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// preprocessErrStats returns the max and mean absolute difference of two equal-length slices.
func preprocessErrStats(t *testing.T, got, want []float32) (maxAbs, meanAbs float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("length %d, want %d", len(got), len(want))
	}
	sum := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		sum += d
		maxAbs = max(maxAbs, d)
	}
	return maxAbs, sum / float64(len(got))
}

func TestPreprocessGolden(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "preprocess")
	var cases struct {
		Size  int
		Mean  [3]float32
		Std   [3]float32
		Cases []struct {
			File          string
			Width, Height int
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	cfg := PreprocessConfig{Size: cases.Size, Mean: cases.Mean, Std: cases.Std}
	p, err := NewPreprocessor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ext             string
		maxTol, meanTol float64
	}{
		{"png", 0.03, 0.004},
		{"jpg", math.Inf(1), 0.02},
	} {
		ref, err := npy.ReadFile(filepath.Join(dir, "pixel_values_"+tc.ext+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := ref.Float32()
		if err != nil {
			t.Fatal(err)
		}
		per := cfg.OutputLen()
		if len(want) != per*len(cases.Cases) {
			t.Fatalf("%s reference has %d values, want %d", tc.ext, len(want), per*len(cases.Cases))
		}
		for i, c := range cases.Cases {
			t.Run(c.File+"."+tc.ext, func(t *testing.T) {
				got := make([]float32, per)
				if err := p.PreprocessFileInto(got, filepath.Join(dir, c.File+"."+tc.ext)); err != nil {
					t.Fatal(err)
				}
				mx, mean := preprocessErrStats(t, got, want[i*per:(i+1)*per])
				t.Logf("%dx%d max abs %.5f mean abs %.6f", c.Width, c.Height, mx, mean)
				if mx > tc.maxTol || mean > tc.meanTol {
					t.Errorf("max abs %.5f (limit %g), mean abs %.6f (limit %g)", mx, tc.maxTol, mean, tc.meanTol)
				}
			})
		}
	}
}
