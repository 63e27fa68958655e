package export

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
)

// Model is a quantized model loaded for inference: an exported folder
// (Load) or a run folder (LoadRun, through Open).
type Model struct {
	// Config is the model's config.
	Config clip.Config
	// Ctx holds the model's variables in its scope: for an export the
	// dequantized weights, for a run the weights and quantizer state.
	Ctx *context.Context
	// Hook applies the model's quantizers (for an export: the activation
	// quantizers with their stored parameters); pass it to
	// clip.NewEmbedder. Do not calibrate it: its state is final.
	Hook layers.Hook
	// Path is the folder the model was read from.
	Path string
	// Kind is FormatCompressedTensors, FormatFakeQuantF32 or "run".
	Kind string
	// Recipe names the recipe the model was quantized with.
	Recipe string
	// Sites counts the quantized sites.
	Sites int
}

// IsExport reports whether dir is a qatclip export (it holds
// qatclip_quant.json).
func IsExport(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, QuantFileName))
	return err == nil && !st.IsDir()
}

// Open loads path when it is a qatclip export or a run folder and returns
// nil (and no error) for anything else, such as a float HF model folder,
// which clip.Load reads.
func Open(path string) (*Model, error) {
	switch {
	case IsExport(path):
		return Load(path)
	case IsRun(path):
		run, err := LoadRun(path)
		if err != nil {
			return nil, err
		}
		return run.Model(), nil
	}
	return nil, nil
}

// Load reads a folder written by Write: the weights (dequantized to
// float32 exactly as the fake-quant model used them) into a new context,
// and a hook that applies the activation quantizers with their exported
// parameters, so the model computes what the fake-quantized model did.
func Load(dir string) (*Model, error) {
	qf, err := ReadQuantFile(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := clip.LoadConfig(filepath.Join(dir, ConfigFileName))
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	path := filepath.Join(dir, WeightsFileName)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	weights := map[string]SiteInfo{}
	for _, s := range qf.Sites {
		if s.Site == layers.SiteWeight.String() {
			weights[s.Module] = s
		}
	}
	ck := &clip.Checkpoint{Config: cfg, Path: path, Layout: clip.LayoutHF, Weights: map[string][]float32{}}
	for _, p := range clip.Params(cfg) {
		var data []float32
		if s, ok := weights[p.Module]; ok && p.Var == "weight" && qf.ExportFormat == FormatCompressedTensors {
			data, err = readQuantizedWeight(f, s, p, qf.Packed)
		} else {
			data, err = readFloat(f, p.Name, p.HFShape)
		}
		if err != nil {
			return nil, err
		}
		ck.Weights[p.Name] = data
	}
	ctx := context.New()
	if err := ck.SetVariables(ctx); err != nil {
		return nil, err
	}
	hook, err := newStaticHook(f, qf)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Ctx: ctx, Path: dir, Kind: qf.ExportFormat, Recipe: qf.Recipe, Sites: len(qf.Sites)}
	if hook != nil {
		m.Hook = hook
	}
	return m, nil
}

// readFloat reads a float tensor and checks its shape.
func readFloat(f *safetensors.File, name string, shape []int) ([]float32, error) {
	data, got, err := f.Float32(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(got, shape) && !(len(shape) == 0 && len(data) == 1) && !(len(shape) == 1 && len(data) == shape[0]) {
		return nil, fmt.Errorf("safetensors %s: tensor %q has shape %v, want %v", f.Path(), name, got, shape)
	}
	return data, nil
}

// readInts reads an integer tensor (I8, I32 or I64) as int32.
func readInts(f *safetensors.File, name string) ([]int32, []int, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q is missing", f.Path(), name)
	}
	b, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	n := info.NumElements()
	out := make([]int32, n)
	switch info.DType {
	case safetensors.I8:
		for i := range out {
			out[i] = int32(int8(b[i]))
		}
	case safetensors.I32:
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case safetensors.I64:
		for i := range out {
			out[i] = int32(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	default:
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q has dtype %s, want an integer type", f.Path(), name, info.DType)
	}
	return out, info.Shape, nil
}

// readQuantizedWeight reads the integers, scale and zero point of a
// quantized weight and returns the dequantized values in the variable
// layout.
func readQuantizedWeight(f *safetensors.File, s SiteInfo, p clip.Param, packed bool) ([]float32, error) {
	rows := p.Shape[0]
	cols := p.Size() / rows
	lo, hi := signedRange(s.Config)
	var q []int32
	var err error
	if packed {
		var shape []int32
		if shape, _, err = readInts(f, s.Module+".weight_shape"); err != nil {
			return nil, err
		}
		if len(shape) != 2 || int(shape[0]) != rows || int(shape[1]) != cols {
			return nil, fmt.Errorf("safetensors %s: %s.weight_shape is %v, want [%d %d]", f.Path(), s.Module, shape, rows, cols)
		}
		words, _, err := readInts(f, s.Module+".weight_packed")
		if err != nil {
			return nil, err
		}
		if q, err = unpackRows(words, rows, cols, s.Config.Bits); err != nil {
			return nil, fmt.Errorf("safetensors %s: %s.weight_packed: %w", f.Path(), s.Module, err)
		}
	} else {
		var shape []int
		if q, shape, err = readInts(f, p.Name); err != nil {
			return nil, err
		}
		if !slices.Equal(shape, p.HFShape) {
			return nil, fmt.Errorf("safetensors %s: tensor %q has shape %v, want %v", f.Path(), p.Name, shape, p.HFShape)
		}
	}
	for i, v := range q {
		if int(v) < lo || int(v) > hi {
			return nil, fmt.Errorf("safetensors %s: %s value %d at %d is outside the declared range [%d, %d]", f.Path(), p.Name, v, i, lo, hi)
		}
	}
	scale, _, err := f.Float32(s.Scale)
	if err != nil {
		return nil, err
	}
	var zero []int32
	if s.ZeroPoint != "" {
		if zero, _, err = readInts(f, s.ZeroPoint); err != nil {
			return nil, err
		}
		if packed && s.Config.Granularity != quantizers.PerTensor {
			k := len(scale) / rows
			words := len(zero) / max(k, 1)
			if zero, err = unpackRows(transposeInt32(zero, words, k), k, rows, s.Config.Bits); err != nil {
				return nil, fmt.Errorf("safetensors %s: %s: %w", f.Path(), s.ZeroPoint, err)
			}
			zero = transposeInt32(zero, k, rows)
		}
	}
	out, err := dequantize(s.Config, p.Shape, q, scale, zero)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %s: %w", f.Path(), p.Name, err)
	}
	return out, nil
}

// hookKey identifies one site of one module.
type hookKey struct {
	module string
	site   layers.Site
}

// staticSite is one activation quantizer of a loaded export.
type staticSite struct {
	cfg quantizers.Config
	// scale and zero (stored, signed) are the affine parameters; zero is
	// nil when symmetric.
	scale []float32
	dims  []int
	zero  []float32
	// lo and hi are the stored integers' range.
	lo, hi int
	// alpha is set for PACT.
	alpha *float32
	// dynamic quantizers recompute their range per batch.
	dynamic quantizers.Quantizer
}

// StaticHook applies the activation quantizers of an export with their
// stored parameters. It implements layers.Hook.
type StaticHook struct {
	sites map[hookKey]*staticSite
}

// newStaticHook builds the hook of qf's activation sites, nil when there
// are none.
func newStaticHook(f *safetensors.File, qf *QuantFile) (*StaticHook, error) {
	h := &StaticHook{sites: map[hookKey]*staticSite{}}
	for _, s := range qf.Sites {
		site, _ := siteByName(s.Site)
		if site == layers.SiteWeight {
			continue
		}
		st := &staticSite{cfg: s.Config}
		st.lo, st.hi = signedRange(s.Config)
		switch {
		case s.Config.Dynamic:
			q, err := quantizers.New(s.Config)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", s.Module, s.Site, err)
			}
			st.dynamic = q
		case s.Scale == "":
			return nil, fmt.Errorf("%s: %s %s: static quantizer without a scale tensor", QuantFileName, s.Module, s.Site)
		default:
			scale, dims, err := f.Float32(s.Scale)
			if err != nil {
				return nil, err
			}
			st.scale, st.dims = scale, dims
			if s.ZeroPoint != "" {
				z, _, err := readInts(f, s.ZeroPoint)
				if err != nil {
					return nil, err
				}
				if len(z) != len(scale) {
					return nil, fmt.Errorf("safetensors %s: %s has %d values, %s has %d", f.Path(), s.ZeroPoint, len(z), s.Scale, len(scale))
				}
				st.zero = make([]float32, len(z))
				for i, v := range z {
					st.zero[i] = float32(v)
				}
			}
			if s.Config.Method == quantizers.MethodPACT {
				if s.PACTAlpha == nil {
					return nil, fmt.Errorf("%s: %s %s: pact site without pact_alpha", QuantFileName, s.Module, s.Site)
				}
				st.alpha = s.PACTAlpha
			}
		}
		h.sites[hookKey{s.Module, site}] = st
	}
	if len(h.sites) == 0 {
		return nil, nil
	}
	return h, nil
}

// NumSites returns how many activation sites the hook quantizes.
func (h *StaticHook) NumSites() int { return len(h.sites) }

// Apply implements layers.Hook.
func (h *StaticHook) Apply(ctx *context.Context, module string, site layers.Site, x *graph.Node) *graph.Node {
	st, ok := h.sites[hookKey{module, site}]
	if !ok {
		return x
	}
	g := x.Graph()
	if st.dynamic != nil {
		return st.dynamic.Quantize(ctx.In(quantizers.ScopeName(site.String())), x)
	}
	if st.alpha != nil {
		return quantizers.PACT(x, graph.Const(g, []float32{*st.alpha}), st.cfg.Bits)
	}
	scale := graph.Const(g, st.scale)
	var zero *graph.Node
	if st.zero != nil {
		zero = graph.Const(g, st.zero)
	}
	switch st.cfg.Granularity {
	case quantizers.PerChannel:
		return quantizers.FakeQuantPerChannel(x, scale, zero, st.cfg.Axis, st.lo, st.hi)
	case quantizers.PerGroup:
		return quantizers.FakeQuantPerGroup(x, graph.Reshape(scale, st.dims...), reshapeOrNil(zero, st.dims), st.cfg.GroupSize, st.lo, st.hi)
	}
	return quantizers.FakeQuantPerTensor(x, scale, zero, st.lo, st.hi)
}

// reshapeOrNil reshapes n to dims, keeping nil.
func reshapeOrNil(n *graph.Node, dims []int) *graph.Node {
	if n == nil {
		return nil
	}
	return graph.Reshape(n, dims...)
}
