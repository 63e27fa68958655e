package eval

import (
	"math"
	"testing"
)

// TestBinOf: bins are [lo, hi) with numpy.linspace edges; 1 goes to the last.
func TestBinOf(t *testing.T) {
	edges := binEdges(15)
	cases := []struct {
		p    float64
		want int
	}{
		{0, 0},
		{edges[1], 1},
		{math.Nextafter(edges[1], 0), 0},
		{edges[7], 7},
		{math.Nextafter(edges[7], 0), 6},
		{math.Nextafter(1, 0), 14},
		{edges[14], 14},
		{1, 14},
	}
	for _, c := range cases {
		if got := binOf(c.p, edges); got != c.want {
			t.Errorf("binOf(%v) = %d, want %d", c.p, got, c.want)
		}
	}
	// Every edge i/15 computed as numpy does (i * (1/15)) opens bin i.
	for i := 0; i < 15; i++ {
		if got := binOf(float64(i)*(1.0/15), edges); got != i {
			t.Errorf("edge %d: bin %d", i, got)
		}
	}
}

func TestCalibrationPerfect(t *testing.T) {
	// Confidence 0.75 with 3 of 4 right is perfectly calibrated.
	bins, ece, mce := Calibration([]float64{0.75, 0.75, 0.75, 0.75}, []bool{true, true, false, true}, 10)
	if ece != 0 || mce != 0 || bins[7].Count != 4 || bins[7].Accuracy != 0.75 {
		t.Errorf("ece %v mce %v bin %+v", ece, mce, bins[7])
	}
}

func TestRiskCoverage(t *testing.T) {
	cov, risk := RiskCoverage([]float64{0.9, 0.5, 0.7, 0.5}, []bool{true, false, false, true})
	// Order: 0.9 (right), 0.7 (wrong), 0.5 row 1 (wrong), 0.5 row 3 (right).
	wantRisk := []float64{0, 0.5, 2.0 / 3, 0.5}
	for i := range cov {
		if cov[i] != float64(i+1)/4 || math.Abs(risk[i]-wantRisk[i]) > 1e-15 {
			t.Errorf("point %d: (%v, %v), want (%v, %v)", i, cov[i], risk[i], float64(i+1)/4, wantRisk[i])
		}
	}
	aurc, eaurc := AURC([]float64{0.9, 0.5, 0.7, 0.5}, []bool{true, false, false, true})
	if want := (0 + 0.5 + 2.0/3 + 0.5) / 4; math.Abs(aurc-want) > 1e-15 {
		t.Errorf("AURC %v, want %v", aurc, want)
	}
	// Ideal: right, right, wrong, wrong -> risks 0, 0, 1/3, 1/2.
	if want := (0.5+2.0/3+0.5)/4 - (1.0/3+0.5)/4; math.Abs(eaurc-want) > 1e-15 {
		t.Errorf("E-AURC %v, want %v", eaurc, want)
	}
}
