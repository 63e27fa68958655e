package eval

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Bin is one equal-width confidence bin of a reliability diagram.
type Bin struct {
	Lo         float64 `json:"lo"`
	Hi         float64 `json:"hi"`
	Count      int     `json:"count"`
	Accuracy   float64 `json:"accuracy"`   // fraction correct; 0 when Count is 0
	Confidence float64 `json:"confidence"` // mean confidence; 0 when Count is 0
}

// Classification holds the accuracy, calibration and selective-prediction
// metrics of one similarity matrix at one logit scale, and the per-row
// confidences and correctness the plots need.
type Classification struct {
	N          int     `json:"n"`
	Classes    int     `json:"classes"`
	LogitScale float64 `json:"logit_scale"`
	Acc1       float64 `json:"acc1"`
	Acc5       float64 `json:"acc5"`
	NLL        float64 `json:"nll"`
	Brier      float64 `json:"brier"`
	ECE        float64 `json:"ece"`
	MCE        float64 `json:"mce"`
	AURC       float64 `json:"aurc"`
	EAURC      float64 `json:"e_aurc"`
	Bins       []Bin   `json:"bins"`

	// Confidence is the max probability of each row; Correct whether its
	// top-1 class is the label.
	Confidence []float64 `json:"-"`
	Correct    []bool    `json:"-"`
}

// Classify computes the metrics of probs = softmax(logitScale * sims) against
// labels with an ECE over bins equal-width bins, using up to workers
// goroutines (<= 0: GOMAXPROCS). It checks shapes, labels and that every
// similarity is finite.
func Classify(sims Sims, labels []int, logitScale float64, bins, workers int) (*Classification, error) {
	if err := sims.Validate(); err != nil {
		return nil, err
	}
	if err := CheckLabels(labels, sims.Rows(), sims.Cols()); err != nil {
		return nil, err
	}
	if err := checkPositive("logit scale", logitScale); err != nil {
		return nil, err
	}
	if bins < 1 {
		return nil, fmt.Errorf("ECE bins must be >= 1, got %d", bins)
	}
	return classify(sims, labels, logitScale, bins, workers), nil
}

func checkPositive(name string, v float64) error {
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("%s must be a finite number > 0, got %v", name, v)
	}
	return nil
}

// rowStats holds the per-row quantities that classify reduces in row order.
type rowStats struct {
	conf, nll, brier float64
	correct, top5    bool
}

// classify is Classify without input checks.
func classify(sims Sims, labels []int, scale float64, bins, workers int) *Classification {
	stats, _, _ := rowPass(sims, labels, scale, 0, 0, workers)
	return reduceStats(stats, sims.Cols(), scale, bins)
}

// reduceStats sums per-row statistics in row order into a Classification.
func reduceStats(stats []rowStats, classes int, scale float64, bins int) *Classification {
	n := len(stats)
	res := &Classification{
		N:          n,
		Classes:    classes,
		LogitScale: scale,
		Confidence: make([]float64, n),
		Correct:    make([]bool, n),
	}
	var acc1, acc5, nll, brier float64
	for i, s := range stats {
		if s.correct {
			acc1++
		}
		if s.top5 {
			acc5++
		}
		nll += s.nll
		brier += s.brier
		res.Confidence[i] = s.conf
		res.Correct[i] = s.correct
	}
	fn := float64(n)
	res.Acc1, res.Acc5, res.NLL, res.Brier = acc1/fn, acc5/fn, nll/fn, brier/fn
	res.Bins, res.ECE, res.MCE = Calibration(res.Confidence, res.Correct, bins)
	res.AURC, res.EAURC = AURC(res.Confidence, res.Correct)
	return res
}

// rowPass makes one parallel pass over labelled rows and returns the
// softmax statistics at scale, at scale2 when it is > 0 (the temperature-
// scaled logits) and the OOD scores at tau when it is > 0. Doing all three
// per row while the row is in cache reads the matrix once.
func rowPass(sims Sims, labels []int, scale, scale2, tau float64, workers int) (stats, stats2 []rowStats, sc RowScores) {
	n := sims.Rows()
	stats = make([]rowStats, n)
	if scale2 > 0 {
		stats2 = make([]rowStats, n)
	}
	if tau > 0 {
		for k := range sc {
			sc[k] = make([]float64, n)
		}
	}
	parallelRows(n, workers, func(lo, hi int) {
		if sims.f32 != nil {
			softmaxRows(sims.f32, sims.c, lo, hi, labels, scale, scale2, tau, stats, stats2, sc)
		} else {
			softmaxRows(sims.f64, sims.c, lo, hi, labels, scale, scale2, tau, stats, stats2, sc)
		}
	})
	return stats, stats2, sc
}

// softmaxRows fills stats[lo:hi] (and stats2, sc when requested, see
// rowPass) for rows of data (row-major, c columns). Per scale, one exp per
// element: e_j = exp(scale*(x_j - max)), Z = sum e_j; the confidence is 1/Z,
// log p(label) = scale*(x_label - max) - log Z and the Brier score
// sum_j p_j^2 - 2 p_label + 1.
func softmaxRows[T float32 | float64](data []T, c, lo, hi int, labels []int, scale, scale2, tau float64, stats, stats2 []rowStats, sc RowScores) {
	for i := lo; i < hi; i++ {
		row := data[i*c : (i+1)*c]
		y := labels[i]
		xy := row[y]
		above := 0 // classes with a larger similarity than the label's
		for _, v := range row {
			above += b2i(v > xy)
		}
		// Ties with the label's similarity rank lower class indices first.
		tiedBefore := 0
		for _, v := range row[:y] {
			tiedBefore += b2i(v == xy)
		}
		rank := above + tiedBefore
		m := float64(rowMax(row))
		dy := float64(xy) - m
		z, sq := sumExp(row, m, scale)
		stats[i] = finishRow(z, sq, scale*dy, rank)
		if scale2 > 0 {
			z, sq := sumExp(row, m, scale2)
			stats2[i] = finishRow(z, sq, scale2*dy, rank)
		}
		if tau > 0 {
			z, _ := sumExp(row, m, 1/tau)
			sc[MCM][i], sc[MaxCosine][i], sc[Energy][i] = 1/z, m, m+tau*math.Log(z)
		}
	}
}

// finishRow turns a row's softmax sums into its statistics: z and sq are
// the sums of e_j and e_j^2, ly the label's shifted logit (<= 0).
func finishRow(z, sq, ly float64, rank int) rowStats {
	py := expNonPos(ly) / z
	return rowStats{
		conf:    1 / z,
		nll:     math.Log(z) - ly,
		brier:   sq/(z*z) - 2*py + 1,
		correct: rank == 0,
		top5:    rank < 5,
	}
}

// b2i returns 1 for true and 0 for false (compiled without a branch).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Calibration bins confidences into bins equal-width bins [i/bins,
// (i+1)/bins) (a confidence of 1 falls in the last bin) and returns the bins
// with the expected and maximum calibration errors.
func Calibration(conf []float64, correct []bool, bins int) (out []Bin, ece, mce float64) {
	edges := binEdges(bins)
	out = make([]Bin, bins)
	sumConf := make([]float64, bins)
	sumAcc := make([]float64, bins)
	for i, p := range conf {
		b := binOf(p, edges)
		out[b].Count++
		sumConf[b] += p
		if correct[i] {
			sumAcc[b]++
		}
	}
	n := float64(len(conf))
	for b := range out {
		out[b].Lo, out[b].Hi = edges[b], edges[b+1]
		if out[b].Count == 0 {
			continue
		}
		cnt := float64(out[b].Count)
		out[b].Accuracy = sumAcc[b] / cnt
		out[b].Confidence = sumConf[b] / cnt
		gap := math.Abs(out[b].Accuracy - out[b].Confidence)
		ece += cnt / n * gap
		mce = max(mce, gap)
	}
	return out, ece, mce
}

// binEdges returns bins+1 edges i*(1/bins) with the last exactly 1, as
// numpy.linspace(0, 1, bins+1) computes them.
func binEdges(bins int) []float64 {
	edges := make([]float64, bins+1)
	step := 1 / float64(bins)
	for i := range edges {
		edges[i] = float64(i) * step
	}
	edges[bins] = 1
	return edges
}

// binOf returns b with edges[b] <= p < edges[b+1], clamped to the first and
// last bins.
func binOf(p float64, edges []float64) int {
	bins := len(edges) - 1
	b := int(p * float64(bins))
	b = min(max(b, 0), bins-1)
	for b > 0 && p < edges[b] {
		b--
	}
	for b < bins-1 && p >= edges[b+1] {
		b++
	}
	return b
}

// AURC returns the area under the risk-coverage curve (mean over k of the
// error rate of the k most confident rows; ties in confidence keep row
// order) and E-AURC, the excess over the ideal ordering.
func AURC(conf []float64, correct []bool) (aurc, eaurc float64) {
	order := confidenceOrder(conf)
	n := len(order)
	if n == 0 {
		return 0, 0
	}
	var errs, sum float64
	for k, i := range order {
		if !correct[i] {
			errs++
		}
		sum += errs / float64(k+1)
	}
	aurc = sum / float64(n)
	// Ideal ordering: the n-errs correct rows first, then the errors.
	good := n - int(errs)
	var opt float64
	for k := good + 1; k <= n; k++ {
		opt += float64(k-good) / float64(k)
	}
	return aurc, aurc - opt/float64(n)
}

// RiskCoverage returns the risk-coverage curve: for k = 1..N, the coverage
// k/N and the error rate among the k most confident rows.
func RiskCoverage(conf []float64, correct []bool) (coverage, risk []float64) {
	order := confidenceOrder(conf)
	n := len(order)
	coverage, risk = make([]float64, n), make([]float64, n)
	var errs float64
	for k, i := range order {
		if !correct[i] {
			errs++
		}
		coverage[k] = float64(k+1) / float64(n)
		risk[k] = errs / float64(k+1)
	}
	return coverage, risk
}

// confidenceOrder returns row indices by confidence, descending, ties in
// row order.
func confidenceOrder(conf []float64) []int32 {
	order := make([]int32, len(conf))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(conf[b], conf[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return order
}
