// Package quantizers implements straight-through-estimator fake
// quantization on GoMLX graphs with PyTorch semantics (round half to even,
// zero point rounded and clamped) and the quantizer methods qatclip recipes
// name: none, minmax (static or EMA observer), percentile, mse, lsq, lsq+
// and pact. It knows nothing about CLIP: layers ask it to quantize a tensor
// under a context scope, and quantizer state lives in context variables
// under that scope so checkpoints carry it.
package quantizers
