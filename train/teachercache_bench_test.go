package train

import (
	"fmt"
	"testing"
)

// distillLoss is the loss of the distillation benchmarks: contrastive and
// logit distillation (the recipes' KD setting).
const distillLoss = "{contrastive: 1.0, distill: {weight: 1.0, kind: logits, temperature: 2.0}}"

// BenchmarkTrainStepClipTinyDistill is the W8A8 LSQ step with
// distillation, the float teacher run in every step.
func BenchmarkTrainStepClipTinyDistill(b *testing.B) {
	benchTrainStep(b, lsqQuant, benchTrainSection(distillLoss, ""))
}

// BenchmarkTrainStepClipTinyDistillTeacherCache reads the teacher's
// embeddings from the cache (filled once, before the timed steps); its
// ratio to BenchmarkTrainStepClipTinyDistill is what train.teacher_cache
// saves per step.
func BenchmarkTrainStepClipTinyDistillTeacherCache(b *testing.B) {
	benchTrainStep(b, lsqQuant, benchTrainSection(distillLoss, fmt.Sprintf("  teacher_cache: %v\n", true)))
}
