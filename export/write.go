package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
	"github.com/qatclip/qatclip/recipes"
)

// Source is the quantized model to export.
type Source struct {
	// Config is the model's config.
	Config clip.Config
	// Ctx is the context whose scope holds the model's variables (HF
	// module scopes, quantizer state under "<module>/<site>_quant"), as
	// set by clip.Checkpoint.SetVariables and calibration or training.
	Ctx *context.Context
	// Plan is the recipe resolved against the model (clip.QuantHook).
	Plan *recipes.Plan
}

// Options control Write.
type Options struct {
	// Format is FormatCompressedTensors (the default when empty) or
	// FormatFakeQuantF32.
	Format string
	// PackInt4 stores weights pack-quantized (compressed-tensors only).
	PackInt4 bool
	// Force replaces an existing output folder.
	Force bool
	// ModelDir is the source model folder whose tokenizer files are
	// copied; "" copies none.
	ModelDir string
	// Eval holds the metrics of the model's last evaluation, shown in the
	// model card; nil for none.
	Eval map[string]float64
}

// TowerSize compares a tower's float32 weights with what the export stores.
type TowerSize struct {
	// Tower is "vision", "text" or "other" (logit_scale).
	Tower string
	// FloatBytes is the size of the tower's parameters in float32.
	FloatBytes int64
	// ExportBytes is the size of the tower's tensors in the export
	// (integers, scales, zero points and float parameters).
	ExportBytes int64
}

// Report summarises an export.
type Report struct {
	// Dir is the output folder.
	Dir string
	// Format is the export format; Packed tells pack-quantized weights.
	Format string
	Packed bool
	// Sites counts the quantized sites, QuantizedWeights the int weights.
	Sites, QuantizedWeights int
	// Towers has one entry per tower, then the total.
	Towers []TowerSize
}

// WriteTo prints the size report.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	format := r.Format
	if r.Packed {
		format += " (pack-quantized)"
	}
	fmt.Fprintf(&b, "exported %s: %s, %d quantized sites, %d quantized weights\n", r.Dir, format, r.Sites, r.QuantizedWeights)
	fmt.Fprintf(&b, "%-8s %14s %14s %7s\n", "tower", "float32 bytes", "export bytes", "ratio")
	for _, t := range r.Towers {
		ratio := 0.0
		if t.ExportBytes > 0 {
			ratio = float64(t.FloatBytes) / float64(t.ExportBytes)
		}
		fmt.Fprintf(&b, "%-8s %14d %14d %6.2fx\n", t.Tower, t.FloatBytes, t.ExportBytes, ratio)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// towerOf names the tower of a parameter or tensor.
func towerOf(name string) string {
	switch {
	case strings.HasPrefix(name, "vision_model."), strings.HasPrefix(name, "visual_projection."):
		return "vision"
	case strings.HasPrefix(name, "text_model."), strings.HasPrefix(name, "text_projection."):
		return "text"
	}
	return "other"
}

// tokenizerFiles are copied from the source model folder when present.
var tokenizerFiles = [...]string{
	"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
	"special_tokens_map.json", "preprocessor_config.json", "bpe_simple_vocab_16e6.txt.gz",
}

// Write exports the model of src to the folder dir in opts.Format (see the
// package documentation for the layouts) and returns the size report. The
// folder is written beside dir and renamed into place; an existing dir is
// an error unless opts.Force.
func Write(dir string, src Source, opts Options) (*Report, error) {
	format := opts.Format
	if format == "" {
		format = FormatCompressedTensors
	}
	switch format {
	case FormatCompressedTensors, FormatFakeQuantF32:
	default:
		return nil, fmt.Errorf("export: unknown format %q (want %s or %s)", format, FormatCompressedTensors, FormatFakeQuantF32)
	}
	if opts.PackInt4 && format != FormatCompressedTensors {
		return nil, fmt.Errorf("export: --pack-int4 needs format %s, got %s", FormatCompressedTensors, format)
	}
	if dir == "" {
		return nil, errors.New("export: no output folder given")
	}
	if _, err := os.Stat(dir); err == nil && !opts.Force {
		return nil, fmt.Errorf("export: output folder %s already exists (pass --force to replace it)", dir)
	}
	if src.Ctx == nil || src.Plan == nil {
		return nil, errors.New("export: source has no context or plan")
	}
	sites, err := collectSites(src.Ctx, src.Plan)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	recipeName := ""
	if src.Plan.Recipe != nil {
		recipeName = src.Plan.Recipe.Name
	}
	if len(sites) == 0 {
		return nil, fmt.Errorf("export: the model has no quantizers (recipe %q quantizes nothing, or every quantizer is disabled): nothing to export", recipeName)
	}
	if format == FormatCompressedTensors {
		for _, s := range sites {
			if err := checkCompressible(s); err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
		}
	}
	b := &builder{cfg: src.Config, format: format, packed: opts.PackInt4}
	if err := b.build(src.Ctx, sites); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	b.qf.Recipe = recipeName

	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := b.writeFiles(tmp, src.Plan, opts); err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("export: replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	ok = true
	b.report.Dir = dir
	return &b.report, nil
}

// checkCompressible rejects sites compressed-tensors cannot describe.
func checkCompressible(s *site) error {
	c := s.cfg
	if s.site == layers.SiteWeight {
		switch {
		case c.Dynamic:
			return fmt.Errorf("%s: dynamic weight quantizers have no stored scale; use a static observer", s.module)
		case c.Method == quantizers.MethodPACT:
			return fmt.Errorf("%s: pact weights are not supported by compressed-tensors", s.module)
		case c.Granularity == quantizers.PerChannel && c.Axis != 0 && c.Axis != -2:
			return fmt.Errorf("%s: per-channel weights along axis %d; compressed-tensors' channel strategy is per output channel (axis 0)", s.module, c.Axis)
		}
		return nil
	}
	if !c.Dynamic && c.Granularity != quantizers.PerTensor {
		return fmt.Errorf("%s %s: static %s activations; compressed-tensors stores static activation scales per tensor", s.module, s.site, c.Granularity)
	}
	return nil
}

// builder accumulates the tensors and descriptions of an export.
type builder struct {
	cfg     clip.Config
	format  string
	packed  bool
	tensors []safetensors.Tensor
	qf      QuantFile
	// args maps module -> compressed-tensors args of its weight / input.
	weightArgs, inputArgs map[string]*QuantArgs
	kvArgs                *QuantArgs
	report                Report
}

// add appends a tensor and counts its bytes for its tower.
func (b *builder) add(t safetensors.Tensor) {
	b.tensors = append(b.tensors, t)
}

// build quantizes the weights and collects every tensor.
func (b *builder) build(ctx *context.Context, sites []*site) error {
	b.qf = QuantFile{Format: QuantFileFormat, ExportFormat: b.format, Packed: b.packed}
	b.weightArgs, b.inputArgs = map[string]*QuantArgs{}, map[string]*QuantArgs{}
	weights := map[string]*site{}
	for _, s := range sites {
		if s.site == layers.SiteWeight {
			weights[s.module] = s
		}
	}
	floats, err := clip.Tensors(ctx, b.cfg)
	if err != nil {
		return err
	}
	for _, t := range floats {
		module, ok := strings.CutSuffix(t.Name, ".weight")
		s := weights[module]
		if !ok || s == nil {
			b.add(t)
			continue
		}
		if err := b.addWeight(t, s); err != nil {
			return err
		}
	}
	for _, s := range sites {
		if s.site != layers.SiteWeight {
			b.addActivation(s)
		}
	}
	b.report.Format, b.report.Packed, b.report.Sites, b.report.QuantizedWeights = b.format, b.packed, len(sites), len(weights)
	b.sizes()
	return nil
}

// scaleShape is the stored shape of a weight's scale and zero point.
func scaleShape(cfg quantizers.Config, dims []int) []int {
	switch cfg.Granularity {
	case quantizers.PerChannel:
		return []int{dims[0], 1}
	case quantizers.PerGroup:
		n := 1
		for _, d := range dims[1:] {
			n *= d
		}
		return []int{dims[0], n / cfg.GroupSize}
	}
	return []int{1}
}

// addWeight adds a quantized weight: its integers (or, for fake-quant-f32,
// dequantized values), scale and zero point.
func (b *builder) addWeight(t safetensors.Tensor, s *site) error {
	p, ok := clip.ParamByName(b.cfg, t.Name)
	if !ok {
		return fmt.Errorf("%s: not a parameter of the model", t.Name)
	}
	w, err := safetensors.DecodeFloat32(t.DType, t.Data)
	if err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	q, deq, err := s.quantizeWeight(w, p.Shape)
	if err != nil {
		return err
	}
	prefix := tensorPrefix(s.module, s.site)
	info := SiteInfo{Module: s.module, Site: s.site.String(), Config: s.cfg, Shift: shift(s.cfg), Scale: prefix + "_scale"}
	if b.format == FormatFakeQuantF32 {
		// The weight is stored dequantized: no scale tensors.
		info.Scale = ""
		b.add(safetensors.Float32Tensor(t.Name, p.HFShape, deq))
		b.qf.Sites = append(b.qf.Sites, info)
		return nil
	}
	rows := p.Shape[0]
	cols := len(q) / rows
	sshape := scaleShape(s.cfg, p.Shape)
	if b.packed {
		packed, words, err := packRows(q, rows, cols, s.cfg.Bits)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		b.add(safetensors.Int32Tensor(s.module+".weight_packed", []int{rows, words}, packed))
		b.add(int64Tensor(s.module+".weight_shape", []int64{int64(rows), int64(cols)}))
	} else {
		b.add(safetensors.Int8Tensor(t.Name, p.HFShape, q))
	}
	b.add(safetensors.Float32Tensor(info.Scale, sshape, s.scale))
	zero, allZero := s.storedZero()
	if !allZero {
		info.ZeroPoint = prefix + "_zero_point"
		if b.packed && s.cfg.Granularity != quantizers.PerTensor {
			// Packed along the output axis: transpose, pack rows, transpose back.
			k := len(zero) / rows
			pz, words, err := packRows(transposeInt8(zero, rows, k), k, rows, s.cfg.Bits)
			if err != nil {
				return fmt.Errorf("%s zero point: %w", t.Name, err)
			}
			b.add(safetensors.Int32Tensor(info.ZeroPoint, []int{words, k}, transposeInt32(pz, k, words)))
		} else {
			b.add(safetensors.Int8Tensor(info.ZeroPoint, sshape, zero))
		}
	}
	b.qf.Sites = append(b.qf.Sites, info)
	b.weightArgs[s.module] = ctArgs(s, allZero)
	return nil
}

// addActivation adds the parameters of an activation quantizer.
func (b *builder) addActivation(s *site) {
	prefix := tensorPrefix(s.module, s.site)
	info := SiteInfo{Module: s.module, Site: s.site.String(), Config: s.cfg, Shift: shift(s.cfg)}
	allZero := true
	if s.static() {
		info.Scale = prefix + "_scale"
		b.add(safetensors.Float32Tensor(info.Scale, s.paramDims, s.scale))
		var zero []int8
		zero, allZero = s.storedZero()
		if !allZero {
			info.ZeroPoint = prefix + "_zero_point"
			b.add(safetensors.Int8Tensor(info.ZeroPoint, s.paramDims, zero))
		}
		if s.cfg.Method == quantizers.MethodPACT {
			a := s.alpha
			info.PACTAlpha = &a
		}
	}
	b.qf.Sites = append(b.qf.Sites, info)
	args := ctArgs(s, allZero)
	switch s.site {
	case layers.SiteInput:
		b.inputArgs[s.module] = args
	case layers.SiteAttnKey:
		if b.kvArgs == nil {
			b.kvArgs = args
		}
	}
}

// int64Tensor returns an I64 tensor of shape [len(v)].
func int64Tensor(name string, v []int64) safetensors.Tensor {
	data := make([]byte, 8*len(v))
	for i, x := range v {
		u := uint64(x)
		for k := range 8 {
			data[8*i+k] = byte(u >> (8 * k))
		}
	}
	return safetensors.Tensor{Name: name, DType: safetensors.I64, Shape: []int{len(v)}, Data: data}
}

// ctArgs returns the compressed-tensors arguments of a site.
func ctArgs(s *site, symmetric bool) *QuantArgs {
	c := s.cfg
	a := &QuantArgs{NumBits: c.Bits, Type: "int", Symmetric: symmetric, Dynamic: c.Dynamic, ObserverKwargs: map[string]any{}}
	switch c.Granularity {
	case quantizers.PerChannel:
		a.Strategy = "channel"
	case quantizers.PerGroup:
		a.Strategy = "group"
		g := c.GroupSize
		a.GroupSize = &g
	default:
		a.Strategy = "tensor"
	}
	if !c.Dynamic {
		obs := "minmax"
		if c.Method == quantizers.MethodMSE {
			obs = "mse"
		}
		a.Observer = &obs
	}
	return a
}

// sizes fills the report's per-tower sizes.
func (b *builder) sizes() {
	float := map[string]int64{}
	for _, p := range clip.Params(b.cfg) {
		float[towerOf(p.Name)] += 4 * int64(p.Size())
	}
	stored := map[string]int64{}
	for _, t := range b.tensors {
		stored[towerOf(t.Name)] += int64(len(t.Data))
	}
	var total TowerSize
	total.Tower = "total"
	for _, name := range []string{"vision", "text", "other"} {
		ts := TowerSize{Tower: name, FloatBytes: float[name], ExportBytes: stored[name]}
		b.report.Towers = append(b.report.Towers, ts)
		total.FloatBytes += ts.FloatBytes
		total.ExportBytes += ts.ExportBytes
	}
	b.report.Towers = append(b.report.Towers, total)
}

// quantizationConfig builds config.json's quantization_config.
func (b *builder) quantizationConfig() *QuantizationConfig {
	type group struct {
		key    string
		scheme Scheme
	}
	var groups []*group
	byKey := map[string]*group{}
	quantized := map[string]bool{}
	for _, m := range clip.LinearModules(b.cfg) {
		w, in := b.weightArgs[m], b.inputArgs[m]
		if w == nil && in == nil {
			continue
		}
		quantized[m] = true
		kb, _ := json.Marshal([]*QuantArgs{w, in})
		g := byKey[string(kb)]
		if g == nil {
			g = &group{key: string(kb), scheme: Scheme{Weights: w, InputActivations: in}}
			byKey[g.key] = g
			groups = append(groups, g)
		}
		g.scheme.Targets = append(g.scheme.Targets, m)
	}
	qc := &QuantizationConfig{
		ConfigGroups:       map[string]Scheme{},
		QuantMethod:        QuantMethod,
		Format:             FormatIntQuantized,
		QuantizationStatus: StatusCompressed,
		Ignore:             []string{},
		KVCacheScheme:      b.kvArgs,
	}
	if b.packed {
		qc.Format = FormatPackQuantized
	}
	for i, g := range groups {
		qc.ConfigGroups[fmt.Sprintf("group_%d", i)] = g.scheme
	}
	for _, m := range clip.LinearModules(b.cfg) {
		if !quantized[m] {
			qc.Ignore = append(qc.Ignore, m)
		}
	}
	total := b.report.Towers[len(b.report.Towers)-1]
	if total.ExportBytes > 0 {
		qc.GlobalCompressionRatio = float64(total.FloatBytes) / float64(total.ExportBytes)
	}
	return qc
}

// configJSON returns config.json: the model's HF config, plus
// quantization_config for compressed-tensors.
func (b *builder) configJSON() ([]byte, error) {
	base, err := b.cfg.JSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, err
	}
	if b.format == FormatCompressedTensors {
		m["quantization_config"] = b.quantizationConfig()
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// writeFiles writes every file of the export into dir.
func (b *builder) writeFiles(dir string, plan *recipes.Plan, opts Options) error {
	cj, err := b.configJSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), cj, 0o644); err != nil {
		return err
	}
	meta := map[string]string{"format": "pt"}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFileName), b.tensors, meta); err != nil {
		return err
	}
	qj, err := json.MarshalIndent(b.qf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, QuantFileName), append(qj, '\n'), 0o644); err != nil {
		return err
	}
	if opts.ModelDir != "" {
		if err := copyTokenizer(opts.ModelDir, dir); err != nil {
			return err
		}
	}
	card, err := modelCard(b, plan, opts.Eval)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, CardFileName), card, 0o644)
}

// copyTokenizer copies the tokenizer files of src that exist into dst.
func copyTokenizer(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil || !st.IsDir() {
		return nil // a file source, or a hub id not on disk: nothing to copy
	}
	for _, name := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(src, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			return fmt.Errorf("copy tokenizer: %w", err)
		}
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
