// Package export writes a quantized CLIP model as a Hugging Face folder that
// other tools can read, and loads such a folder back.
//
// # Formats
//
// Format "compressed-tensors" (the default) follows the layout of the
// compressed-tensors library (quant_method "compressed-tensors", format
// "int-quantized", quantization_status "compressed"):
//
//	<m>.weight             I8, the HF weight shape, integers in [-2^(b-1), 2^(b-1)-1]
//	<m>.weight_scale       F32, [1] per tensor, [out, 1] per channel, [out, in/group] per group
//	<m>.weight_zero_point  I8, shaped as weight_scale, only for asymmetric weights
//	<m>.input_scale        F32 [1], static input-activation quantizers
//	<m>.input_zero_point   I8 [1], asymmetric static input-activation quantizers
//
// and every float parameter (LayerNorms, embeddings, unquantized Linears,
// logit_scale) under its HF name in F32. Dequantization is
// (q - zero_point) * scale in float32. compressed-tensors' integers are
// always signed, so an unsigned qatclip scheme (uint8 activations, PACT) is
// stored shifted by 2^(b-1) together with its zero point, which leaves
// (q - zero_point) and so every dequantized value unchanged. With PackInt4
// the format is "pack-quantized": each quantized weight is stored as
// <m>.weight_packed (I32, 32/b values per int32 along the input axis, the
// first value in the lowest bits, each offset by 2^(b-1)) plus
// <m>.weight_shape (I64, the unpacked [out, in]); asymmetric per-channel and
// per-group zero points are packed the same way along the output axis.
//
// The patch embedding is an HF Conv2d ([width, C, p, p]); qatclip computes
// it as a Linear over flattened patches ([width, C*p*p], the same row-major
// data). When a recipe quantizes it, its int8 weight keeps the conv shape
// [width, C, p, p], so an HF loader sees the parameter shape it expects, and
// its scales are those of the flattened Linear ([width, 1] per channel,
// [width, C*p*p/group] per group). Packed, its weight_shape is the flattened
// [width, C*p*p].
//
// Attention-matmul quantizers (recipe quantization.attention_matmuls) have
// no compressed-tensors field of their own: their parameters are stored as
// <attn>.q_scale, <attn>.k_scale, <attn>.v_scale and <attn>.probs_scale
// (with _zero_point tensors when asymmetric) and described in
// qatclip_quant.json.
//
// Format "fake-quant-f32" writes a plain HF CLIPModel folder (no
// quantization_config): every weight already dequantized to float32, plus
// the activation quantizers' <m>.input_scale / input_zero_point tensors,
// which CLIP loaders ignore.
//
// Both formats write qatclip_quant.json, the exact qatclip description of
// every quantized site (method, bits, range, tensor names, PACT's alpha),
// which [Load] uses to rebuild the activation quantizers so the reloaded
// model computes what the fake-quantized model computed; a model card
// README.md; and the source model's tokenizer files when it has them.
//
// # Run folders
//
// A run folder is what `qatclip train` and `qatclip ptq` write and `qatclip
// export --run` reads: recipe.yaml (the resolved recipe), config.json (the
// model's HF config) and checkpoints/step-NNNNNNNN folders in the trainer's
// checkpoint format (package train), whose variables hold the model under
// the scope "/model" with its quantizer state; see [WriteRun] and [LoadRun].
package export
