package benchmark

import (
	"bufio"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is the cost of one timed step.
type sample struct {
	wall, cpu time.Duration
}

// timeIt runs fn and returns its wall and process CPU time.
func timeIt(fn func() error) (sample, error) {
	c0 := cpuTime()
	t0 := time.Now()
	err := fn()
	return sample{wall: time.Since(t0), cpu: cpuTime() - c0}, err
}

// Percentile returns the q-th percentile (0 <= q <= 100) of xs with linear
// interpolation between the closest ranks, as numpy and bench.py compute
// it. It returns NaN for an empty slice.
func Percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := float64(len(s)-1) * q / 100
	lo, hi := int(math.Floor(pos)), int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// Median returns the median of xs (NaN when empty).
func Median(xs []float64) float64 { return Percentile(xs, 50) }

// millis returns the wall (or, with cpu, CPU) times of samples in ms.
func millis(samples []sample, cpu bool) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		d := s.wall
		if cpu {
			d = s.cpu
		}
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// stepStats summarises timed steps of batch images and flops FLOPs each.
func stepStats(samples []sample, batch int, flops float64) *StepStats {
	wall := millis(samples, false)
	med := Median(wall)
	st := &StepStats{
		ImagesPerS:   float64(batch) / (med / 1e3),
		StepMsMedian: med,
		StepMsP10:    Percentile(wall, 10),
		StepMsP90:    Percentile(wall, 90),
		CPUMsMedian:  Median(millis(samples, true)),
	}
	if flops > 0 {
		st.TFLOPs = flops / (med / 1e3) / 1e12
	}
	return st
}

// setMemory fills the memory fields of r.
func setMemory(r *Result) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.GoSysMB = float64(ms.Sys) / (1 << 20)
	r.PeakMemMB = r.GoSysMB
	if kb, ok := peakRSSKiB(); ok {
		r.PeakMemMB = float64(kb) / 1024
	}
}

// peakRSSKiB reads the peak resident set size (VmHWM) of this process from
// /proc/self/status, in KiB.
func peakRSSKiB() (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		return kb, err == nil
	}
	return 0, false
}
