package recipes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/quantizers"
)

// clipModules lists the quantizable modules of an HF CLIPModel with the
// given sizes, in the order the model runs them. Tests use it instead of
// layers/clip so this package stays below the model in the import graph.
func clipModules(vLayers, vWidth, vMLP, patchIn, tLayers, tWidth, tMLP, proj int) []Module {
	var ms []Module
	tower := func(prefix string, layers, width, mlp int) {
		for i := range layers {
			block := fmt.Sprintf("%s.encoder.layers.%d", prefix, i)
			ms = append(ms, Module{Name: block + ".self_attn", Kind: Attention})
			for _, p := range []string{"q_proj", "k_proj", "v_proj"} {
				ms = append(ms, Module{Name: block + ".self_attn." + p, InFeatures: width, OutFeatures: width})
			}
			ms = append(ms,
				Module{Name: block + ".self_attn.out_proj", InFeatures: width, OutFeatures: width},
				Module{Name: block + ".mlp.fc1", InFeatures: width, OutFeatures: mlp},
				Module{Name: block + ".mlp.fc2", InFeatures: mlp, OutFeatures: width})
		}
	}
	ms = append(ms, Module{Name: "vision_model.embeddings.patch_embedding", InFeatures: patchIn, OutFeatures: vWidth})
	tower("vision_model", vLayers, vWidth, vMLP)
	ms = append(ms, Module{Name: "visual_projection", InFeatures: vWidth, OutFeatures: proj})
	tower("text_model", tLayers, tWidth, tMLP)
	ms = append(ms, Module{Name: "text_projection", InFeatures: tWidth, OutFeatures: proj})
	return ms
}

// clipTiny is ../shared/golden/clip-tiny: vision 2 layers width 128 (MLP
// 512, patches 3x8x8), text 2 layers width 64 (MLP 256), projection 32.
func clipTiny() []Module { return clipModules(2, 128, 512, 192, 2, 64, 256, 32) }

func TestShippedRecipesResolve(t *testing.T) {
	names := Shipped()
	want := []string{"pact-w4a4.yaml", "w4a4-lsq-kd.yaml", "w4a8-lsq.yaml", "w4a8-lsqplus.yaml",
		"w8a8-int-attention.yaml", "w8a8-lsq.yaml", "w8a8-minmax-ptq.yaml"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("Shipped() = %v, want %v", names, want)
	}
	modules := clipTiny()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# ") {
				t.Errorf("%s does not start with a comment saying when to use it", name)
			}
			r, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name+".yaml" != name {
				t.Errorf("name %q does not match file %s", r.Name, name)
			}
			plan, err := Resolve(r, modules)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(plan.Layers), 27; got != want {
				t.Errorf("plan has %d layers, want %d", got, want)
			}
			if plan.Quantized() == 0 {
				t.Errorf("no layer quantized")
			}
			var b strings.Builder
			if err := plan.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, m := range modules {
				if m.Kind == Linear && !strings.Contains(b.String(), m.Name+" ") {
					t.Errorf("table lacks %s:\n%s", m.Name, b.String())
				}
			}
		})
	}
}

func TestEmbeddedByName(t *testing.T) {
	for _, name := range []string{"w8a8-lsq", "w8a8-lsq.yaml", "elsewhere/recipes/w8a8-lsq.yaml"} {
		src, data, err := Open(name)
		if err != nil {
			t.Fatalf("Open(%q): %v", name, err)
		}
		// The directory of this test holds w8a8-lsq.yaml, so the second
		// name is read from disk; the others come from the binary.
		wantSrc := "<embedded>/w8a8-lsq.yaml"
		if name == "w8a8-lsq.yaml" {
			wantSrc = name
		}
		if src != wantSrc || len(data) == 0 {
			t.Errorf("Open(%q) = %q (%d bytes), want %q", name, src, len(data), wantSrc)
		}
	}
	if _, _, err := Open("no-such-recipe"); err == nil || !strings.Contains(err.Error(), "w8a8-lsq.yaml") {
		t.Errorf("Open(no-such-recipe) = %v, want an error listing the shipped recipes", err)
	}
}

func TestW4A8Plan(t *testing.T) {
	r, err := Load("w4a8-lsq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Resolve(r, clipTiny())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		module, weights, activations, float string
	}{
		{"vision_model.encoder.layers.0.self_attn.q_proj", "lsq int4 sym per-channel", "lsq uint8 asym per-tensor", ""},
		{"vision_model.encoder.layers.1.mlp.fc2", "lsq int4 sym per-channel", "lsq uint8 asym per-tensor", ""},
		{"text_model.encoder.layers.0.mlp.fc1", "lsq int8 sym per-channel", "lsq uint8 asym per-tensor", ""},
		{"vision_model.embeddings.patch_embedding", "float", "float", `ignored by "re:.*embeddings.*"`},
		{"text_projection", "float", "float", `ignored by "text_projection"`},
	}
	for _, tc := range tests {
		l, ok := plan.Layer(tc.module)
		if !ok {
			t.Fatalf("no plan for %s", tc.module)
		}
		if got := Describe(l.Weights); got != tc.weights {
			t.Errorf("%s weights = %q, want %q", tc.module, got, tc.weights)
		}
		if got := Describe(l.Activations); got != tc.activations {
			t.Errorf("%s activations = %q, want %q", tc.module, got, tc.activations)
		}
		if l.FloatReason != tc.float {
			t.Errorf("%s float reason = %q, want %q", tc.module, l.FloatReason, tc.float)
		}
	}
	if a, _ := plan.AttentionOf("vision_model.encoder.layers.0.self_attn"); a.Activations != nil {
		t.Errorf("attention matmuls quantized without attention_matmuls")
	}
	if got := plan.Quantized(); got != 24 {
		t.Errorf("Quantized() = %d, want 24 (4 blocks x 6 Linears)", got)
	}
}

func TestIntAttentionPlan(t *testing.T) {
	r, err := Load("w8a8-int-attention.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Resolve(r, clipTiny())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Attention) != 4 {
		t.Fatalf("got %d attention plans, want 4", len(plan.Attention))
	}
	for _, a := range plan.Attention {
		if got, want := Describe(a.Activations), "minmax uint8 asym per-tensor ema=0.9"; got != want {
			t.Errorf("%s: %q, want %q", a.Module, got, want)
		}
	}
}

// badCase is a malformed recipe and the one-line error it must give.
type badCase struct {
	name      string
	yaml      string
	overrides []string
	resolve   bool     // the error comes from Resolve, not Parse
	want      []string // substrings of the error, in order
}

func TestBadRecipes(t *testing.T) {
	tests := []badCase{
		{name: "unknown top key", yaml: "name: x\nquantisation: {}\n",
			want: []string{"bad.yaml:2: quantisation: unknown key (known keys: name, model, quantization"}},
		{name: "unknown nested key", yaml: "quantization:\n  default:\n    weights:\n      bitz: 4\n",
			want: []string{"bad.yaml:4: quantization.default.weights.bitz: unknown key", "bits"}},
		{name: "wrong type", yaml: "quantization:\n  default:\n    weights: {bits: four}\n",
			want: []string{"bad.yaml:3: quantization.default.weights.bits: expected an integer, got \"four\""}},
		{name: "bits above 8", yaml: "quantization:\n  default:\n    activations:\n      bits: 9\n",
			want: []string{"bad.yaml:4: quantization.default.activations.bits: 9 "}},
		{name: "bits in override", yaml: "quantization:\n  overrides:\n    - match: visual_projection\n      weights: {bits: 1}\n",
			want: []string{"bad.yaml:4: quantization.overrides[0].weights.bits: 1 "}},
		{name: "invalid regex", yaml: "quantization:\n  targets:\n    - \"*\"\n    - \"re:.*(q|k\"\n",
			want: []string{"bad.yaml:4: quantization.targets[1]: invalid regular expression \".*(q|k\"", "missing closing )"}},
		{name: "bad glob in ignore", yaml: "quantization:\n  ignore: [\"text_model[\"]\n",
			want: []string{"bad.yaml:2: quantization.ignore[0]: invalid glob \"text_model[\""}},
		{name: "percentile out of range", yaml: "quantization:\n  default:\n    activations: {method: percentile, percentile: 120}\n",
			want: []string{"bad.yaml:3: quantization.default.activations.percentile: 120 "}},
		{name: "unknown method", yaml: "quantization:\n  default:\n    weights:\n      method: lsqq\n",
			want: []string{"bad.yaml:4: quantization.default.weights.method: \"lsqq\" is not one of", "\"lsq+\""}},
		{name: "target matches nothing", yaml: "quantization:\n  targets:\n    - \"re:.*fc1$\"\n    - \"re:.*fc3$\"\n", resolve: true,
			want: []string{"bad.yaml:4: quantization.targets[1]: \"re:.*fc3$\" matches no layer"}},
		{name: "target and ignore conflict", yaml: "quantization:\n  targets: [\"*\"]\n  ignore: [visual_projection]\n", resolve: true,
			want: []string{"bad.yaml:3: quantization.ignore[0]: \"visual_projection\" and quantization.targets[0] \"*\" both match visual_projection", "precedence"}},
		{name: "override matches nothing", yaml: "quantization:\n  overrides:\n    - {match: vision_proj, weights: {bits: 4}}\n", resolve: true,
			want: []string{"bad.yaml:3: quantization.overrides[0].match: \"vision_proj\" matches no layer"}},
		{name: "group size does not divide", yaml: "quantization:\n  default:\n    weights: {granularity: per-group, group_size: 48}\n", resolve: true,
			want: []string{"bad.yaml:3: quantization.default.weights.group_size: 48 does not divide the 128 input features of vision_model.encoder.layers.0.self_attn.q_proj"}},
		{name: "duplicate key", yaml: "train:\n  epochs: 2\n  epochs: 3\n",
			want: []string{"bad.yaml:3: train.epochs: key given twice"}},
		{name: "yaml syntax", yaml: "train:\n  epochs: [2\n",
			want: []string{"bad.yaml:", "invalid YAML"}},
		{name: "epochs zero", yaml: "train: {epochs: 0}\n",
			want: []string{"bad.yaml:1: train.epochs: 0 must be at least 1"}},
		{name: "start step and epoch", yaml: "quantization:\n  schedule:\n    start_epoch: 1\n    start_step: 10\n",
			want: []string{"bad.yaml:4: quantization.schedule.start_step: give start_step or start_epoch, not both"}},
		{name: "ood without path", yaml: "eval:\n  ood:\n    - name: textures\n",
			want: []string{"bad.yaml:3: eval.ood[0].path: required"}},
		{name: "ood duplicate names", yaml: "eval:\n  ood:\n    - {name: a, path: x}\n    - {name: a, path: y}\n",
			want: []string{"bad.yaml:4: eval.ood[1].name: \"a\" is also the name of eval.ood[0]"}},
		{name: "logit scale word", yaml: "eval:\n  logit_scale: big\n",
			want: []string{"bad.yaml:2: eval.logit_scale: \"big\" is neither \"model\" nor a positive number"}},
		{name: "pack int4 with float export", yaml: "export:\n  format: fake-quant-f32\n  pack_int4: true\n",
			want: []string{"bad.yaml:3: export.pack_int4: needs format \"compressed-tensors\""}},
		{name: "per-group activations", yaml: "quantization:\n  default:\n    activations: {granularity: per-group}\n",
			want: []string{"bad.yaml:3: quantization.default.activations.granularity: per-group applies to weights only"}},
		{name: "dynamic lsq", yaml: "quantization:\n  default:\n    activations: {method: lsq, dynamic: true}\n",
			want: []string{"bad.yaml:3: quantization.default.activations.dynamic: method \"lsq\""}},
		{name: "pact signed", yaml: "quantization:\n  default:\n    activations: {method: pact, symmetric: true}\n",
			want: []string{"bad.yaml:3: quantization.default.activations.signed: method \"pact\""}},
		{name: "momentum on lsq", yaml: "quantization:\n  overrides:\n    - match: \"*\"\n      activations:\n        method: lsq\n        momentum: 0.9\n",
			want: []string{"bad.yaml:6: quantization.overrides[0].activations.momentum: "}},
		{name: "targets not a list", yaml: "quantization:\n  targets: \"*\"\n",
			want: []string{"bad.yaml:2: quantization.targets: expected a list of strings, got \"*\""}},
		{name: "betas length", yaml: "train:\n  optimizer:\n    betas: [0.9]\n",
			want: []string{"bad.yaml:3: train.optimizer.betas: expected 2 values, got 1"}},
		{name: "distill kind", yaml: "train:\n  loss:\n    distill: {weight: 1, kind: kl}\n",
			want: []string{"bad.yaml:3: train.loss.distill.kind: \"kl\" is not one of \"logits\", \"features\""}},
		{name: "no loss", yaml: "train:\n  loss: {contrastive: 0}\n",
			want: []string{"bad.yaml:2: train.loss: every loss weight is 0"}},
		{name: "best metric", yaml: "train:\n  checkpoint:\n    best: {metric: acc1 - 0.5*tsece}\n",
			want: []string{"bad.yaml:3: train.checkpoint.best.metric:", "unknown metric \"tsece\""}},
		{name: "null for a number", yaml: "train:\n  batch_size: null\n",
			want: []string{"bad.yaml:2: train.batch_size: expected an integer, got null"}},
		{name: "set unknown key", yaml: "name: x\n", overrides: []string{"train.epoch=3"},
			want: []string{"--set train.epoch=3: train.epoch: unknown key"}},
		{name: "set wrong type", yaml: "name: x\n", overrides: []string{"train.batch_size=big"},
			want: []string{"--set train.batch_size=big: train.batch_size: expected an integer, got \"big\""}},
		{name: "set bits out of range", yaml: "quantization:\n  default:\n    weights: {bits: 4}\n", overrides: []string{"quantization.default.weights.bits=12"},
			want: []string{"--set quantization.default.weights.bits=12: quantization.default.weights.bits: 12 "}},
		{name: "set without value", yaml: "name: x\n", overrides: []string{"train.epochs"},
			want: []string{"--set train.epochs: expected key.path=value"}},
	}
	if len(tests) < 15 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse("bad.yaml", []byte(tc.yaml), tc.overrides...)
			if tc.resolve {
				if err != nil {
					t.Fatalf("Parse: %v (want it to pass and Resolve to fail)", err)
				}
				_, err = Resolve(r, clipTiny())
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			var re *Error
			if !errors.As(err, &re) {
				t.Errorf("error %q is %T, want *Error", msg, err)
			}
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestEmptyRecipeIsDefault(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "{}\n"} {
		r, err := Parse("recipes/empty.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		want := Default()
		want.Name = "empty"
		if !reflect.DeepEqual(stripped(r), stripped(&want)) {
			t.Errorf("%q: got %+v, want the defaults %+v", src, *r, want)
		}
	}
}

// stripped drops the unexported bookkeeping for comparisons.
func stripped(r *Recipe) Recipe {
	c := *r
	c.source, c.origins = "", nil
	return c
}

func TestPartialSchemesKeepDefaults(t *testing.T) {
	r, err := Parse("p.yaml", []byte("quantization:\n  default:\n    weights: {bits: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := r.Quantization.Default.Weights
	if w.Bits != 4 || w.Method != "minmax" || w.Granularity != quantizers.PerChannel || !w.Symmetric || w.Percentile != 99.99 {
		t.Errorf("weights = %+v, want bits 4 and the other defaults", w)
	}
	if !r.Given("quantization.default.weights.bits") || r.Given("quantization.default.weights.method") {
		t.Errorf("Given does not track the keys the file set")
	}
}

func TestOverridesApplyInOrder(t *testing.T) {
	src := `
quantization:
  default:
    weights: {method: lsq, bits: 4}
  overrides:
    - {match: "re:^text_model\\.", weights: {bits: 8, narrow_range: true}}
    - {match: "*.fc2", weights: {bits: 6}, activations: {method: none}}
`
	r, err := Parse("o.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Resolve(r, clipTiny())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ module, weights, activations string }{
		{"text_model.encoder.layers.0.mlp.fc2", "lsq int6 sym per-channel narrow", "float"},
		{"text_model.encoder.layers.0.mlp.fc1", "lsq int8 sym per-channel narrow", "minmax uint8 asym per-tensor"},
		{"vision_model.encoder.layers.1.mlp.fc2", "lsq int6 sym per-channel", "float"},
		{"vision_model.encoder.layers.1.mlp.fc1", "lsq int4 sym per-channel", "minmax uint8 asym per-tensor"},
	}
	for _, tc := range tests {
		l, _ := plan.Layer(tc.module)
		if got := Describe(l.Weights); got != tc.weights {
			t.Errorf("%s weights %q, want %q", tc.module, got, tc.weights)
		}
		if got := Describe(l.Activations); got != tc.activations {
			t.Errorf("%s activations %q, want %q", tc.module, got, tc.activations)
		}
	}
	// The patch leaves the recipe's own default untouched.
	if r.Quantization.Default.Weights.Bits != 4 || r.Quantization.Default.Weights.NarrowRange {
		t.Errorf("default weights changed: %+v", r.Quantization.Default.Weights)
	}
}

func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		precedence string
		float      bool
	}{{"ignore", true}, {"targets", false}} {
		src := "quantization:\n  targets: [\"*\"]\n  ignore: [\"re:.*projection\"]\n  precedence: " + tc.precedence + "\n"
		r, err := Parse("p.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		plan, err := Resolve(r, clipTiny())
		if err != nil {
			t.Fatal(err)
		}
		l, _ := plan.Layer("visual_projection")
		if got := l.Weights == nil; got != tc.float {
			t.Errorf("precedence %s: visual_projection float = %v, want %v (%s)", tc.precedence, got, tc.float, l.FloatReason)
		}
	}
}

func TestApply(t *testing.T) {
	r, err := Load("w4a8-lsq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = r.Apply([]string{
		"train.epochs=2",
		"train.optimizer.lr=5e-6",
		"model.source=../shared/golden/clip-tiny",
		"train.data.path=data/train/",
		"quantization.default.activations={bits: 6, symmetric: true}",
		`quantization.targets=["re:.*fc1$"]`,
		"quantization.ignore=[]",
		"quantization.schedule.freeze_observers_at_epoch=null",
		"smoothquant.alpha=0.25",
		"eval.logit_scale=100",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Quantization.Default.Activations
	switch {
	case r.Train.Epochs != 2 || r.Train.Optimizer.LR != 5e-6:
		t.Errorf("train = %+v", r.Train)
	case r.Model.Source != "../shared/golden/clip-tiny" || r.Train.Data.Path != "data/train/":
		t.Errorf("model.source %q data.path %q", r.Model.Source, r.Train.Data.Path)
	case a.Bits != 6 || !a.Symmetric || a.Method != "lsq":
		t.Errorf("activations = %+v, want bits 6 symmetric and method kept", a)
	case !reflect.DeepEqual(r.Quantization.Targets, []string{"re:.*fc1$"}) || len(r.Quantization.Ignore) != 0:
		t.Errorf("targets %q ignore %q", r.Quantization.Targets, r.Quantization.Ignore)
	case r.Quantization.Schedule.FreezeObserversAtEpoch != nil:
		t.Errorf("freeze_observers_at_epoch not unset")
	case r.SmoothQuant == nil || r.SmoothQuant.Alpha != 0.25:
		t.Errorf("smoothquant = %+v", r.SmoothQuant)
	}
	if s, fromModel, err := r.Eval.LogitScale.Value(); err != nil || fromModel || s != 100 {
		t.Errorf("logit scale = %v %v %v", s, fromModel, err)
	}
	// Errors after an override name the override.
	err = r.Apply([]string{"quantization.default.weights.granularity=per-row"})
	if err == nil || !strings.HasPrefix(err.Error(), "--set quantization.default.weights.granularity=per-row: quantization.default.weights.granularity: \"per-row\" is not one of") {
		t.Errorf("got %v", err)
	}
}

func TestApplyErrorLeavesRecipe(t *testing.T) {
	r, err := Load("w8a8-lsq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ set, want string }{
		{"smoothquant.alfa=1", "--set smoothquant.alfa=1: smoothquant.alfa: unknown key (known keys: alpha)"},
		{"eval.logit_scale.x=1", "--set eval.logit_scale.x=1: eval.logit_scale: \"model\" or a number has no keys"},
		{"train.epochs=[1", "--set train.epochs=[1: train.epochs: invalid YAML value"},
	} {
		err := r.Apply([]string{tc.set})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Apply(%q) = %v, want %q", tc.set, err, tc.want)
		}
	}
	if r.SmoothQuant != nil {
		t.Errorf("a failed override created the smoothquant section")
	}
}

func TestSmoothQuantSection(t *testing.T) {
	for _, tc := range []struct {
		src   string
		alpha float64
		on    bool
	}{
		{"name: x\n", 0, false},
		{"smoothquant: {}\n", 0.5, true},
		{"smoothquant: {alpha: 0.8}\n", 0.8, true},
		{"smoothquant: null\n", 0, false},
	} {
		r, err := Parse("s.yaml", []byte(tc.src))
		if err != nil {
			t.Fatal(err)
		}
		if (r.SmoothQuant != nil) != tc.on || (tc.on && r.SmoothQuant.Alpha != tc.alpha) {
			t.Errorf("%q: smoothquant = %+v", tc.src, r.SmoothQuant)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for i, name := range append(Shipped(), Shipped()...) {
		var sets []string
		if i%2 == 1 {
			sets = []string{"smoothquant.alpha=0.3", "eval.logit_scale=100"}
		}
		r, err := Load(name, sets...)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(name, out)
		if err != nil {
			t.Fatalf("%s: re-reading the marshalled recipe: %v\n%s", name, err, out)
		}
		if !reflect.DeepEqual(stripped(back), stripped(r)) {
			t.Errorf("%s: round trip differs:\n%+v\n%+v", name, stripped(back), stripped(r))
		}
	}
}

func TestPattern(t *testing.T) {
	const fc1 = "vision_model.encoder.layers.0.mlp.fc1"
	tests := []struct {
		pattern string
		name    string
		match   bool
	}{
		{"visual_projection", "visual_projection", true},
		{"visual_projection", "text_projection", false},
		{"*.mlp.fc1", fc1, true},
		{"*fc1", fc1, true},
		{"vision_model.*", fc1, true},
		{"vision_model.encoder.layers.?.mlp.fc1", fc1, true},
		{"vision_model.encoder.layers.[1-9].mlp.fc1", fc1, false},
		{"re:.*mlp\\.fc[12]$", fc1, true},
		{"re:vision_model", fc1, true}, // re.match: anchored at the start only
		{"re:mlp", fc1, false},         // not a search
		{"re:.*mlp$", fc1, false},
		{"re:.*fc", fc1, true},
	}
	for _, tc := range tests {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.Match(tc.name); got != tc.match {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.name, got, tc.match)
		}
	}
	p, _ := ParsePattern("text_model")
	if !p.MatchScope("text_model.encoder.layers.0.mlp.fc1") || p.MatchScope("text_projection") {
		t.Errorf("MatchScope wrong")
	}
	for _, bad := range []string{"", "re:", "re:(", "a[b"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) gave no error", bad)
		}
	}
}

func TestParseMetric(t *testing.T) {
	tests := []struct {
		in   string
		want []MetricTerm
	}{
		{"acc1", []MetricTerm{{1, "acc1"}}},
		{"acc1 - 0.5*ts_ece + 0.5*auroc", []MetricTerm{{1, "acc1"}, {-0.5, "ts_ece"}, {0.5, "auroc"}}},
		{"-ece+1e-1*aurc", []MetricTerm{{-1, "ece"}, {0.1, "aurc"}}},
	}
	for _, tc := range tests {
		got, err := ParseMetric(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMetric(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "acc2", "acc1 ece", "0.5*", "acc1 -"} {
		if _, err := ParseMetric(bad); err == nil {
			t.Errorf("ParseMetric(%q) gave no error", bad)
		}
	}
}

func TestDescribe(t *testing.T) {
	signed := true
	tests := []struct {
		c    *quantizers.Config
		want string
	}{
		{nil, "float"},
		{&quantizers.Config{Method: "lsq", Bits: 4, Symmetric: true, Granularity: quantizers.PerChannel}, "lsq int4 sym per-channel"},
		{&quantizers.Config{Method: "minmax", Bits: 8, Granularity: quantizers.PerTensor, Momentum: 0.9}, "minmax uint8 asym per-tensor ema=0.9"},
		{&quantizers.Config{Method: "percentile", Percentile: 99.9, Bits: 8, Signed: &signed, Granularity: quantizers.PerTensor, Dynamic: true}, "percentile(99.9) int8 asym per-tensor dynamic"},
		{&quantizers.Config{Method: "minmax", Bits: 4, Symmetric: true, Granularity: quantizers.PerGroup, GroupSize: 32}, "minmax int4 sym per-group(32)"},
	}
	for _, tc := range tests {
		if got := Describe(tc.c); got != tc.want {
			t.Errorf("Describe(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

// TestDocsListEveryKey checks docs/RECIPES.md names every key of the
// schema: each key path, and the scheme keys (quantizers.Config) once.
func TestDocsListEveryKey(t *testing.T) {
	data, err := os.ReadFile("../docs/RECIPES.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, k := range keyPaths(recipeType, "") {
		parent := parentKey(k)
		if strings.HasSuffix(parent, ".weights") || strings.HasSuffix(parent, ".activations") {
			continue // scheme keys, checked below
		}
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/RECIPES.md does not list `%s`", k)
		}
	}
	for _, f := range fieldsOf(configType) {
		if !strings.Contains(doc, "| `"+f.key+"`") {
			t.Errorf("docs/RECIPES.md scheme table does not list `%s`", f.key)
		}
	}
}

// BenchmarkResolve resolves w4a8-lsq.yaml against a ViT-B/32-sized CLIP
// (12 + 12 blocks, 147 Linears).
func BenchmarkResolve(b *testing.B) {
	r, err := Load("w4a8-lsq.yaml")
	if err != nil {
		b.Fatal(err)
	}
	modules := clipModules(12, 768, 3072, 3*32*32, 12, 512, 2048, 512)
	for b.Loop() {
		if _, err := Resolve(r, modules); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad parses and validates a shipped recipe.
func BenchmarkLoad(b *testing.B) {
	_, data, err := Open("w4a8-lsq.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Parse("w4a8-lsq.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestModulesOf(t *testing.T) {
	var linears []string
	for _, m := range clipTiny() {
		if m.Kind == Linear {
			linears = append(linears, m.Name)
		}
	}
	shapes := map[string][2]int{}
	for _, m := range clipTiny() {
		shapes[m.Name] = [2]int{m.InFeatures, m.OutFeatures}
	}
	got := ModulesOf(linears, func(n string) (int, int) { return shapes[n][0], shapes[n][1] })
	if !reflect.DeepEqual(got, clipTiny()) {
		t.Errorf("ModulesOf differs from the hand-made list:\n%v\n%v", got, clipTiny())
	}
}

// TestSetListFillsDefaults: a list set whole with --set gets the same
// per-element defaults as one written in the file.
func TestSetListFillsDefaults(t *testing.T) {
	r, err := Load("w8a8-lsq.yaml", "eval.id.path=/data/val", "eval.ood=[{name: sun, path: /data/sun}]")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Eval.OOD) != 1 || r.Eval.OOD[0].ImageColumn != "image" {
		t.Fatalf("eval.ood = %+v, want one set with image_column \"image\"", r.Eval.OOD)
	}
	r, err = Load("w8a8-lsq.yaml", "eval.id.path=/data/val", "eval.ood=[{name: sun, path: /data/sun, image_column: img}]")
	if err != nil {
		t.Fatal(err)
	}
	if r.Eval.OOD[0].ImageColumn != "img" {
		t.Fatalf("image_column = %q, want the given \"img\"", r.Eval.OOD[0].ImageColumn)
	}
}

// TestShippedPresets opens every evaluation preset of recipes/eval by name
// and by its source-tree path from another folder, as the binary does
// without the source tree, and checks the embedded copy is the file.
func TestShippedPresets(t *testing.T) {
	names := ShippedPresets()
	want := []string{"cifar10-vs-cifar100.yaml", "cifar100-vs-cifar10.yaml", "imagenet1k-mcm.yaml"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("ShippedPresets() = %v, want %v", names, want)
	}
	dir := filepath.Join(testutil.RepoRoot(t), "recipes", "eval")
	t.Chdir(t.TempDir())
	for _, name := range names {
		onDisk, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{strings.TrimSuffix(name, ".yaml"), "recipes/eval/" + name} {
			got, data, err := Open(ref)
			if err != nil || got != "<embedded>/eval/"+name || string(data) != string(onDisk) {
				t.Errorf("Open(%q) = %q, %d bytes, %v; want the embedded %s", ref, got, len(data), err, name)
			}
			if _, err := Load(ref); err != nil {
				t.Errorf("Load(%q): %v", ref, err)
			}
		}
	}
	if _, _, err := Open("no-such-preset"); err == nil || !strings.Contains(err.Error(), "imagenet1k-mcm.yaml") {
		t.Errorf("unknown name: %v", err)
	}
}
