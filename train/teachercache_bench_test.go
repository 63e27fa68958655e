package train

import (
	"fmt"
	"testing"
	"time"
)

// benchDistillStep times optimizer steps of the clip-tiny-sized W8A8 LSQ
// model on batches of 64 with contrastive and logit distillation losses
// (the recipes' KD setting) on the pure-Go backend, with the teacher run
// in every step or, with cache, its embeddings read from the teacher
// cache (computed once, before the timed steps).
func benchDistillStep(b *testing.B, cache bool) {
	cfg := clipTinyConfig()
	r := parseRecipe(b, lsqQuant+fmt.Sprintf(`train:
  epochs: 1
  batch_size: 64
  optimizer: {name: adamw, lr: 1e-4, weight_decay: 0.1, quantizer_lr: 1e-4}
  schedule: {name: constant}
  loss: {contrastive: 1.0, distill: {weight: 1.0, kind: logits, temperature: 2.0}}
  teacher_cache: %v
`, cache))
	const batch = 64
	tr := newTrainer(b, Options{Recipe: r, Backend: goBackend(b), Model: randomCheckpoint(cfg, 1),
		Data: memData(b, cfg, batch, batch, false, 1)})
	// The first run calibrates, fills the cache, compiles and runs one step.
	if _, err := tr.Run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		if _, err := tr.Run(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	b.ReportMetric(float64(batch*b.N)/elapsed, "images/s")
	b.ReportMetric(1000*elapsed/float64(b.N), "ms/step")
	b.ReportMetric(1000*cpu/float64(b.N), "cpu-ms/step")
}

// BenchmarkTrainStepClipTinyDistill runs the float teacher in every step.
func BenchmarkTrainStepClipTinyDistill(b *testing.B) { benchDistillStep(b, false) }

// BenchmarkTrainStepClipTinyDistillTeacherCache reads the teacher's
// embeddings from the cache; its ratio to BenchmarkTrainStepClipTinyDistill
// is what train.teacher_cache saves per step.
func BenchmarkTrainStepClipTinyDistillTeacherCache(b *testing.B) { benchDistillStep(b, true) }
