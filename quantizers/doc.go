// Package quantizers implements straight-through-estimator fake
// quantization on GoMLX graphs with PyTorch semantics (round half to even,
// zero point rounded and clamped) and the quantizer methods qatclip recipes
// name: none, minmax (static or EMA observer), percentile, mse, lsq, lsq+
// and pact. It knows nothing about CLIP: layers ask it to quantize a tensor
// under a context scope, and quantizer state lives in context variables
// under that scope so checkpoints carry it.
//
// # Ops
//
// FakeQuantPerTensor, FakeQuantPerChannel and FakeQuantPerGroup are
// torch.fake_quantize_per_{tensor,channel}_affine (gradient to x only);
// LearnableFakeQuantPerTensor/PerChannel/PerGroup are
// torch._fake_quantize_learnable_per_{tensor,channel}_affine (LSQ/LSQ+:
// gradients to x, scale and zero point times a grad factor); PACT is PACT.
// Forward values match PyTorch 1.13 bit for bit and gradients to float32
// rounding, on every backend: rounding is RoundHalfEven (graph.Round rounds
// ties away from zero on the pure-Go backend), and where PyTorch's compiled
// kernels fuse zp + x/scale into one multiply-add the ops do the same.
// TestGoldenQuantizers checks them against ../shared/golden/quantizers and
// TestFixtureQuantizers against testdata/quantizers.
//
// # Quantizers
//
// A Config describes a scheme; New (or Registry.New) validates it and
// returns the Quantizer of its Method. Layers call
//
//	y := q.Quantize(moduleCtx.In(quantizers.ScopeName("weight")), w)
//
// and the quantizer keeps its state in that scope (".../weight_quant/scale"
// and so on; see the Var* constants). Learned parameters are trainable
// variables (LearnedVariables lists them, for their own learning rate and
// no weight decay); observer state and flags are not.
//
// # Phases
//
// A training graph (ctx.IsTraining) or a calibration graph (SetCalibrating)
// updates state: observers fold the batch range into their running range,
// and lsq, lsq+ and pact initialise their parameters from the first batch
// (LSQ: scale 2*mean|x|/sqrt(qmax); lsq+: min/max or MSE range; pact:
// alpha at the Percentile-th percentile). Other graphs only read state, and
// a quantizer that has seen no data yet takes its range from each batch.
// The initialized flag is tested inside the graph, but graphs built while
// it is still 0 carry the initialisation arithmetic (for pact and the
// percentile and mse estimators, dozens of passes over the tensor) on every
// step: run one calibration graph over a batch before building the
// training graph. SetEnabled turns quantization off and on (observers keep
// observing while off) and SetFrozen stops observers or learned parameters,
// both without recompiling. RegularizationLoss returns PACT's alpha L2
// terms for the trainer to add to the loss.
package quantizers
