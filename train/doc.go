// Package train runs quantization-aware training (QAT) of CLIP models.
//
// A [Trainer] builds the student (the CLIP model of a recipe with the
// recipe's fake quantizers) and, when distillation is on, a frozen float
// teacher holding the same starting weights, both in one compiled training
// step. The step computes the recipe's losses (CLIP contrastive,
// distillation on logits or features, zero-shot classification), their
// gradients, global-norm clipping and an AdamW update with parameter
// groups, all inside the graph; gradient accumulation splits a large
// effective batch into micro-batches.
//
// Variables live in fixed scopes of the trainer's context:
//
//	/model      the student: HF parameter names as scopes (see layers/clip),
//	            quantizer state under "<module>/<site>_quant"
//	/teacher    the float teacher (only with distillation), never trained
//	/optimizer  optimizer moments, one pair per trained variable
//	/accum      gradient accumulators (only with grad_accum > 1)
//
// A run folder holds the resolved recipe (recipe.yaml), metrics.jsonl, a
// lock file and checkpoints/step-NNNNNNNN folders, each written atomically
// with a manifest of SHA-256 checksums (see [SaveCheckpoint]). With
// train.teacher_cache it also holds teacher-cache/: the teacher's image
// and text embeddings of every example of an [ExampleSet], computed by one
// pass before the first step so the steps skip the teacher's forward (see
// [TeacherCacheDir]). A run
// resumed from its last checkpoint reaches the same weights as an
// uninterrupted one, bit for bit on the pure-Go backend.
//
// Steps and epochs count from 0, as in the recipe's quantization schedule.
// The trainer reads data through the small [Batches] interface.
package train
