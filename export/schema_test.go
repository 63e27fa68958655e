package export

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/safetensors"
	"github.com/qatclip/qatclip/layers/clip"
)

// Field names of compressed-tensors' QuantizationConfig, QuantizationScheme
// and QuantizationArgs as they appear in config.json.
var (
	ctConfigKeys = []string{"config_groups", "format", "global_compression_ratio", "ignore", "kv_cache_scheme", "quant_method", "quantization_status"}
	ctSchemeKeys = []string{"input_activations", "output_activations", "targets", "weights"}
	ctArgsKeys   = []string{"actorder", "block_structure", "dynamic", "group_size", "num_bits", "observer", "observer_kwargs", "strategy", "symmetric", "type"}
)

func keysOf(m map[string]any) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// TestCompressedTensorsSchema parses config.json and the safetensors header
// of exports and checks them against compressed-tensors' schema: field
// names, values, and for every target module the tensors (names, dtypes,
// shapes) its scheme implies; every ignored module keeps a float weight.
func TestCompressedTensorsSchema(t *testing.T) {
	b := newBackend(t)
	dir := fixtureModel(t)
	cases := []struct {
		recipe string
		sets   []string
		pack   bool
	}{
		{recipe: "w8a8-minmax-ptq.yaml"},
		{recipe: "w4a8-lsq.yaml"},
		{recipe: "w4a8-lsq.yaml", pack: true},
		{recipe: "w8a8-int-attention.yaml"},
		{recipe: "w4a8-lsq.yaml", sets: []string{"quantization.default.weights.granularity=per-group", "quantization.default.weights.group_size=8",
			"quantization.default.weights.symmetric=false", "quantization.default.weights.method=minmax"}},
	}
	for _, c := range cases {
		t.Run(c.recipe+strings.Join(c.sets, ",")+map[bool]string{true: "/packed"}[c.pack], func(t *testing.T) {
			q := calibrated(t, b, dir, c.recipe, c.sets...)
			out := filepath.Join(t.TempDir(), "export")
			if _, err := Write(out, q.source(), Options{PackInt4: c.pack}); err != nil {
				t.Fatal(err)
			}
			checkSchema(t, out, q.ck.Config, c.pack)
		})
	}
}

func checkSchema(t *testing.T, dir string, cfg clip.Config, packed bool) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	var config map[string]any
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	if config["model_type"] != "clip" || config["vision_config"] == nil || config["text_config"] == nil {
		t.Fatalf("config.json lost the HF config: %v", keysOf(config))
	}
	qc, ok := config["quantization_config"].(map[string]any)
	if !ok {
		t.Fatal("config.json has no quantization_config object")
	}
	if got := keysOf(qc); !slices.Equal(got, ctConfigKeys) {
		t.Fatalf("quantization_config keys %v, want %v", got, ctConfigKeys)
	}
	wantFormat := FormatIntQuantized
	if packed {
		wantFormat = FormatPackQuantized
	}
	if qc["quant_method"] != "compressed-tensors" || qc["format"] != wantFormat || qc["quantization_status"] != "compressed" {
		t.Fatalf("quant_method %v, format %v, status %v", qc["quant_method"], qc["format"], qc["quantization_status"])
	}
	if r, ok := qc["global_compression_ratio"].(float64); !ok || r <= 1 {
		t.Errorf("global_compression_ratio %v, want a number > 1", qc["global_compression_ratio"])
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	expect := map[string]bool{} // tensor names the schema accounts for
	tensor := func(name string, dtype safetensors.DType, shape []int) {
		t.Helper()
		info, ok := f.Info(name)
		if !ok {
			t.Fatalf("tensor %s is missing", name)
		}
		if info.DType != dtype || (shape != nil && !slices.Equal(info.Shape, shape)) {
			t.Fatalf("tensor %s: %s %v, want %s %v", name, info.DType, info.Shape, dtype, shape)
		}
		expect[name] = true
	}
	checkArgs := func(where string, a map[string]any) {
		t.Helper()
		if got := keysOf(a); !slices.Equal(got, ctArgsKeys) {
			t.Fatalf("%s keys %v, want %v", where, got, ctArgsKeys)
		}
		if a["type"] != "int" || a["block_structure"] != nil || a["actorder"] != nil {
			t.Fatalf("%s: type %v, block_structure %v, actorder %v", where, a["type"], a["block_structure"], a["actorder"])
		}
		switch a["strategy"] {
		case "tensor", "channel":
			if a["group_size"] != nil {
				t.Fatalf("%s: group_size %v with strategy %v", where, a["group_size"], a["strategy"])
			}
		case "group":
			if g, ok := a["group_size"].(float64); !ok || g <= 0 {
				t.Fatalf("%s: group strategy with group_size %v", where, a["group_size"])
			}
		default:
			t.Fatalf("%s: strategy %v", where, a["strategy"])
		}
	}
	groups := qc["config_groups"].(map[string]any)
	if len(groups) == 0 {
		t.Fatal("no config_groups")
	}
	targeted := map[string]bool{}
	for gname, gv := range groups {
		if !strings.HasPrefix(gname, "group_") {
			t.Errorf("group name %q", gname)
		}
		g := gv.(map[string]any)
		if got := keysOf(g); !slices.Equal(got, ctSchemeKeys) {
			t.Fatalf("%s keys %v, want %v", gname, got, ctSchemeKeys)
		}
		if g["output_activations"] != nil {
			t.Fatalf("%s: output_activations %v", gname, g["output_activations"])
		}
		w, _ := g["weights"].(map[string]any)
		in, _ := g["input_activations"].(map[string]any)
		if w != nil {
			checkArgs(gname+".weights", w)
		}
		if in != nil {
			checkArgs(gname+".input_activations", in)
		}
		for _, tv := range g["targets"].([]any) {
			m := tv.(string)
			targeted[m] = true
			p, ok := clip.ParamByName(cfg, m+".weight")
			if !ok {
				t.Fatalf("target %q is not a module", m)
			}
			out := p.Shape[0]
			cols := p.Size() / out
			if w != nil {
				bits := int(w["num_bits"].(float64))
				var sshape []int
				switch w["strategy"] {
				case "tensor":
					sshape = []int{1}
				case "channel":
					sshape = []int{out, 1}
				case "group":
					sshape = []int{out, cols / int(w["group_size"].(float64))}
				}
				if packed {
					per := 32 / bits
					tensor(m+".weight_packed", safetensors.I32, []int{out, (cols + per - 1) / per})
					tensor(m+".weight_shape", safetensors.I64, []int{2})
				} else {
					tensor(m+".weight", safetensors.I8, p.HFShape)
				}
				tensor(m+".weight_scale", safetensors.F32, sshape)
				if !w["symmetric"].(bool) {
					if packed && w["strategy"] != "tensor" {
						tensor(m+".weight_zero_point", safetensors.I32, nil)
					} else {
						tensor(m+".weight_zero_point", safetensors.I8, sshape)
					}
				} else if _, ok := f.Info(m + ".weight_zero_point"); ok {
					t.Fatalf("%s: symmetric weights with a zero point", m)
				}
			} else {
				tensor(m+".weight", safetensors.F32, p.HFShape)
			}
			if in != nil && !in["dynamic"].(bool) {
				tensor(m+".input_scale", safetensors.F32, []int{1})
				if !in["symmetric"].(bool) {
					tensor(m+".input_zero_point", safetensors.I8, []int{1})
				}
			}
		}
	}
	for _, iv := range qc["ignore"].([]any) {
		m := iv.(string)
		if targeted[m] {
			t.Fatalf("%s is both targeted and ignored", m)
		}
		p, _ := clip.ParamByName(cfg, m+".weight")
		tensor(m+".weight", safetensors.F32, p.HFShape)
	}
	for _, m := range clip.LinearModules(cfg) {
		if !targeted[m] && !slices.Contains(anyStrings(qc["ignore"]), m) {
			t.Errorf("Linear %s is neither targeted nor ignored", m)
		}
	}
	if kv, ok := qc["kv_cache_scheme"].(map[string]any); ok {
		checkArgs("kv_cache_scheme", kv)
	}
	// Every other tensor is a float parameter under its HF name, or a
	// documented attention-matmul parameter.
	for _, p := range clip.Params(cfg) {
		if !expect[p.Name] {
			if info, ok := f.Info(p.Name); ok && info.DType == safetensors.F32 {
				expect[p.Name] = true
			}
		}
	}
	for _, name := range f.Names() {
		if expect[name] {
			continue
		}
		if strings.Contains(name, ".self_attn.") && (strings.HasSuffix(name, "_scale") || strings.HasSuffix(name, "_zero_point")) {
			continue
		}
		t.Errorf("tensor %s is not described by the schema", name)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
