package clip

import (
	"encoding/json"
	"fmt"
	"github.com/qatclip/qatclip/internal/atomicfile"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/qatclip/qatclip/internal/safetensors"
)

// Layout names the parameter naming scheme of a checkpoint.
type Layout string

const (
	// LayoutHF is HF CLIPModel's naming ("vision_model.encoder.layers.0...").
	LayoutHF Layout = "hf"
	// LayoutOpenAI is openai/CLIP's and OpenCLIP's state-dict naming
	// ("visual.transformer.resblocks.0.attn.in_proj_weight", ...).
	LayoutOpenAI Layout = "openai"
)

// Checkpoint is a CLIP model read from disk: its config and its weights as
// float32, keyed by HF parameter name and laid out as [Params] describes.
type Checkpoint struct {
	// Config is the model's config (from config.json, or inferred from the
	// tensor shapes of an openai/CLIP state dict without one).
	Config Config
	// Path is the weights file (the index file for sharded checkpoints).
	Path string
	// Layout is the naming scheme the file used.
	Layout Layout
	// Weights maps each HF parameter name to its row-major float32 data.
	Weights map[string][]float32
	// Unused lists the file's tensors that are not model parameters (for
	// example HF's position_ids buffers), sorted.
	Unused []string
}

// Load reads a CLIP checkpoint. source is an HF model folder (config.json
// plus model.safetensors or a model.safetensors.index.json with its
// shards), a .safetensors file (with config.json beside it, or in
// openai/CLIP layout, whose config is inferred; see [InferOpenAIConfig]), an
// index file, or an HF hub id found in the local HF cache (see
// [ResolveSource]). F32, F16, BF16 and F64 weights are converted to
// float32. Every parameter's shape is checked against the config.
func Load(source string) (*Checkpoint, error) {
	path, err := ResolveSource(source)
	if err != nil {
		return nil, err
	}
	weightsPath, configPath, err := findFiles(path)
	if err != nil {
		return nil, err
	}
	set, err := openTensorSet(weightsPath)
	if err != nil {
		return nil, err
	}
	defer set.close()

	layout, err := detectLayout(set, weightsPath)
	if err != nil {
		return nil, err
	}
	var cfg Config
	switch {
	case configPath != "":
		if cfg, err = LoadConfig(configPath); err != nil {
			return nil, err
		}
		if err := rejectQuantized(configPath); err != nil {
			return nil, err
		}
	case layout == LayoutOpenAI:
		if cfg, err = InferOpenAIConfig(set.shapes()); err != nil {
			return nil, fmt.Errorf("%s: infer config from tensor shapes: %w (put a config.json beside it)", weightsPath, err)
		}
	default:
		return nil, fmt.Errorf("%s: no config.json beside it", weightsPath)
	}

	ck := &Checkpoint{Config: cfg, Path: weightsPath, Layout: layout, Weights: map[string][]float32{}}
	used := map[string]bool{}
	for _, p := range Params(cfg) {
		data, srcs, err := readParam(set, weightsPath, layout, p)
		if err != nil {
			return nil, err
		}
		for _, s := range srcs {
			used[s] = true
		}
		ck.Weights[p.Name] = data
	}
	for _, name := range set.names() {
		if !used[name] {
			ck.Unused = append(ck.Unused, name)
		}
	}
	return ck, nil
}

// rejectQuantized returns an error naming the export package when the
// config.json at path has a quantization_config: such a folder (a
// compressed-tensors export) holds integer weights that export.Load
// dequantizes, which this float loader does not.
func rejectQuantized(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var probe struct {
		Quant json.RawMessage `json:"quantization_config"`
	}
	if json.Unmarshal(data, &probe) == nil && len(probe.Quant) > 0 && string(probe.Quant) != "null" {
		return fmt.Errorf("model %s is a quantized export (its config.json has a quantization_config): load it with export.Load (qatclip embed --model reads it)", filepath.Dir(path))
	}
	return nil
}

// findFiles locates the weights file and the optional config.json of a
// resolved source path.
func findFiles(path string) (weights, config string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("model: %w", err)
	}
	dir := path
	if st.IsDir() {
		for _, name := range []string{"model.safetensors", "model.safetensors.index.json", "open_clip_model.safetensors"} {
			if _, err := os.Stat(filepath.Join(path, name)); err == nil {
				weights = filepath.Join(path, name)
				break
			}
		}
		if weights == "" {
			hint := ""
			if _, err := os.Stat(filepath.Join(path, "pytorch_model.bin")); err == nil {
				hint = " (only pytorch_model.bin, which qatclip does not read: convert it to safetensors)"
			}
			return "", "", fmt.Errorf("model %s: no model.safetensors or model.safetensors.index.json%s", path, hint)
		}
	} else {
		weights = path
		dir = filepath.Dir(path)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		config = filepath.Join(dir, "config.json")
	}
	return weights, config, nil
}

// tensorSet is the union of the tensors of one or more safetensors files.
type tensorSet struct {
	files  []*safetensors.File
	byName map[string]*safetensors.File
}

// openTensorSet opens a .safetensors file or every shard of an index file.
func openTensorSet(path string) (*tensorSet, error) {
	set := &tensorSet{byName: map[string]*safetensors.File{}}
	if !strings.HasSuffix(path, ".json") {
		f, err := safetensors.Open(path)
		if err != nil {
			return nil, err
		}
		set.add(f)
		return set, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors index: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("safetensors index %s: %w", path, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors index %s: empty or missing weight_map", path)
	}
	shards := map[string]*safetensors.File{}
	names := make([]string, 0, len(index.WeightMap))
	for name := range index.WeightMap {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		shard := index.WeightMap[name]
		if filepath.IsAbs(shard) || strings.Contains(shard, "..") {
			set.close()
			return nil, fmt.Errorf("safetensors index %s: tensor %q: bad shard name %q", path, name, shard)
		}
		f, ok := shards[shard]
		if !ok {
			f, err = safetensors.Open(filepath.Join(filepath.Dir(path), shard))
			if err != nil {
				set.close()
				return nil, fmt.Errorf("safetensors index %s: %w", path, err)
			}
			shards[shard] = f
			set.files = append(set.files, f)
		}
		if _, ok := f.Info(name); !ok {
			set.close()
			return nil, fmt.Errorf("safetensors index %s: tensor %q is not in shard %s", path, name, shard)
		}
		set.byName[name] = f
	}
	return set, nil
}

func (s *tensorSet) add(f *safetensors.File) {
	s.files = append(s.files, f)
	for _, n := range f.Names() {
		s.byName[n] = f
	}
}

func (s *tensorSet) close() {
	for _, f := range s.files {
		f.Close()
	}
}

func (s *tensorSet) names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *tensorSet) info(name string) (safetensors.TensorInfo, *safetensors.File, bool) {
	f, ok := s.byName[name]
	if !ok {
		return safetensors.TensorInfo{}, nil, false
	}
	info, _ := f.Info(name)
	return info, f, true
}

// shapes returns every tensor's shape by name.
func (s *tensorSet) shapes() map[string][]int {
	out := make(map[string][]int, len(s.byName))
	for n := range s.byName {
		info, _, _ := s.info(n)
		out[n] = info.Shape
	}
	return out
}

// detectLayout tells HF from openai/CLIP naming.
func detectLayout(s *tensorSet, path string) (Layout, error) {
	if _, _, ok := s.info("vision_model.embeddings.patch_embedding.weight"); ok {
		return LayoutHF, nil
	}
	if _, _, ok := s.info("visual.conv1.weight"); ok {
		return LayoutOpenAI, nil
	}
	names := s.names()
	if len(names) > 3 {
		names = append(names[:3], "...")
	}
	return "", fmt.Errorf("%s: neither an HF CLIPModel (vision_model.embeddings.patch_embedding.weight) nor an openai/CLIP state dict (visual.conv1.weight); tensors: %s",
		path, strings.Join(names, ", "))
}

// sourceOp says how a parameter is made from a checkpoint tensor.
type sourceOp int

const (
	opCopy      sourceOp = iota // same data
	opTranspose                 // 2-D transpose
	opThird                     // one third along dim 0 (q, k or v of in_proj)
)

// source describes where parameter p comes from in a checkpoint of a layout:
// the tensor name, its expected shape, and the operation (with the third's
// index for opThird).
func source(layout Layout, p Param) (name string, shape []int, op sourceOp, part int) {
	if layout == LayoutHF {
		return p.Name, p.HFShape, opCopy, 0
	}
	name, op, part = openaiName(p.Name)
	shape = p.HFShape
	switch op {
	case opTranspose:
		shape = []int{shape[1], shape[0]}
	case opThird:
		shape = append([]int{3 * shape[0]}, shape[1:]...)
	}
	return name, shape, op, part
}

// blockRe splits a transformer block parameter name.
var blockRe = regexp.MustCompile(`^(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$`)

// openaiName maps an HF parameter name to its openai/CLIP state-dict name.
func openaiName(hf string) (string, sourceOp, int) {
	if m := blockRe.FindStringSubmatch(hf); m != nil {
		prefix := "transformer.resblocks." + m[2] + "."
		if m[1] == "vision" {
			prefix = "visual." + prefix
		}
		rest := m[3]
		for i, qkv := range []string{"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."} {
			if v, ok := strings.CutPrefix(rest, qkv); ok {
				return prefix + "attn.in_proj_" + v, opThird, i
			}
		}
		for _, r := range [][2]string{
			{"self_attn.out_proj.", "attn.out_proj."},
			{"layer_norm1.", "ln_1."},
			{"layer_norm2.", "ln_2."},
			{"mlp.fc1.", "mlp.c_fc."},
			{"mlp.fc2.", "mlp.c_proj."},
		} {
			if v, ok := strings.CutPrefix(rest, r[0]); ok {
				return prefix + r[1] + v, opCopy, 0
			}
		}
		return prefix + rest, opCopy, 0
	}
	switch hf {
	case "vision_model.embeddings.class_embedding":
		return "visual.class_embedding", opCopy, 0
	case "vision_model.embeddings.patch_embedding.weight":
		return "visual.conv1.weight", opCopy, 0
	case "vision_model.embeddings.position_embedding.weight":
		return "visual.positional_embedding", opCopy, 0
	case "text_model.embeddings.token_embedding.weight":
		return "token_embedding.weight", opCopy, 0
	case "text_model.embeddings.position_embedding.weight":
		return "positional_embedding", opCopy, 0
	case "visual_projection.weight":
		return "visual.proj", opTranspose, 0
	case "text_projection.weight":
		return "text_projection", opTranspose, 0
	}
	for _, r := range [][2]string{
		{"vision_model.pre_layrnorm.", "visual.ln_pre."},
		{"vision_model.post_layernorm.", "visual.ln_post."},
		{"text_model.final_layer_norm.", "ln_final."},
	} {
		if v, ok := strings.CutPrefix(hf, r[0]); ok {
			return r[1] + v, opCopy, 0
		}
	}
	return hf, opCopy, 0
}

// readParam reads parameter p from the set, checks its shape and converts
// it to the variable layout. It returns the data and the tensor names used.
func readParam(s *tensorSet, path string, layout Layout, p Param) ([]float32, []string, error) {
	name, want, op, part := source(layout, p)
	info, f, ok := s.info(name)
	if !ok {
		if name != p.Name {
			return nil, nil, fmt.Errorf("checkpoint %s: tensor %q (for %s) is missing", path, name, p.Name)
		}
		return nil, nil, fmt.Errorf("checkpoint %s: tensor %q is missing", path, name)
	}
	got := info.Shape
	// logit_scale is a scalar in HF and openai/CLIP; accept [1] too.
	if p.Name == "logit_scale" && info.NumElements() == 1 {
		got = want
	}
	if !slices.Equal(got, want) {
		return nil, nil, fmt.Errorf("safetensors %s: tensor %q has shape %v but the config wants %v", f.Path(), name, info.Shape, want)
	}
	data, _, err := f.Float32(name)
	if err != nil {
		return nil, nil, err
	}
	switch op {
	case opTranspose:
		data = transpose2D(data, want[0], want[1])
	case opThird:
		n := len(data) / 3
		data = data[part*n : (part+1)*n]
	}
	return data, []string{name}, nil
}

// transpose2D returns the transpose of the row-major [rows, cols] matrix m.
func transpose2D(m []float32, rows, cols int) []float32 {
	out := make([]float32, len(m))
	for i := range rows {
		for j := range cols {
			out[j*rows+i] = m[i*cols+j]
		}
	}
	return out
}

// resblockRe finds transformer block indices in openai/CLIP names.
var resblockRe = regexp.MustCompile(`^(visual\.)?transformer\.resblocks\.(\d+)\.`)

// InferOpenAIConfig infers the config of an openai/CLIP (or OpenCLIP) state
// dict from its tensor shapes, as openai/CLIP's build_model does:
//
//   - vision width, channels and patch from visual.conv1.weight [width, C, p, p];
//     image size = patch * sqrt(rows of visual.positional_embedding - 1);
//   - text width from ln_final.weight, vocabulary from token_embedding.weight,
//     context length from positional_embedding, projection from text_projection;
//   - layers by counting the resblocks.N indices of each tower, MLP widths
//     from resblocks.0.mlp.c_fc.weight;
//   - heads = width / 64 in both towers (openai's rule);
//   - quick_gelu, LayerNorm eps 1e-5, and the end-of-text id vocab-1
//     (start-of-text vocab-2), as openai's tokenizer assigns them.
//
// Models that differ (e.g. OpenCLIP's GELU models or other head widths)
// need a config.json beside the file.
func InferOpenAIConfig(shapes map[string][]int) (Config, error) {
	get := func(name string, rank int) ([]int, error) {
		s, ok := shapes[name]
		if !ok {
			return nil, fmt.Errorf("tensor %q is missing", name)
		}
		if len(s) != rank {
			return nil, fmt.Errorf("tensor %q has shape %v, want rank %d", name, s, rank)
		}
		return s, nil
	}
	cfg := DefaultConfig()
	conv, err := get("visual.conv1.weight", 4)
	if err != nil {
		return Config{}, err
	}
	vpos, err := get("visual.positional_embedding", 2)
	if err != nil {
		return Config{}, err
	}
	lnFinal, err := get("ln_final.weight", 1)
	if err != nil {
		return Config{}, err
	}
	tok, err := get("token_embedding.weight", 2)
	if err != nil {
		return Config{}, err
	}
	tpos, err := get("positional_embedding", 2)
	if err != nil {
		return Config{}, err
	}
	tproj, err := get("text_projection", 2)
	if err != nil {
		return Config{}, err
	}
	vfc, err := get("visual.transformer.resblocks.0.mlp.c_fc.weight", 2)
	if err != nil {
		return Config{}, err
	}
	tfc, err := get("transformer.resblocks.0.mlp.c_fc.weight", 2)
	if err != nil {
		return Config{}, err
	}
	v := &cfg.Vision
	v.HiddenSize, v.NumChannels, v.PatchSize = conv[0], conv[1], conv[2]
	grid := 0
	for grid*grid < vpos[0]-1 {
		grid++
	}
	if grid*grid != vpos[0]-1 {
		return Config{}, fmt.Errorf("visual.positional_embedding has %d rows, not 1 + a square number of patches", vpos[0])
	}
	v.ImageSize = grid * v.PatchSize
	v.IntermediateSize = vfc[0]
	t := &cfg.Text
	t.HiddenSize, t.VocabSize, t.MaxPositionEmbeddings = lnFinal[0], tok[0], tpos[0]
	t.IntermediateSize = tfc[0]
	t.BosTokenID, t.EosTokenID = t.VocabSize-2, t.VocabSize-1
	cfg.ProjectionDim = tproj[1]
	vlayers, tlayers := 0, 0
	for name := range shapes {
		m := resblockRe.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if m[1] != "" {
			vlayers = max(vlayers, n+1)
		} else {
			tlayers = max(tlayers, n+1)
		}
	}
	v.NumHiddenLayers, t.NumHiddenLayers = vlayers, tlayers
	if v.HiddenSize%64 != 0 || t.HiddenSize%64 != 0 {
		return Config{}, fmt.Errorf("widths %d (vision) and %d (text) are not multiples of 64, so heads = width/64 does not apply", v.HiddenSize, t.HiddenSize)
	}
	v.NumAttentionHeads, t.NumAttentionHeads = v.HiddenSize/64, t.HiddenSize/64
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// SetVariables stores the checkpoint's weights in ctx: each parameter
// becomes (or overwrites) the variable [Param.Var] in scope
// ctx.In([Param.Module]) (logit_scale in ctx's own scope).
func (ck *Checkpoint) SetVariables(ctx *context.Context) error {
	for _, p := range Params(ck.Config) {
		data, ok := ck.Weights[p.Name]
		if !ok {
			return fmt.Errorf("checkpoint %s: no weights for %s", ck.Path, p.Name)
		}
		if len(data) != p.Size() {
			return fmt.Errorf("checkpoint %s: %s has %d values, want %d for shape %v", ck.Path, p.Name, len(data), p.Size(), p.Shape)
		}
		if err := setVariable(ctx, p, tensors.FromFlatDataAndDimensions(slices.Clone(data), p.Shape...)); err != nil {
			return fmt.Errorf("checkpoint %s: %w", ck.Path, err)
		}
	}
	return nil
}

// setVariable creates or overwrites the variable of p under ctx.
func setVariable(ctx *context.Context, p Param, value *tensors.Tensor) error {
	vctx := ctx
	if p.Module != "" {
		vctx = ctx.In(p.Module)
	}
	if v := ctx.GetVariableByScopeAndName(vctx.Scope(), p.Var); v != nil {
		if !v.Shape().Equal(value.Shape()) {
			return fmt.Errorf("variable %s has shape %s, checkpoint has %s", p.Name, v.Shape(), value.Shape())
		}
		return v.SetValue(value)
	}
	vctx.Checked(false).VariableWithValue(p.Var, value)
	return nil
}

// Tensors returns the model variables of ctx as F32 safetensors tensors
// with HF names and shapes, in the order of [Params]. Every parameter of
// cfg must exist in ctx with the expected shape.
func Tensors(ctx *context.Context, cfg Config) ([]safetensors.Tensor, error) {
	params := Params(cfg)
	out := make([]safetensors.Tensor, 0, len(params))
	for _, p := range params {
		v := ctx.GetVariableByScopeAndName(p.Scope(ctx.Scope()), p.Var)
		if v == nil {
			return nil, fmt.Errorf("variable %s (scope %s) does not exist", p.Name, p.Scope(ctx.Scope()))
		}
		if !slices.Equal(v.Shape().Dimensions, p.Shape) && !(len(p.Shape) == 0 && v.Shape().Size() == 1) {
			return nil, fmt.Errorf("variable %s has shape %s, want %v", p.Name, v.Shape(), p.Shape)
		}
		value, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", p.Name, err)
		}
		var data []float32
		err = value.ConstFlatData(func(flat any) {
			if f, ok := flat.([]float32); ok {
				data = slices.Clone(f)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", p.Name, err)
		}
		if data == nil {
			return nil, fmt.Errorf("variable %s has dtype %s, want float32", p.Name, value.DType())
		}
		out = append(out, safetensors.Float32Tensor(p.Name, p.HFShape, data))
	}
	return out, nil
}

// SaveHF writes the model in ctx as an HF CLIPModel folder: dir/config.json
// and dir/model.safetensors (F32, HF names), each written atomically.
// extra tensors (e.g. quantization parameters) are added to the file.
func SaveHF(ctx *context.Context, cfg Config, dir string, extra ...safetensors.Tensor) error {
	ts, err := Tensors(ctx, cfg)
	if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	cj, err := cfg.JSON()
	if err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, "config.json"), append(cj, '\n')); err != nil {
		return err
	}
	return safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), append(ts, extra...), map[string]string{"format": "pt"})
}
