// Package clip is the CLIP model (HF CLIPModel) in GoMLX: the vision and
// text transformers, their HF config, and checkpoint import and export.
//
// Variables live in scopes named after the HF parameter names, one scope
// segment per module ("/vision_model.encoder.layers.0.mlp.fc1" holds
// "weight" and "bias"), so recipes target layers by the names users know
// and loading a checkpoint is a name-for-name mapping (see [Params]).
package clip

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/qatclip/qatclip/layers"
)

// VisionConfig sizes the vision transformer (HF CLIPVisionConfig).
type VisionConfig struct {
	// HiddenSize is the transformer width (default 768).
	HiddenSize int `json:"hidden_size"`
	// IntermediateSize is the MLP hidden width (default 3072).
	IntermediateSize int `json:"intermediate_size"`
	// NumAttentionHeads is the number of heads (default 12).
	NumAttentionHeads int `json:"num_attention_heads"`
	// NumHiddenLayers is the number of transformer blocks (default 12).
	NumHiddenLayers int `json:"num_hidden_layers"`
	// ImageSize is the input side in pixels (default 224).
	ImageSize int `json:"image_size"`
	// PatchSize is the patch side in pixels (default 32).
	PatchSize int `json:"patch_size"`
	// NumChannels is the number of input channels (default 3).
	NumChannels int `json:"num_channels"`
	// HiddenAct is the MLP activation (default "quick_gelu").
	HiddenAct string `json:"hidden_act"`
	// LayerNormEps is the LayerNorm epsilon (default 1e-5).
	LayerNormEps float64 `json:"layer_norm_eps"`
}

// TextConfig sizes the text transformer (HF CLIPTextConfig).
type TextConfig struct {
	// VocabSize is the number of token ids (default 49408).
	VocabSize int `json:"vocab_size"`
	// HiddenSize is the transformer width (default 512).
	HiddenSize int `json:"hidden_size"`
	// IntermediateSize is the MLP hidden width (default 2048).
	IntermediateSize int `json:"intermediate_size"`
	// NumAttentionHeads is the number of heads (default 8).
	NumAttentionHeads int `json:"num_attention_heads"`
	// NumHiddenLayers is the number of transformer blocks (default 12).
	NumHiddenLayers int `json:"num_hidden_layers"`
	// MaxPositionEmbeddings is the longest input sequence (default 77).
	MaxPositionEmbeddings int `json:"max_position_embeddings"`
	// HiddenAct is the MLP activation (default "quick_gelu").
	HiddenAct string `json:"hidden_act"`
	// LayerNormEps is the LayerNorm epsilon (default 1e-5).
	LayerNormEps float64 `json:"layer_norm_eps"`
	// BosTokenID is the start-of-text id (default 49406).
	BosTokenID int `json:"bos_token_id"`
	// EosTokenID is the end-of-text id used for pooling (default 49407).
	// The legacy value 2 selects pooling at argmax(input_ids), as HF does.
	EosTokenID int `json:"eos_token_id"`
	// PadTokenID is the padding id (default 1).
	PadTokenID int `json:"pad_token_id"`
}

// Config is an HF CLIPConfig: both towers and the shared projection.
type Config struct {
	// Vision sizes the image tower.
	Vision VisionConfig `json:"vision_config"`
	// Text sizes the text tower.
	Text TextConfig `json:"text_config"`
	// ProjectionDim is the joint embedding width (default 512).
	ProjectionDim int `json:"projection_dim"`
	// LogitScaleInit is the initial value of logit_scale (log of the inverse
	// temperature; default 2.6592 = log(1/0.07)).
	LogitScaleInit float64 `json:"logit_scale_init_value"`
}

// DefaultConfig returns HF's CLIPConfig defaults (the ViT-B/32 sizes).
func DefaultConfig() Config {
	return Config{
		Vision: VisionConfig{
			HiddenSize: 768, IntermediateSize: 3072, NumAttentionHeads: 12, NumHiddenLayers: 12,
			ImageSize: 224, PatchSize: 32, NumChannels: 3, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
		},
		Text: TextConfig{
			VocabSize: 49408, HiddenSize: 512, IntermediateSize: 2048, NumAttentionHeads: 8, NumHiddenLayers: 12,
			MaxPositionEmbeddings: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
			BosTokenID: 49406, EosTokenID: 49407, PadTokenID: 1,
		},
		ProjectionDim:  512,
		LogitScaleInit: 2.6592,
	}
}

// ParseConfig parses an HF config.json. Missing fields take HF's defaults;
// fields qatclip does not use are ignored. As in HF, the legacy
// "text_config_dict" and "vision_config_dict" (found in older hub configs)
// override "text_config" and "vision_config". The result is validated.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Config{}, err
	}
	var legacy struct {
		Text   json.RawMessage `json:"text_config_dict"`
		Vision json.RawMessage `json:"vision_config_dict"`
	}
	if err := json.Unmarshal(data, &legacy); err != nil {
		return Config{}, err
	}
	if len(legacy.Text) > 0 {
		if err := json.Unmarshal(legacy.Text, &cfg.Text); err != nil {
			return Config{}, fmt.Errorf("text_config_dict: %w", err)
		}
	}
	if len(legacy.Vision) > 0 {
		if err := json.Unmarshal(legacy.Vision, &cfg.Vision); err != nil {
			return Config{}, fmt.Errorf("vision_config_dict: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadConfig reads and parses the HF config.json at path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks that every size is positive and consistent.
func (c Config) Validate() error {
	v, t := c.Vision, c.Text
	positive := []struct {
		name string
		v    int
	}{
		{"vision_config.hidden_size", v.HiddenSize},
		{"vision_config.intermediate_size", v.IntermediateSize},
		{"vision_config.num_attention_heads", v.NumAttentionHeads},
		{"vision_config.num_hidden_layers", v.NumHiddenLayers},
		{"vision_config.image_size", v.ImageSize},
		{"vision_config.patch_size", v.PatchSize},
		{"vision_config.num_channels", v.NumChannels},
		{"text_config.vocab_size", t.VocabSize},
		{"text_config.hidden_size", t.HiddenSize},
		{"text_config.intermediate_size", t.IntermediateSize},
		{"text_config.num_attention_heads", t.NumAttentionHeads},
		{"text_config.num_hidden_layers", t.NumHiddenLayers},
		{"text_config.max_position_embeddings", t.MaxPositionEmbeddings},
		{"projection_dim", c.ProjectionDim},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", p.name, p.v)
		}
	}
	if v.HiddenSize%v.NumAttentionHeads != 0 {
		return fmt.Errorf("vision_config.hidden_size %d is not a multiple of num_attention_heads %d", v.HiddenSize, v.NumAttentionHeads)
	}
	if t.HiddenSize%t.NumAttentionHeads != 0 {
		return fmt.Errorf("text_config.hidden_size %d is not a multiple of num_attention_heads %d", t.HiddenSize, t.NumAttentionHeads)
	}
	if v.ImageSize%v.PatchSize != 0 {
		return fmt.Errorf("vision_config.image_size %d is not a multiple of patch_size %d", v.ImageSize, v.PatchSize)
	}
	if _, err := layers.ParseActivation(v.HiddenAct); err != nil {
		return fmt.Errorf("vision_config: %w", err)
	}
	if _, err := layers.ParseActivation(t.HiddenAct); err != nil {
		return fmt.Errorf("text_config: %w", err)
	}
	if v.LayerNormEps <= 0 || t.LayerNormEps <= 0 {
		return fmt.Errorf("layer_norm_eps must be positive")
	}
	if t.EosTokenID < 0 || t.EosTokenID >= t.VocabSize {
		return fmt.Errorf("text_config.eos_token_id %d is outside the vocabulary [0, %d)", t.EosTokenID, t.VocabSize)
	}
	return nil
}

// NumPatches returns the number of image patches, (image_size/patch_size)^2.
func (v VisionConfig) NumPatches() int {
	g := v.ImageSize / v.PatchSize
	return g * g
}

// JSON returns the config as HF config.json content.
func (c Config) JSON() ([]byte, error) {
	type vision struct {
		ModelType string `json:"model_type"`
		VisionConfig
		ProjectionDim int `json:"projection_dim"`
	}
	type text struct {
		ModelType string `json:"model_type"`
		TextConfig
		ProjectionDim int `json:"projection_dim"`
	}
	out := struct {
		Architectures  []string `json:"architectures"`
		ModelType      string   `json:"model_type"`
		ProjectionDim  int      `json:"projection_dim"`
		LogitScaleInit float64  `json:"logit_scale_init_value"`
		Text           text     `json:"text_config"`
		Vision         vision   `json:"vision_config"`
	}{
		Architectures: []string{"CLIPModel"}, ModelType: "clip",
		ProjectionDim: c.ProjectionDim, LogitScaleInit: c.LogitScaleInit,
		Text:   text{"clip_text_model", c.Text, c.ProjectionDim},
		Vision: vision{"clip_vision_model", c.Vision, c.ProjectionDim},
	}
	return json.MarshalIndent(out, "", "  ")
}
