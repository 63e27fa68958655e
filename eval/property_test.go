package eval

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// The slow* functions are deliberately naive implementations of the
// definitions in the package documentation, used as the reference for
// property tests on random inputs.

func slowProbs(row []float64, scale float64) []float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, scale*v)
	}
	p := make([]float64, len(row))
	var z float64
	for j, v := range row {
		p[j] = math.Exp(scale*v - m)
		z += p[j]
	}
	for j := range p {
		p[j] /= z
	}
	return p
}

// slowRanking returns class indices by similarity, descending, ties to the
// lower index.
func slowRanking(row []float64) []int {
	idx := make([]int, len(row))
	for j := range idx {
		idx[j] = j
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	return idx
}

type slowClass struct {
	acc1, acc5, nll, brier, ece, mce, aurc, eaurc float64
}

func slowClassify(rows [][]float64, labels []int, scale float64, bins int) slowClass {
	n := len(rows)
	var r slowClass
	conf := make([]float64, n)
	correct := make([]bool, n)
	for i, row := range rows {
		p := slowProbs(row, scale)
		rank := slowRanking(row)
		correct[i] = rank[0] == labels[i]
		if correct[i] {
			r.acc1++
		}
		for _, j := range rank[:min(5, len(rank))] {
			if j == labels[i] {
				r.acc5++
			}
		}
		// log p_y by the log-sum-exp definition.
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, scale*v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(scale*v - m)
		}
		r.nll += -(scale*row[labels[i]] - m - math.Log(z))
		for j, pj := range p {
			t := 0.0
			if j == labels[i] {
				t = 1
			}
			r.brier += (pj - t) * (pj - t)
		}
		conf[i] = p[rank[0]]
	}
	fn := float64(n)
	r.acc1, r.acc5, r.nll, r.brier = r.acc1/fn, r.acc5/fn, r.nll/fn, r.brier/fn
	for b := 0; b < bins; b++ {
		lo, hi := float64(b)/float64(bins), float64(b+1)/float64(bins)
		var cnt, sc, sa float64
		for i, c := range conf {
			in := c >= lo && c < hi
			if b == bins-1 {
				in = c >= lo && c <= 1
			}
			if in {
				cnt++
				sc += c
				if correct[i] {
					sa++
				}
			}
		}
		if cnt > 0 {
			gap := math.Abs(sa/cnt - sc/cnt)
			r.ece += cnt / fn * gap
			r.mce = math.Max(r.mce, gap)
		}
	}
	// AURC: for each k, the error rate of the k most confident rows.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return conf[order[a]] > conf[order[b]] })
	errs := 0
	for _, c := range correct {
		if !c {
			errs++
		}
	}
	var ideal float64
	for k := 1; k <= n; k++ {
		e := 0
		for _, i := range order[:k] {
			if !correct[i] {
				e++
			}
		}
		r.aurc += float64(e) / float64(k)
		ideal += math.Max(0, float64(k-(n-errs))) / float64(k)
	}
	r.aurc /= fn
	r.eaurc = r.aurc - ideal/fn
	return r
}

func slowDetect(id, ood []float64) Detection {
	p, q := float64(len(id)), float64(len(ood))
	var d Detection
	var pairs float64
	for _, a := range id {
		for _, b := range ood {
			switch {
			case a > b:
				pairs++
			case a == b:
				pairs += 0.5
			}
		}
	}
	d.AUROC = pairs / (p * q)
	// Distinct thresholds, descending.
	all := append(append([]float64{}, id...), ood...)
	sort.Sort(sort.Reverse(sort.Float64Slice(all)))
	count := func(s []float64, pred func(float64) bool) float64 {
		c := 0.0
		for _, v := range s {
			if pred(v) {
				c++
			}
		}
		return c
	}
	prevTP, fpr95Set := 0.0, false
	for k, t := range all {
		if k > 0 && all[k-1] == t {
			continue
		}
		tp := count(id, func(v float64) bool { return v >= t })
		fp := count(ood, func(v float64) bool { return v >= t })
		d.AUPRIn += (tp - prevTP) / p * tp / (tp + fp)
		prevTP = tp
		if !fpr95Set && tp/p >= 0.95 {
			d.FPR95, fpr95Set = fp/q, true
		}
	}
	// OOD positive with the negated score: thresholds ascending in the score.
	prevTP = 0
	for k := len(all) - 1; k >= 0; k-- {
		t := all[k]
		if k < len(all)-1 && all[k+1] == t {
			continue
		}
		tp := count(ood, func(v float64) bool { return v <= t })
		fp := count(id, func(v float64) bool { return v <= t })
		d.AUPROut += (tp - prevTP) / q * tp / (tp + fp)
		prevTP = tp
	}
	return d
}

func slowNLL(rows [][]float64, labels []int, scale float64) float64 {
	var s float64
	for i, row := range rows {
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, scale*v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(scale*v - m)
		}
		s += m + math.Log(z) - scale*row[labels[i]]
	}
	return s / float64(len(rows))
}

// slowTemperature minimises the NLL over log T by golden-section search.
func slowTemperature(rows [][]float64, labels []int, scale float64) float64 {
	f := func(u float64) float64 { return slowNLL(rows, labels, scale/math.Exp(u)) }
	a, b := math.Log(MinTemperature), math.Log(MaxTemperature)
	g := (math.Sqrt(5) - 1) / 2
	c, d := b-g*(b-a), a+g*(b-a)
	fc, fd := f(c), f(d)
	for b-a > 1e-12 {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			fd = f(d)
		}
	}
	return math.Exp((a + b) / 2)
}

// randomRows returns n x c similarities in multiples of 1/256 (ties within
// rows) where about a quarter of the rows copy an earlier row exactly (ties
// across rows), with labels; labels favour the largest similarity.
func randomRows(r *rand.Rand, n, c int) ([][]float64, []int) {
	rows := make([][]float64, n)
	labels := make([]int, n)
	for i := range rows {
		if i > 0 && r.IntN(4) == 0 {
			k := r.IntN(i)
			rows[i], labels[i] = rows[k], labels[k]
			continue
		}
		rows[i] = make([]float64, c)
		for j := range rows[i] {
			rows[i][j] = math.Round((0.2+0.08*r.NormFloat64())*256) / 256
		}
		labels[i] = r.IntN(c)
		if r.IntN(2) == 0 {
			labels[i] = slowRanking(rows[i])[0]
		}
	}
	return rows, labels
}

func toSims(t *testing.T, rows [][]float64, f32 bool) Sims {
	t.Helper()
	c := len(rows[0])
	var s Sims
	var err error
	if f32 {
		d := make([]float32, 0, len(rows)*c)
		for _, row := range rows {
			for _, v := range row {
				d = append(d, float32(v))
			}
		}
		s, err = NewSims32(d, len(rows), c)
	} else {
		d := make([]float64, 0, len(rows)*c)
		for _, row := range rows {
			d = append(d, row...)
		}
		s, err = NewSims64(d, len(rows), c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestClassifyMatchesSlow(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		n, c := 1+r.IntN(80), 1+r.IntN(12)
		if trial%10 == 0 {
			c = 1 // single class: every probability is 1
		}
		rows, labels := randomRows(r, n, c)
		scale := []float64{1, 20, 100}[r.IntN(3)]
		bins := 1 + r.IntN(20)
		got, err := Classify(toSims(t, rows, trial%2 == 0), labels, scale, bins, 1+r.IntN(3))
		if err != nil {
			t.Fatal(err)
		}
		want := slowClassify(rows, labels, scale, bins)
		pairs := []struct {
			name      string
			got, want float64
		}{
			{"acc1", got.Acc1, want.acc1}, {"acc5", got.Acc5, want.acc5},
			{"nll", got.NLL, want.nll}, {"brier", got.Brier, want.brier},
			{"ece", got.ECE, want.ece}, {"mce", got.MCE, want.mce},
			{"aurc", got.AURC, want.aurc}, {"e_aurc", got.EAURC, want.eaurc},
		}
		for _, p := range pairs {
			if !near(p.got, p.want, 1e-9) {
				t.Fatalf("trial %d (n=%d c=%d scale=%v bins=%d): %s = %.15g, slow %.15g", trial, n, c, scale, bins, p.name, p.got, p.want)
			}
		}
	}
}

func TestDetectMatchesSlow(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for trial := range 500 {
		levels := 1 + r.IntN(12) // few levels: many ties within and across sets
		if trial%5 == 0 {
			levels = 1 << 20
		}
		draw := func(k int, shift int) []float64 {
			s := make([]float64, k)
			for i := range s {
				s[i] = float64(r.IntN(levels)+r.IntN(shift+1)) / 4
			}
			return s
		}
		id, ood := draw(1+r.IntN(60), r.IntN(4)), draw(1+r.IntN(60), 0)
		got, err := Detect(id, ood)
		if err != nil {
			t.Fatal(err)
		}
		want := slowDetect(id, ood)
		if !near(got.AUROC, want.AUROC, 1e-12) || !near(got.AUPRIn, want.AUPRIn, 1e-12) ||
			!near(got.AUPROut, want.AUPROut, 1e-12) || got.FPR95 != want.FPR95 {
			t.Fatalf("trial %d: Detect = %+v, slow %+v (id %v, ood %v)", trial, got, want, id, ood)
		}
	}
}

func TestFitTemperatureMatchesSlow(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for trial := range 20 {
		n, c := 20+r.IntN(100), 2+r.IntN(10)
		if trial == 0 {
			n = 4*warmStartRows + 1 // exercises the subsample warm start
		}
		rows, labels := randomRows(r, n, c)
		got, err := FitTemperature(toSims(t, rows, trial%2 == 1), labels, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := slowTemperature(rows, labels, 100)
		if math.Abs(got-want) > 1e-6*want {
			t.Fatalf("trial %d (n=%d c=%d): T = %.12g, golden-section %.12g", trial, n, c, got, want)
		}
	}
}

// TestFitTemperatureBounds: when every row is right with a margin the NLL
// keeps falling as T -> 0 and the fit returns MinTemperature; when every row
// is wrong it falls as T grows and the fit returns MaxTemperature; with all
// similarities equal the NLL does not depend on T, its derivative is zero at
// the start and T = 1 is returned.
func TestFitTemperatureBounds(t *testing.T) {
	sep, _ := NewSims64([]float64{0.9, 0.1, 0.2, 0.8}, 2, 2)
	if got, err := FitTemperature(sep, []int{0, 1}, 100, 1); err != nil || got != MinTemperature {
		t.Errorf("separable split: T = %v, %v; want %v", got, err, MinTemperature)
	}
	flat, _ := NewSims64([]float64{0.5, 0.5, 0.5, 0.5}, 2, 2)
	if got, err := FitTemperature(flat, []int{0, 1}, 100, 1); err != nil || got != 1 {
		t.Errorf("flat split: T = %v, %v; want 1", got, err)
	}
	wrong, _ := NewSims64([]float64{0.9, 0.1, 0.2, 0.8}, 2, 2)
	if got, err := FitTemperature(wrong, []int{1, 0}, 100, 1); err != nil || got != MaxTemperature {
		t.Errorf("always-wrong split: T = %v, %v; want %v", got, err, MaxTemperature)
	}
}

// TestWorkersDoNotChangeResults: per-row values are reduced in row order, so
// the worker count cannot change a single bit.
func TestWorkersDoNotChangeResults(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	rows, labels := randomRows(r, 3000, 20)
	s := toSims(t, rows, true)
	one, err := Classify(s, labels, 100, 15, 1)
	if err != nil {
		t.Fatal(err)
	}
	many, err := Classify(s, labels, 100, 15, 7)
	if err != nil {
		t.Fatal(err)
	}
	if one.NLL != many.NLL || one.Brier != many.Brier || one.ECE != many.ECE || one.AURC != many.AURC {
		t.Errorf("1 worker %+v != 7 workers %+v", one, many)
	}
}
