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
// a, each step one pass over the split that accumulates the NLL and both
// derivatives in float64, until the step is below 1e-12 relative: the result
// is the exact minimiser to float64 precision, whatever optimiser a
// reference used to approximate it.
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

func fitTemperature(sims Sims, labels []int, scale float64, workers int) (float64, error) {
	n := sims.Rows()
	rows := make([]nllDerivs, n)
	eval := func(a float64) (g, h float64) {
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
	lo, hi := 1/MaxTemperature, 1/MinTemperature
	loKnown, hiKnown := false, false
	a := 1.0
	for iter := 0; iter < 200; iter++ {
		g, h := eval(a)
		if g == 0 {
			return 1 / a, nil
		}
		if g < 0 {
			lo, loKnown = a, true
		} else {
			hi, hiKnown = a, true
		}
		next := a - g/h
		if !(h > 0) || !(next > lo && next < hi) {
			switch {
			case loKnown && hiKnown:
				next = (lo + hi) / 2
			case !hiKnown: // minimum lies at larger a
				if a >= 1/MinTemperature {
					return MinTemperature, nil
				}
				next = min(2*a, 1/MinTemperature)
			default: // minimum lies at smaller a
				if a <= 1/MaxTemperature {
					return MaxTemperature, nil
				}
				next = max(a/2, 1/MaxTemperature)
			}
		}
		if math.Abs(next-a) <= 1e-12*a {
			return 1 / next, nil
		}
		a = next
	}
	return 0, fmt.Errorf("temperature fit did not converge (bracket 1/T in [%g, %g])", lo, hi)
}

// nllRows fills rows[lo:hi] with the derivatives in a of each row's NLL at
// inverse temperature a: with d_j = l_j - max l and w_j = exp(a d_j), the NLL is
// log Z - a d_label, its derivative E_w[d] - d_label and the second
// derivative E_w[d^2] - E_w[d]^2.
func nllRows[T float32 | float64](data []T, c, lo, hi int, labels []int, scale, a float64, rows []nllDerivs) {
	for i := lo; i < hi; i++ {
		row := data[i*c : (i+1)*c]
		m := row[0]
		for _, v := range row {
			m = max(m, v)
		}
		mf := float64(m)
		var z, s1, s2 float64
		for _, v := range row {
			d := scale * (float64(v) - mf)
			w := math.Exp(a * d)
			z += w
			s1 += w * d
			s2 += w * d * d
		}
		e1, e2 := s1/z, s2/z
		dy := scale * (float64(row[labels[i]]) - mf)
		rows[i] = nllDerivs{g: e1 - dy, h: max(e2-e1*e1, 0)}
	}
}
