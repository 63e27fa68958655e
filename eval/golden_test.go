package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/qatclip/qatclip/internal/npy"
	"github.com/qatclip/qatclip/internal/testutil"
)

// expectedFile is the layout of golden/metrics/expected.json and of the
// fixtures gen_metrics.py writes.
type expectedFile struct {
	LogitScale     float64            `json:"logit_scale"`
	MCMTemperature float64            `json:"mcm_temperature"`
	ECEBins        int                `json:"ece_bins"`
	Expected       map[string]float64 `json:"expected"`
}

// loadSplit reads <dir>/<name>_cos.npy and, when labels, <name>_labels.npy.
func loadSplit(t *testing.T, dir, name string, labels bool) Split {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join(dir, name+"_cos.npy"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := SimsFromArray(a)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sp := Split{Sims: s}
	if labels {
		l, err := npy.ReadFile(filepath.Join(dir, name+"_labels.npy"))
		if err != nil {
			t.Fatal(err)
		}
		if sp.Labels, err = LabelsFromArray(l); err != nil {
			t.Fatalf("%s labels: %v", name, err)
		}
	}
	return sp
}

func readExpected(t *testing.T, path string) expectedFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var e expectedFile
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return e
}

// flatten maps a result to the key names expected.json uses; OOD metrics
// are the MCM score's on the set named ood, or the mean over sets.
func flatten(r *Result) map[string]float64 {
	c := r.Classification
	m := map[string]float64{
		"acc1": c.Acc1, "acc5": c.Acc5, "nll": c.NLL, "brier": c.Brier,
		"ece": c.ECE, "mce": c.MCE, "aurc": c.AURC, "e_aurc": c.EAURC,
	}
	if r.Calibrated != nil {
		m["temperature"] = r.Calibrated.Temperature
		m["ts_ece"] = r.Calibrated.ECE
		m["ts_nll"] = r.Calibrated.NLL
	}
	if d, ok := r.OODMean[MCM.String()]; ok {
		m["auroc"], m["aupr_in"], m["aupr_out"], m["fpr95"] = d.AUROC, d.AUPRIn, d.AUPROut, d.FPR95
	}
	for _, o := range r.OOD {
		for kind, d := range o.ByScore {
			p := o.Name + "/" + kind + "/"
			m[p+"auroc"], m[p+"aupr_in"], m[p+"aupr_out"], m[p+"fpr95"] = d.AUROC, d.AUPRIn, d.AUPROut, d.FPR95
		}
	}
	return m
}

// compareExpected checks every expected value: temperature to 1e-4
// relative, everything else to 1e-6 absolute.
func compareExpected(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("%s: not computed", key)
			continue
		}
		tol := 1e-6
		if key == "temperature" {
			tol = 1e-4 * math.Abs(w)
		}
		if math.Abs(g-w) > tol {
			t.Errorf("%s = %.12g, want %.12g (diff %.3g, tolerance %.3g)", key, g, w, g-w, tol)
		}
	}
}

func TestGoldenMetrics(t *testing.T) {
	dir := testutil.SharedPath(t, "golden", "metrics")
	exp := readExpected(t, filepath.Join(dir, "expected.json"))
	id := loadSplit(t, dir, "id", true)
	fit := loadSplit(t, dir, "fit", true)
	ood := loadSplit(t, dir, "ood", false)
	opt := Options{LogitScale: exp.LogitScale, MCMTemperature: exp.MCMTemperature, ECEBins: exp.ECEBins}
	res, err := Evaluate(Input{ID: id, Fit: &fit, OOD: []OODSet{{Name: "ood", Sims: ood.Sims}}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Expected) < 13 {
		t.Fatalf("expected.json has %d values, want at least 13", len(exp.Expected))
	}
	compareExpected(t, flatten(res), exp.Expected)
}
