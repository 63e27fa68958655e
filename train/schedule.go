package train

import (
	"fmt"
	"math"
)

// LRFactor returns the learning-rate multiplier of optimizer step (0-based)
// out of total steps for a schedule ("constant", "cosine" or "linear")
// with warmup steps of linear ramp-up: (step+1)/warmup during warmup, then
// 1 (constant), 0.5*(1+cos(pi*e/d)) (cosine) or 1-e/d (linear), where e
// counts steps after warmup and d = total-warmup. Cosine and linear reach 0
// after the last step.
func LRFactor(schedule string, warmup, step, total int) (float64, error) {
	if step < warmup {
		return float64(step+1) / float64(warmup), nil
	}
	e, d := float64(step-warmup), float64(total-warmup)
	switch schedule {
	case "constant":
		return 1, nil
	case "cosine":
		if d <= 0 {
			return 1, nil
		}
		return 0.5 * (1 + math.Cos(math.Pi*math.Min(e/d, 1))), nil
	case "linear":
		if d <= 0 {
			return 1, nil
		}
		return math.Max(0, 1-e/d), nil
	}
	return 0, fmt.Errorf("unknown learning-rate schedule %q (want constant, cosine or linear)", schedule)
}
