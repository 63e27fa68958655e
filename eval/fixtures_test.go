package eval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestFixtures checks the values gen_metrics.py computed with scikit-learn
// and SciPy on the cases in testdata/metrics (ties, a single class, float64
// inputs with other settings).
func TestFixtures(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "metrics", "*", "expected.json"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no fixtures in testdata/metrics (run eval/testdata/gen_metrics.py): %v", err)
	}
	for _, path := range cases {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			exp := readExpected(t, path)
			var sets struct {
				OOD []string `json:"ood_sets"`
			}
			raw, _ := os.ReadFile(path)
			if err := json.Unmarshal(raw, &sets); err != nil {
				t.Fatal(err)
			}
			in := Input{ID: loadSplit(t, dir, "id", true)}
			if _, err := os.Stat(filepath.Join(dir, "fit_cos.npy")); err == nil {
				fit := loadSplit(t, dir, "fit", true)
				in.Fit = &fit
			}
			for _, name := range sets.OOD {
				in.OOD = append(in.OOD, OODSet{Name: name, Sims: loadSplit(t, dir, "ood_"+name, false).Sims})
			}
			opt := Options{LogitScale: exp.LogitScale, MCMTemperature: exp.MCMTemperature, ECEBins: exp.ECEBins}
			res, err := Evaluate(in, opt)
			if err != nil {
				t.Fatal(err)
			}
			compareExpected(t, flatten(res), exp.Expected)
		})
	}
}
