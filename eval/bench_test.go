package eval

import (
	"math/rand/v2"
	"testing"
)

// benchSims returns n x c float32 cosines around 0.2 with the label's
// column raised, roughly like CLIP zero-shot similarities, and the labels.
func benchSims(b *testing.B, n, c int, seed uint64, labelled bool) Split {
	b.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	data := make([]float32, n*c)
	for i := range data {
		data[i] = float32(0.2 + 0.03*r.NormFloat64())
	}
	var labels []int
	if labelled {
		labels = make([]int, n)
		for i := range labels {
			labels[i] = r.IntN(c)
			data[i*c+labels[i]] += float32(0.05 * r.Float64())
		}
	}
	s, err := NewSims32(data, n, c)
	if err != nil {
		b.Fatal(err)
	}
	return Split{Sims: s, Labels: labels}
}

// benchInput is the benchmark workload: 50,000 x 1,000 ID similarities, a
// 10,000-row held-out split for the temperature and 4 OOD sets of 10,000.
func benchInput(b *testing.B) Input {
	const c = 1000
	in := Input{ID: benchSims(b, 50_000, c, 1, true)}
	fit := benchSims(b, 10_000, c, 2, true)
	in.Fit = &fit
	for k, name := range []string{"inaturalist", "sun", "places", "textures"} {
		in.OOD = append(in.OOD, OODSet{Name: name, Sims: benchSims(b, 10_000, c, uint64(10+k), false).Sims})
	}
	return in
}

// BenchmarkAllMetrics50kx1k computes every metric Evaluate reports on 50,000
// x 1,000 ID similarities with a 10,000-row temperature split and 4 OOD sets
// of 10,000 x 1,000.
func BenchmarkAllMetrics50kx1k(b *testing.B) {
	in := benchInput(b)
	opt := DefaultOptions()
	cpu0, ok := processCPU()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Evaluate(in, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if cpu1, ok1 := processCPU(); ok && ok1 {
		// CPU seconds per run: on a loaded machine, wall time includes
		// waiting for a core; this does not.
		b.ReportMetric((cpu1-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	}
}

// BenchmarkClassify50kx1k is the accuracy/calibration/AURC pass alone.
func BenchmarkClassify50kx1k(b *testing.B) {
	in := benchInput(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Classify(in.ID.Sims, in.ID.Labels, DefaultLogitScale, DefaultECEBins, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFitTemperature10kx1k is the temperature fit on the 10,000-row split.
func BenchmarkFitTemperature10kx1k(b *testing.B) {
	in := benchInput(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := FitTemperature(in.Fit.Sims, in.Fit.Labels, DefaultLogitScale, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScores50kx1k is the OOD score pass over the ID split.
func BenchmarkScores50kx1k(b *testing.B) {
	in := benchInput(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Scores(in.ID.Sims, DefaultMCMTemperature, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDetect50kvs10k is AUROC/AUPR/FPR95 of 50,000 ID against 10,000
// OOD scores, sorting included.
func BenchmarkDetect50kvs10k(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	id, ood := make([]float64, 50_000), make([]float64, 10_000)
	for i := range id {
		id[i] = r.NormFloat64() + 0.5
	}
	for i := range ood {
		ood[i] = r.NormFloat64()
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Detect(id, ood); err != nil {
			b.Fatal(err)
		}
	}
}
