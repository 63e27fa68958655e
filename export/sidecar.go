package export

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/quantizers"
)

// File names of an exported folder.
const (
	// QuantFileName is the qatclip description of every quantized site.
	QuantFileName = "qatclip_quant.json"
	// ConfigFileName is the HF config.
	ConfigFileName = "config.json"
	// WeightsFileName holds every tensor.
	WeightsFileName = "model.safetensors"
	// CardFileName is the model card.
	CardFileName = "README.md"
)

// QuantFileFormat identifies the layout of qatclip_quant.json.
const QuantFileFormat = "qatclip-quant/1"

// Export formats.
const (
	// FormatCompressedTensors writes int8 (or packed) weights with scales.
	FormatCompressedTensors = "compressed-tensors"
	// FormatFakeQuantF32 writes dequantized float32 weights.
	FormatFakeQuantF32 = "fake-quant-f32"
)

// QuantFile is the content of qatclip_quant.json: the exact qatclip
// description of an export's quantized sites.
type QuantFile struct {
	// Format is QuantFileFormat.
	Format string `json:"format"`
	// ExportFormat is FormatCompressedTensors or FormatFakeQuantF32.
	ExportFormat string `json:"export_format"`
	// Packed is true when weights are stored pack-quantized.
	Packed bool `json:"packed"`
	// Recipe names the recipe the model was quantized with.
	Recipe string `json:"recipe"`
	// Sites lists every quantized site, in model order.
	Sites []SiteInfo `json:"sites"`
}

// SiteInfo describes one quantized site of an export.
type SiteInfo struct {
	// Module is the HF module name.
	Module string `json:"module"`
	// Site is "weight", "input", "attn_query", "attn_key", "attn_probs" or
	// "attn_value".
	Site string `json:"site"`
	// Config is the qatclip quantizer scheme.
	Config quantizers.Config `json:"config"`
	// Scale names the tensor holding the scales ("" when dynamic).
	Scale string `json:"scale,omitempty"`
	// ZeroPoint names the tensor holding the stored zero points, "" when
	// the stored scheme is symmetric.
	ZeroPoint string `json:"zero_point,omitempty"`
	// Shift is added to the scheme's integers (and zero point) to store
	// them signed: -2^(bits-1) for unsigned schemes, else 0.
	Shift int `json:"shift"`
	// PACTAlpha is PACT's clipping level (method pact), which the reloaded
	// model uses to compute exactly what PACT computed.
	PACTAlpha *float32 `json:"pact_alpha,omitempty"`
}

// siteByName maps a site name back to a layers.Site.
func siteByName(name string) (layers.Site, bool) {
	for _, s := range []layers.Site{layers.SiteWeight, layers.SiteInput, layers.SiteAttnQuery,
		layers.SiteAttnKey, layers.SiteAttnProbs, layers.SiteAttnValue} {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}

// tensorPrefix returns the prefix of a site's parameter tensors:
// "<m>.weight", "<m>.input", "<attn>.q", "<attn>.k", "<attn>.probs", "<attn>.v".
func tensorPrefix(module string, s layers.Site) string {
	switch s {
	case layers.SiteAttnQuery:
		return module + ".q"
	case layers.SiteAttnKey:
		return module + ".k"
	case layers.SiteAttnProbs:
		return module + ".probs"
	case layers.SiteAttnValue:
		return module + ".v"
	}
	return module + "." + s.String()
}

// ReadQuantFile reads dir/qatclip_quant.json.
func ReadQuantFile(dir string) (*QuantFile, error) {
	path := filepath.Join(dir, QuantFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	var qf QuantFile
	if err := json.Unmarshal(data, &qf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if qf.Format != QuantFileFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, qf.Format, QuantFileFormat)
	}
	switch qf.ExportFormat {
	case FormatCompressedTensors, FormatFakeQuantF32:
	default:
		return nil, fmt.Errorf("%s: unknown export_format %q", path, qf.ExportFormat)
	}
	for i, s := range qf.Sites {
		if _, ok := siteByName(s.Site); !ok {
			return nil, fmt.Errorf("%s: sites[%d]: unknown site %q", path, i, s.Site)
		}
		if err := s.Config.Validate(); err != nil {
			return nil, fmt.Errorf("%s: sites[%d] (%s %s): %w", path, i, s.Module, s.Site, err)
		}
	}
	return &qf, nil
}
