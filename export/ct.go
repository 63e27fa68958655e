package export

// This file holds the compressed-tensors quantization_config schema, with
// the field names compressed-tensors writes into config.json.

// Names of compressed-tensors constants.
const (
	// QuantMethod is quantization_config.quant_method.
	QuantMethod = "compressed-tensors"
	// FormatIntQuantized stores each quantized weight as int8.
	FormatIntQuantized = "int-quantized"
	// FormatPackQuantized packs quantized weights into int32 words.
	FormatPackQuantized = "pack-quantized"
	// StatusCompressed says the weights on disk are already quantized.
	StatusCompressed = "compressed"
)

// QuantArgs is compressed-tensors' QuantizationArgs: how one tensor
// (weights, input activations) of a group of modules is quantized.
type QuantArgs struct {
	// NumBits is the integer width.
	NumBits int `json:"num_bits"`
	// Type is "int".
	Type string `json:"type"`
	// Symmetric is true when there is no zero point.
	Symmetric bool `json:"symmetric"`
	// GroupSize is the group length for strategy "group", else null.
	GroupSize *int `json:"group_size"`
	// Strategy is "tensor", "channel" or "group".
	Strategy string `json:"strategy"`
	// BlockStructure is always null (no block strategy).
	BlockStructure []int `json:"block_structure"`
	// Dynamic is true when ranges are computed per batch at run time.
	Dynamic bool `json:"dynamic"`
	// Actorder is always null (no GPTQ activation ordering).
	Actorder *string `json:"actorder"`
	// Observer names how the range was found ("minmax", "mse"); null when
	// dynamic.
	Observer *string `json:"observer"`
	// ObserverKwargs is always empty.
	ObserverKwargs map[string]any `json:"observer_kwargs"`
}

// Scheme is compressed-tensors' QuantizationScheme: the modules it targets
// and how their weights and activations are quantized.
type Scheme struct {
	// Targets are module names (exact HF names here).
	Targets []string `json:"targets"`
	// Weights quantizes the modules' weights, or is null.
	Weights *QuantArgs `json:"weights"`
	// InputActivations quantizes the modules' inputs, or is null.
	InputActivations *QuantArgs `json:"input_activations"`
	// OutputActivations is always null.
	OutputActivations *QuantArgs `json:"output_activations"`
}

// QuantizationConfig is the quantization_config object of config.json.
type QuantizationConfig struct {
	// ConfigGroups maps "group_N" to a scheme.
	ConfigGroups map[string]Scheme `json:"config_groups"`
	// QuantMethod is "compressed-tensors".
	QuantMethod string `json:"quant_method"`
	// Format is "int-quantized" or "pack-quantized".
	Format string `json:"format"`
	// QuantizationStatus is "compressed".
	QuantizationStatus string `json:"quantization_status"`
	// GlobalCompressionRatio is float bytes / stored bytes of the weights.
	GlobalCompressionRatio float64 `json:"global_compression_ratio"`
	// Ignore lists the Linear (and patch embedding) modules left in float.
	Ignore []string `json:"ignore"`
	// KVCacheScheme is the key/value quantization of the attention
	// matmuls (recipe attention_matmuls), or null.
	KVCacheScheme *QuantArgs `json:"kv_cache_scheme"`
}
