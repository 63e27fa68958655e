package recipes

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/qatclip/qatclip/quantizers"
)

// ModuleKind says what a module of a model is.
type ModuleKind int

const (
	// Linear is a module with a weight and an input activation (q/k/v/out
	// projections, fc1, fc2, the patch embedding, the projections).
	Linear ModuleKind = iota
	// Attention is a self-attention module whose two matmuls
	// (query x key, softmax x value) may get activation quantizers.
	Attention
)

// String names the kind.
func (k ModuleKind) String() string {
	if k == Attention {
		return "attention"
	}
	return "linear"
}

// Module is one quantizable module of a model, named as in HF checkpoints.
type Module struct {
	// Name is the HF module name, e.g. "vision_model.encoder.layers.0.mlp.fc1".
	Name string
	// Kind is Linear or Attention.
	Kind ModuleKind
	// InFeatures and OutFeatures are a Linear's weight shape [out, in];
	// 0 when unknown (per-group divisibility is then not checked).
	InFeatures, OutFeatures int
}

// LayerPlan is what one Linear gets. A nil config leaves that tensor in
// float.
type LayerPlan struct {
	// Module is the HF module name.
	Module string
	// InFeatures and OutFeatures are copied from the Module.
	InFeatures, OutFeatures int
	// Weights quantizes the weight; nil keeps it float.
	Weights *quantizers.Config
	// Activations quantizes the input activation; nil keeps it float.
	Activations *quantizers.Config
	// FloatReason says why the layer stays float when both are nil:
	// `ignored by "PATTERN"`, "not targeted" or "method none".
	FloatReason string
}

// AttentionPlan is what the matmul inputs of one attention module get.
type AttentionPlan struct {
	// Module is the HF name of the attention module ("...self_attn").
	Module string
	// Activations quantizes each of the query, key, softmax output and
	// value entering the matmuls (each site with its own state); nil keeps
	// them float.
	Activations *quantizers.Config
	// FloatReason says why the matmuls stay float when Activations is nil.
	FloatReason string
}

// Plan is a recipe resolved against a model: the quantizers of every
// Linear and, with attention_matmuls, of every attention module.
type Plan struct {
	// Recipe is the recipe the plan comes from.
	Recipe *Recipe
	// Layers has one entry per Linear, in model order.
	Layers []LayerPlan
	// Attention has one entry per attention module, in model order.
	Attention []AttentionPlan
}

// Layer returns the plan of the Linear named module.
func (p *Plan) Layer(module string) (LayerPlan, bool) {
	for _, l := range p.Layers {
		if l.Module == module {
			return l, true
		}
	}
	return LayerPlan{}, false
}

// AttentionOf returns the plan of the attention module named module.
func (p *Plan) AttentionOf(module string) (AttentionPlan, bool) {
	for _, a := range p.Attention {
		if a.Module == module {
			return a, true
		}
	}
	return AttentionPlan{}, false
}

// Quantized counts the Linears with at least one quantizer.
func (p *Plan) Quantized() int {
	n := 0
	for _, l := range p.Layers {
		if l.Weights != nil || l.Activations != nil {
			n++
		}
	}
	return n
}

// compiled is a list of patterns with the key path of each.
type compiled struct {
	key      string
	patterns []Pattern
	hits     []int
}

func compile(key string, srcs []string) (*compiled, error) {
	c := &compiled{key: key, hits: make([]int, len(srcs))}
	for i, s := range srcs {
		p, err := ParsePattern(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		c.patterns = append(c.patterns, p)
	}
	return c, nil
}

// first returns the index of the first pattern matching name, or -1.
func (c *compiled) first(name string) int {
	for i, p := range c.patterns {
		if p.Match(name) {
			return i
		}
	}
	return -1
}

// countAll counts the hits of every pattern matching name.
func (c *compiled) countAll(name string) {
	for i, p := range c.patterns {
		if p.Match(name) {
			c.hits[i]++
		}
	}
}

// Resolve applies the recipe to the modules of a model: targets, ignore
// (with quantization.precedence deciding a layer both match), then the
// overrides in order. A pattern of targets, ignore or overrides that
// matches no module, a layer in both targets and ignore with no
// precedence, or a scheme a layer cannot take (group size not dividing its
// input features) is an *Error naming the recipe's file, line and key.
func Resolve(r *Recipe, modules []Module) (*Plan, error) {
	q := &r.Quantization
	targets, err := compile("quantization.targets", q.Targets)
	if err != nil {
		return nil, err
	}
	ignore, err := compile("quantization.ignore", q.Ignore)
	if err != nil {
		return nil, err
	}
	overrides := make([]Pattern, len(q.Overrides))
	overrideHits := make([]int, len(q.Overrides))
	for i, o := range q.Overrides {
		if overrides[i], err = ParsePattern(o.Match); err != nil {
			return nil, fmt.Errorf("quantization.overrides[%d].match: %w", i, err)
		}
	}
	plan := &Plan{Recipe: r}
	cache := map[string]merged{}
	nLinear := 0
	for _, m := range modules {
		for i, p := range overrides {
			if p.Match(m.Name) {
				overrideHits[i]++
			}
		}
		switch m.Kind {
		case Linear:
			nLinear++
			lp, err := r.resolveLinear(m, targets, ignore, overrides, cache)
			if err != nil {
				return nil, err
			}
			plan.Layers = append(plan.Layers, lp)
		case Attention:
			ap, err := r.resolveAttention(m, ignore, overrides, cache)
			if err != nil {
				return nil, err
			}
			plan.Attention = append(plan.Attention, ap)
		}
	}
	if nLinear == 0 {
		return nil, &Error{Where: r.source, Msg: "the model lists no Linear modules"}
	}
	if q.AttentionMatmuls && len(plan.Attention) == 0 {
		return nil, r.errorf("quantization.attention_matmuls", "true, but the model lists no attention modules")
	}
	for _, c := range []*compiled{targets, ignore} {
		for i, n := range c.hits {
			if n == 0 {
				key := fmt.Sprintf("%s[%d]", c.key, i)
				return nil, r.errorf(key, "%q matches no layer of the model (%s)", c.patterns[i], example(modules))
			}
		}
	}
	for i, n := range overrideHits {
		if n == 0 {
			key := fmt.Sprintf("quantization.overrides[%d].match", i)
			return nil, r.errorf(key, "%q matches no layer of the model (%s)", overrides[i], example(modules))
		}
	}
	return plan, nil
}

// example shows a module name so pattern errors show what names look like.
func example(modules []Module) string {
	for _, m := range modules {
		if m.Kind == Linear {
			return "layers are named like " + strconv.Quote(m.Name)
		}
	}
	return "no layers"
}

// merged is the scheme pair of a layer after its overrides, with the key
// paths that last set each.
type merged struct {
	w, a       quantizers.Config
	wKey, aKey string
}

// mergeSchemes applies, in order, the overrides matching name to the
// default schemes. Layers matched by the same overrides share one result
// through cache.
func (r *Recipe) mergeSchemes(name string, overrides []Pattern, cache map[string]merged) (merged, error) {
	q := &r.Quantization
	var sig []byte
	for i, p := range overrides {
		if p.Match(name) {
			sig = fmt.Appendf(sig, "%d,", i)
		}
	}
	if ms, ok := cache[string(sig)]; ok {
		return ms, nil
	}
	ms := merged{w: q.Default.Weights, a: q.Default.Activations,
		wKey: "quantization.default.weights", aKey: "quantization.default.activations"}
	for i, o := range q.Overrides {
		if !overrides[i].Match(name) {
			continue
		}
		var err error
		if len(o.Weights) > 0 {
			ms.wKey = fmt.Sprintf("quantization.overrides[%d].weights", i)
			if ms.w, err = r.patched(ms.wKey, ms.w, o.Weights, false); err != nil {
				return ms, err
			}
		}
		if len(o.Activations) > 0 {
			ms.aKey = fmt.Sprintf("quantization.overrides[%d].activations", i)
			if ms.a, err = r.patched(ms.aKey, ms.a, o.Activations, true); err != nil {
				return ms, err
			}
		}
	}
	cache[string(sig)] = ms
	return ms, nil
}

func (r *Recipe) resolveLinear(m Module, targets, ignore *compiled, overrides []Pattern, cache map[string]merged) (LayerPlan, error) {
	q := &r.Quantization
	lp := LayerPlan{Module: m.Name, InFeatures: m.InFeatures, OutFeatures: m.OutFeatures}
	// Every matching pattern counts as used; the first of each list
	// decides.
	targets.countAll(m.Name)
	ignore.countAll(m.Name)
	t, ig := targets.first(m.Name), ignore.first(m.Name)
	switch {
	case t >= 0 && ig >= 0 && q.Precedence == "":
		key := fmt.Sprintf("quantization.ignore[%d]", ig)
		return lp, r.errorf(key, "%q and quantization.targets[%d] %q both match %s; set quantization.precedence to \"ignore\" or \"targets\"",
			ignore.patterns[ig], t, targets.patterns[t], m.Name)
	case ig >= 0 && (t < 0 || q.Precedence == "ignore"):
		lp.FloatReason = fmt.Sprintf("ignored by %q", ignore.patterns[ig])
		return lp, nil
	case t < 0:
		lp.FloatReason = "not targeted"
		return lp, nil
	}
	ms, err := r.mergeSchemes(m.Name, overrides, cache)
	if err != nil {
		return lp, err
	}
	w, a := ms.w, ms.a
	if w.Method != "none" {
		if w.Granularity == quantizers.PerGroup && m.InFeatures > 0 && m.InFeatures%w.GroupSize != 0 {
			return lp, r.errorf(ms.wKey+".group_size", "%d does not divide the %d input features of %s", w.GroupSize, m.InFeatures, m.Name)
		}
		lp.Weights = &w
	}
	if a.Method != "none" {
		lp.Activations = &a
	}
	if lp.Weights == nil && lp.Activations == nil {
		lp.FloatReason = "method none"
	}
	return lp, nil
}

func (r *Recipe) resolveAttention(m Module, ignore *compiled, overrides []Pattern, cache map[string]merged) (AttentionPlan, error) {
	q := &r.Quantization
	ap := AttentionPlan{Module: m.Name}
	ignore.countAll(m.Name)
	if ig := ignore.first(m.Name); ig >= 0 {
		ap.FloatReason = fmt.Sprintf("ignored by %q", ignore.patterns[ig])
		return ap, nil
	}
	if !q.AttentionMatmuls {
		ap.FloatReason = "attention_matmuls is false"
		return ap, nil
	}
	ms, err := r.mergeSchemes(m.Name, overrides, cache)
	if err != nil {
		return ap, err
	}
	a := ms.a
	if a.Method == "none" {
		ap.FloatReason = "method none"
		return ap, nil
	}
	ap.Activations = &a
	return ap, nil
}

// Describe summarises a quantizer configuration in a few words, e.g.
// "lsq int4 sym per-channel" or "minmax uint8 asym per-tensor ema=0.9";
// nil is "float".
func Describe(c *quantizers.Config) string {
	if c == nil || c.Method == "none" {
		return "float"
	}
	var b strings.Builder
	b.WriteString(c.Method)
	if c.Method == "percentile" {
		fmt.Fprintf(&b, "(%g)", c.Percentile)
	}
	if c.IsSigned() {
		fmt.Fprintf(&b, " int%d", c.Bits)
	} else {
		fmt.Fprintf(&b, " uint%d", c.Bits)
	}
	if c.Symmetric {
		b.WriteString(" sym")
	} else {
		b.WriteString(" asym")
	}
	switch c.Granularity {
	case quantizers.PerGroup:
		fmt.Fprintf(&b, " per-group(%d)", c.GroupSize)
	case quantizers.PerChannel:
		fmt.Fprintf(&b, " per-channel")
		if c.Axis != 0 {
			fmt.Fprintf(&b, "(axis %d)", c.Axis)
		}
	default:
		b.WriteString(" " + string(c.Granularity))
	}
	if c.NarrowRange {
		b.WriteString(" narrow")
	}
	if c.Momentum > 0 {
		fmt.Fprintf(&b, " ema=%g", c.Momentum)
	}
	if c.Init != "" {
		fmt.Fprintf(&b, " init=%s", c.Init)
	}
	if c.AlphaL2 > 0 {
		fmt.Fprintf(&b, " l2=%g", c.AlphaL2)
	}
	if c.Dynamic {
		b.WriteString(" dynamic")
	}
	return b.String()
}

// WriteTable prints the plan as an aligned table: one row per Linear
// (layer, weight scheme, activation scheme; or "float: REASON" and "-"), one per
// attention module when attention_matmuls is on, and a summary line.
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tWEIGHTS\tACTIVATIONS")
	for _, l := range p.Layers {
		if l.Weights == nil && l.Activations == nil {
			fmt.Fprintf(tw, "%s\tfloat: %s\t-\n", l.Module, l.FloatReason)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Module, Describe(l.Weights), Describe(l.Activations))
	}
	quantAttn := 0
	for _, a := range p.Attention {
		if !p.Recipe.Quantization.AttentionMatmuls {
			break
		}
		name := a.Module + " (q, k, probs, v)"
		if a.Activations == nil {
			fmt.Fprintf(tw, "%s\t-\tfloat: %s\n", name, a.FloatReason)
			continue
		}
		quantAttn++
		fmt.Fprintf(tw, "%s\t-\t%s\n", name, Describe(a.Activations))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	attn := ""
	if p.Recipe.Quantization.AttentionMatmuls {
		attn = fmt.Sprintf(", %d of %d attention modules with quantized matmuls", quantAttn, len(p.Attention))
	}
	_, err := fmt.Fprintf(w, "%d of %d Linear layers quantized%s\n", p.Quantized(), len(p.Layers), attn)
	return err
}

// ModulesOf builds the module list of an HF CLIP model from its Linear
// module names (in model order) and a function giving each Linear's
// [out, in] weight shape (0, 0 when unknown). Each attention module
// ("PREFIX.self_attn") is listed just before its first projection
// ("PREFIX.self_attn.q_proj", ...).
func ModulesOf(linears []string, shape func(name string) (in, out int)) []Module {
	var ms []Module
	seen := map[string]bool{}
	for _, name := range linears {
		if i := strings.LastIndex(name, ".self_attn."); i >= 0 {
			attn := name[:i+len(".self_attn")]
			if !seen[attn] {
				seen[attn] = true
				ms = append(ms, Module{Name: attn, Kind: Attention})
			}
		}
		m := Module{Name: name, Kind: Linear}
		if shape != nil {
			m.InFeatures, m.OutFeatures = shape(name)
		}
		ms = append(ms, m)
	}
	return ms
}
