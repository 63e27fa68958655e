package eval

import (
	"fmt"
	"math"
)

// Temperature bounds: FitTemperature returns a value in [MinTemperature,
// MaxTemperature]; a bound is returned when the NLL still decreases there
// (for example, on a split the classifier gets entirely right, the NLL falls
// towards T = 0).
const (
	MinTemperature = 1e-3
	MaxTemperature = 1e3
)

// FitTemperature returns the temperature T minimising the mean NLL of
// softmax(logitScale * sims / T) against labels (temperature scaling, Guo et
// al. 2017), with the usual checks on the inputs.
//
// The NLL is a convex function of the inverse temperature a = 1/T (a
// log-sum-exp of linear functions of a minus a linear term), with derivative
// mean(E_p[l] - l_label) and second derivative mean(Var_p[l]) for logits
// l = logitScale * sims. FitTemperature runs a bracketed Newton iteration on
// a (warm-started from a strided subsample on large splits), each step one
// pass over the split accumulating both derivatives in float64, until the
// step is below 1e-8 relative; quadratic convergence leaves an error near
// 1e-16, so the result is the exact minimiser whatever optimiser a reference
// used to approximate it.
func FitTemperature(sims Sims, labels []int, logitScale float64, workers int) (float64, error) {
	if err := sims.Validate(); err != nil {
		return 0, err
	}
	if err := CheckLabels(labels, sims.Rows(), sims.Cols()); err != nil {
		return 0, err
	}
	if err := checkPositive("logit scale", logitScale); err != nil {
		return 0, err
	}
	return fitTemperature(sims, labels, logitScale, workers)
}

// nllDerivs holds the first two derivatives of one row's NLL in a.
type nllDerivs struct{ g, h float64 }

// warmStartRows is the size of the strided subsample whose fitted
// temperature starts the Newton iteration on a large split.
const warmStartRows = 2048

// negligibleNLL is the mean-NLL improvement below which the temperature fit
// stops moving towards a bound.
const negligibleNLL = 1e-12

func fitTemperature(sims Sims, labels []int, scale float64, workers int) (float64, error) {
	a0 := 1.0
	if n := sims.Rows(); n > 4*warmStartRows {
		// Fit a strided subsample first: its optimum is within a few percent
		// of the full split's, so the full split needs about three passes.
		sub, subLabels := strideRows(sims, labels, warmStartRows)
		if a, _, err := newtonInverseTemperature(sub, subLabels, scale, workers, 1); err == nil {
			a0 = a
		}
	}
	a, _, err := newtonInverseTemperature(sims, labels, scale, workers, a0)
	if err != nil {
		return 0, err
	}
	return 1 / a, nil
}

// newtonInverseTemperature minimises the mean NLL over a = 1/T, starting at
// a0, and returns a with the number of passes over the split. a stays in
// [1/MaxTemperature, 1/MinTemperature]. The iteration stops when the Newton
// step is below 1e-8 relative and returns that step applied: with quadratic
// convergence the remaining error is far below float64 resolution of T's
// effect on the metrics.
func newtonInverseTemperature(sims Sims, labels []int, scale float64, workers int, a0 float64) (a float64, passes int, err error) {
	n := sims.Rows()
	rows := make([]nllDerivs, n)
	derivs := func(a float64) (g, h float64) {
		parallelRows(n, workers, func(lo, hi int) {
			if sims.f32 != nil {
				nllRows(sims.f32, sims.c, lo, hi, labels, scale, a, rows)
			} else {
				nllRows(sims.f64, sims.c, lo, hi, labels, scale, a, rows)
			}
		})
		for _, r := range rows {
			g += r.g
			h += r.h
		}
		return g / float64(n), h / float64(n)
	}
	// Bracket [lo, hi] on a: g(lo) < 0 < g(hi) once both are known.
	aMin, aMax := 1/MaxTemperature, 1/MinTemperature
	lo, hi := aMin, aMax
	loKnown, hiKnown := false, false
	a = min(max(a0, aMin), aMax)
	for passes = 1; passes <= 200; passes++ {
		g, h := derivs(a)
		if g == 0 {
			return a, passes, nil
		}
		// By convexity the NLL can fall by at most |g| times the distance to
		// the bound in the descent direction; when that is negligible (the
		// exponential tail of a split the model gets all right or all
		// wrong, where Newton steps crawl) the bound is the answer.
		if g < 0 {
			if !hiKnown && -g*(aMax-a) < negligibleNLL {
				return aMax, passes, nil
			}
			lo, loKnown = a, true
		} else {
			if !loKnown && g*(a-aMin) < negligibleNLL {
				return aMin, passes, nil
			}
			hi, hiKnown = a, true
		}
		next := a - g/h
		if h > 0 && next > lo && next < hi {
			if math.Abs(next-a) <= 1e-8*a {
				return next, passes, nil
			}
			a = next
			continue
		}
		// Newton left the bracket (or h = 0): bisect, or expand towards the
		// side where the minimum lies.
		switch {
		case loKnown && hiKnown:
			next = (lo + hi) / 2
			if hi-lo <= 1e-12*hi {
				return next, passes, nil
			}
		case !hiKnown: // g < 0: the minimum lies at a larger a
			if a >= aMax {
				return aMax, passes, nil
			}
			next = min(2*a, aMax)
		default: // g > 0: the minimum lies at a smaller a
			if a <= aMin {
				return aMin, passes, nil
			}
			next = max(a/2, aMin)
		}
		a = next
	}
	return 0, passes, fmt.Errorf("temperature fit did not converge (1/T bracketed in [%g, %g])", lo, hi)
}

// strideRows copies every (n/rows)-th row of sims and its label.
func strideRows(sims Sims, labels []int, rows int) (Sims, []int) {
	stride := sims.Rows() / rows
	c := sims.Cols()
	data := make([]float64, 0, rows*c)
	sub := make([]int, 0, rows)
	buf := make([]float64, c)
	for i := 0; i < rows; i++ {
		data = append(data, sims.Row(i*stride, buf)...)
		sub = append(sub, labels[i*stride])
	}
	return Sims{n: rows, c: c, f64: data}, sub
}

// nllRows fills rows[lo:hi] with the derivatives in a of each row's NLL at
// inverse temperature a: with d_j = l_j - max l and w_j = exp(a d_j), the NLL is
// log Z - a d_label, its derivative E_w[d] - d_label and the second
// derivative E_w[d^2] - E_w[d]^2.
func nllRows[T float32 | float64](data []T, c, lo, hi int, labels []int, scale, a float64, rows []nllDerivs) {
	for i := lo; i < hi; i++ {
		row := data[i*c : (i+1)*c]
		mf := float64(rowMax(row))
		z, s1, s2 := sumExpMoments(row, mf, scale, a)
		e1, e2 := s1/z, s2/z
		dy := scale * (float64(row[labels[i]]) - mf)
		rows[i] = nllDerivs{g: e1 - dy, h: max(e2-e1*e1, 0)}
	}
}
