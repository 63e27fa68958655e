package train

import (
	"fmt"
	"testing"
	"time"
)

// benchTrainSection is the recipe's train section of the step benchmarks:
// batches of 64, AdamW; loss is the train.loss value and extra more keys
// of the section.
func benchTrainSection(loss, extra string) string {
	return fmt.Sprintf(`train:
  epochs: 1
  batch_size: 64
  optimizer: {name: adamw, lr: 1e-4, weight_decay: 0.1, quantizer_lr: 1e-4}
  schedule: {name: constant}
  loss: %s
%s`, loss, extra)
}

// benchTrainStep times optimizer steps of a clip-tiny-sized model (random
// weights, shared/golden/clip-tiny sizes) on the pure-Go backend under the
// recipe quant + train (see benchTrainSection). The first, untimed run
// calibrates, fills a teacher cache if there is one, compiles and runs one
// step.
func benchTrainStep(b *testing.B, quant, train string) {
	cfg := clipTinyConfig()
	r := parseRecipe(b, quant+train)
	const batch = 64
	tr := newTrainer(b, Options{Recipe: r, Backend: goBackend(b), Model: randomCheckpoint(cfg, 1),
		Data: memData(b, cfg, batch, batch, false, 1)})
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
	// CPU time per step is less sensitive than wall time to other
	// processes sharing the machine.
	b.ReportMetric(1000*cpu/float64(b.N), "cpu-ms/step")
}

// contrastiveOnly is the loss of the plain step benchmarks.
const contrastiveOnly = "{contrastive: 1.0}"

// BenchmarkTrainStepClipTinyW8A8LSQ is a QAT step: LSQ W8A8 (per-channel
// weights, per-tensor activations) on every Linear, contrastive loss.
func BenchmarkTrainStepClipTinyW8A8LSQ(b *testing.B) {
	benchTrainStep(b, lsqQuant, benchTrainSection(contrastiveOnly, ""))
}

// BenchmarkTrainStepClipTinyFloat is the same step without quantizers; the
// ratio to the W8A8 LSQ step is the cost of fake quantization.
func BenchmarkTrainStepClipTinyFloat(b *testing.B) {
	benchTrainStep(b, floatQuant, benchTrainSection(contrastiveOnly, ""))
}
