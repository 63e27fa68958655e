package eval

import (
	"fmt"
	"math"
	"slices"
)

// ScoreKind names an out-of-distribution score computed from one row of
// cosine similarities; higher means more in-distribution.
type ScoreKind int

const (
	// MCM is the maximum concept matching score, max softmax(cos / tau)
	// (Ming et al. 2022).
	MCM ScoreKind = iota
	// MaxCosine is the largest cosine similarity of the row.
	MaxCosine
	// Energy is the negative free energy tau * logsumexp(cos / tau).
	Energy
	numScoreKinds
)

// ScoreKinds lists every score kind, in report order.
func ScoreKinds() []ScoreKind { return []ScoreKind{MCM, MaxCosine, Energy} }

// String returns the score's name as reports use it.
func (k ScoreKind) String() string {
	switch k {
	case MCM:
		return "mcm"
	case MaxCosine:
		return "max_cosine"
	case Energy:
		return "energy"
	}
	return fmt.Sprintf("ScoreKind(%d)", int(k))
}

// RowScores holds the three OOD scores of every row of a matrix.
type RowScores [numScoreKinds][]float64

// Scores computes the MCM, max-cosine and energy scores of every row of sims
// at temperature tau, in one pass (one exp per element) using up to workers
// goroutines. It checks that tau is positive and the similarities finite.
func Scores(sims Sims, tau float64, workers int) (RowScores, error) {
	if err := sims.Validate(); err != nil {
		return RowScores{}, err
	}
	if err := checkPositive("MCM temperature", tau); err != nil {
		return RowScores{}, err
	}
	return scores(sims, tau, workers), nil
}

func scores(sims Sims, tau float64, workers int) RowScores {
	n := sims.Rows()
	var out RowScores
	for k := range out {
		out[k] = make([]float64, n)
	}
	parallelRows(n, workers, func(lo, hi int) {
		if sims.f32 != nil {
			scoreRows(sims.f32, sims.c, lo, hi, tau, out)
		} else {
			scoreRows(sims.f64, sims.c, lo, hi, tau, out)
		}
	})
	return out
}

// scoreRows fills out[*][lo:hi]: with m = max cos and Z = sum exp((cos-m)/tau),
// MCM = 1/Z, max-cosine = m and energy = m + tau*log Z.
func scoreRows[T float32 | float64](data []T, c, lo, hi int, tau float64, out RowScores) {
	inv := 1 / tau
	for i := lo; i < hi; i++ {
		row := data[i*c : (i+1)*c]
		mf := float64(rowMax(row))
		z, _ := sumExp(row, mf, inv)
		out[MCM][i] = 1 / z
		out[MaxCosine][i] = mf
		out[Energy][i] = mf + tau*math.Log(z)
	}
}

// Detection holds the threshold-free OOD detection metrics of one score on
// one pair of ID and OOD sets, with ID as the positive class.
type Detection struct {
	AUROC   float64 `json:"auroc"`
	AUPRIn  float64 `json:"aupr_in"`
	AUPROut float64 `json:"aupr_out"`
	FPR95   float64 `json:"fpr95"`
}

// Detect computes AUROC, AUPR-in, AUPR-out and FPR@95 from ID and OOD scores
// (higher = more in-distribution), with scikit-learn's tie handling (see the
// package documentation). Both sets must be non-empty and free of NaN.
func Detect(id, ood []float64) (Detection, error) {
	sid, err := SortScores(id)
	if err != nil {
		return Detection{}, fmt.Errorf("ID scores: %w", err)
	}
	sood, err := SortScores(ood)
	if err != nil {
		return Detection{}, fmt.Errorf("OOD scores: %w", err)
	}
	return DetectSorted(sid, sood), nil
}

// SortedScores is a copy of a score set sorted ascending, so that one ID set
// can be compared with several OOD sets without sorting it again.
type SortedScores []float64

// SortScores copies and sorts scores; it rejects an empty set and NaN.
func SortScores(scores []float64) (SortedScores, error) {
	if len(scores) == 0 {
		return nil, fmt.Errorf("empty score set")
	}
	s := slices.Clone(scores)
	for i, v := range s {
		if math.IsNaN(v) {
			return nil, fmt.Errorf("score %d is NaN", i)
		}
	}
	slices.Sort(s)
	return s, nil
}

// DetectSorted is Detect on pre-sorted, validated score sets.
func DetectSorted(id, ood SortedScores) Detection {
	var d Detection
	p, q := float64(len(id)), float64(len(ood))
	// ID positive, thresholds descending.
	var area, ap, prevTP, prevFP float64
	fpr95Set := false
	walkThresholds(id, ood, true, func(tp, fp int) {
		t, f := float64(tp), float64(fp)
		area += (f - prevFP) * (t + prevTP) / 2
		ap += (t - prevTP) / p * (t / (t + f))
		if !fpr95Set && t/p >= 0.95 {
			d.FPR95, fpr95Set = f/q, true
		}
		prevTP, prevFP = t, f
	})
	d.AUROC = area / (p * q)
	d.AUPRIn = ap
	// OOD positive with the negated score: thresholds ascending.
	ap, prevTP = 0, 0
	walkThresholds(ood, id, false, func(tp, fp int) {
		t, f := float64(tp), float64(fp)
		ap += (t - prevTP) / q * (t / (t + f))
		prevTP = t
	})
	d.AUPROut = ap
	return d
}

// walkThresholds visits the points of the ROC curve of positives pos against
// negatives neg (both sorted ascending): one call per distinct score, in
// descending order of score when desc and ascending otherwise, with the
// counts of positives and negatives at or beyond that threshold.
func walkThresholds(pos, neg []float64, desc bool, visit func(tp, fp int)) {
	np, nn := len(pos), len(neg)
	tp, fp := 0, 0
	if desc {
		i, j := np-1, nn-1
		for i >= 0 || j >= 0 {
			var t float64
			switch {
			case i < 0:
				t = neg[j]
			case j < 0:
				t = pos[i]
			default:
				t = max(pos[i], neg[j])
			}
			for i >= 0 && pos[i] == t {
				i--
				tp++
			}
			for j >= 0 && neg[j] == t {
				j--
				fp++
			}
			visit(tp, fp)
		}
		return
	}
	i, j := 0, 0
	for i < np || j < nn {
		var t float64
		switch {
		case i >= np:
			t = neg[j]
		case j >= nn:
			t = pos[i]
		default:
			t = min(pos[i], neg[j])
		}
		for i < np && pos[i] == t {
			i++
			tp++
		}
		for j < nn && neg[j] == t {
			j++
			fp++
		}
		visit(tp, fp)
	}
}

// ROC returns the ROC curve of ID (positive) against OOD scores: the false-
// and true-positive rates at every distinct threshold, descending, starting
// at (0, 0).
func ROC(id, ood SortedScores) (fpr, tpr []float64) {
	fpr, tpr = []float64{0}, []float64{0}
	p, q := float64(len(id)), float64(len(ood))
	walkThresholds(id, ood, true, func(tp, fp int) {
		fpr = append(fpr, float64(fp)/q)
		tpr = append(tpr, float64(tp)/p)
	})
	return fpr, tpr
}
