package recipes

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/qatclip/qatclip/quantizers"
)

// oneOf checks that value is one of allowed.
func (r *Recipe) oneOf(key, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return r.errorf(key, "%q is not one of %s", value, quoteAll(allowed))
}

// quoteAll formats a list of allowed values.
func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// validate checks every value of the recipe, in the order of the schema.
// Checks that need the model's modules happen in Resolve.
func (r *Recipe) validate() error {
	for _, check := range []func() error{
		r.validateTop, r.validateQuantization, r.validateTrain, r.validateEval, r.validateExport,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recipe) validateTop() error {
	if r.Name == "" {
		return r.errorf("name", "must not be empty")
	}
	if r.Model.Source == "" {
		return r.errorf("model.source", "must not be empty")
	}
	if sq := r.SmoothQuant; sq != nil && (sq.Alpha < 0 || sq.Alpha > 1) {
		return r.errorf("smoothquant.alpha", "%g is outside [0, 1]", sq.Alpha)
	}
	return nil
}

func (r *Recipe) validateQuantization() error {
	q := &r.Quantization
	if err := r.checkConfig("quantization.default.weights", q.Default.Weights, false); err != nil {
		return err
	}
	if err := r.checkConfig("quantization.default.activations", q.Default.Activations, true); err != nil {
		return err
	}
	if err := r.checkPatterns("quantization.targets", q.Targets); err != nil {
		return err
	}
	if err := r.checkPatterns("quantization.ignore", q.Ignore); err != nil {
		return err
	}
	if err := r.oneOf("quantization.precedence", q.Precedence, "", "ignore", "targets"); err != nil {
		return err
	}
	for i, o := range q.Overrides {
		key := fmt.Sprintf("quantization.overrides[%d]", i)
		if o.Match == "" {
			return r.errorf(key+".match", "required: the pattern of the modules to override")
		}
		if _, err := ParsePattern(o.Match); err != nil {
			return r.errorf(key+".match", "%v", err)
		}
		if _, err := r.patched(key+".weights", q.Default.Weights, o.Weights, false); err != nil {
			return err
		}
		if _, err := r.patched(key+".activations", q.Default.Activations, o.Activations, true); err != nil {
			return err
		}
	}
	s := &q.Schedule
	pairs := []struct {
		name        string
		step, epoch *int
	}{
		{"start", s.StartStep, s.StartEpoch},
		{"freeze_observers_at", s.FreezeObserversAtStep, s.FreezeObserversAtEpoch},
		{"freeze_scales_at", s.FreezeScalesAtStep, s.FreezeScalesAtEpoch},
	}
	for _, p := range pairs {
		stepKey := "quantization.schedule." + p.name + "_step"
		epochKey := "quantization.schedule." + p.name + "_epoch"
		if p.step != nil && p.epoch != nil {
			return r.errorf(stepKey, "give %s or %s, not both", lastKey(stepKey), lastKey(epochKey))
		}
		if p.step != nil && *p.step < 0 {
			return r.errorf(stepKey, "%d is negative", *p.step)
		}
		if p.epoch != nil && *p.epoch < 0 {
			return r.errorf(epochKey, "%d is negative", *p.epoch)
		}
	}
	if s.CalibrationBatches < 0 {
		return r.errorf("quantization.schedule.calibration_batches", "%d is negative", s.CalibrationBatches)
	}
	return nil
}

// lastKey returns the last segment of a key path.
func lastKey(k string) string { return k[strings.LastIndexByte(k, '.')+1:] }

// checkPatterns compiles each pattern of a list.
func (r *Recipe) checkPatterns(key string, ps []string) error {
	for i, p := range ps {
		if _, err := ParsePattern(p); err != nil {
			return r.errorf(fmt.Sprintf("%s[%d]", key, i), "%v", err)
		}
	}
	return nil
}

// patched applies patch to base and validates the result, reporting errors
// at key (the patch's key path).
func (r *Recipe) patched(key string, base quantizers.Config, patch SchemePatch, activation bool) (quantizers.Config, error) {
	c, err := applyPatch(base, patch)
	if err != nil {
		return c, r.errorf(key, "%v", err)
	}
	return c, r.checkConfig(key, c, activation)
}

// applyPatch returns base with the keys of patch changed.
func applyPatch(base quantizers.Config, patch SchemePatch) (quantizers.Config, error) {
	if len(patch) == 0 {
		return base, nil
	}
	c := base
	if base.Signed != nil {
		s := *base.Signed
		c.Signed = &s
	}
	dc := &mapstructure.DecoderConfig{Result: &c}
	decoderOptions(dc)
	dec, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return c, err
	}
	if err := dec.Decode(map[string]any(patch)); err != nil {
		return c, err
	}
	return c, nil
}

// checkConfig validates one quantizer configuration written at key: the
// method must be registered, quantizers.Config.Validate must accept it,
// and the recipe's own rules hold (per-group and dynamic ranges apply to
// weights and activations respectively).
func (r *Recipe) checkConfig(key string, c quantizers.Config, activation bool) error {
	k := func(f string) string { return key + "." + f }
	if methods := quantizers.DefaultRegistry().Names(); !slices.Contains(methods, c.Method) {
		return r.oneOf(k("method"), c.Method, methods...)
	}
	if err := c.Validate(); err != nil {
		// Validate names the offending key first: "bits: 9 is out of range".
		if f, msg, ok := strings.Cut(err.Error(), ": "); ok {
			if _, known := lookupField(configType, f); known {
				return r.errorf(k(f), "%s", msg)
			}
		}
		return r.errorf(key, "%v", err)
	}
	if c.Granularity == quantizers.PerGroup && activation {
		return r.errorf(k("granularity"), "per-group applies to weights only")
	}
	if c.Dynamic && !activation {
		return r.errorf(k("dynamic"), "applies to activations only")
	}
	return nil
}

func (r *Recipe) validateTrain() error {
	t := &r.Train
	switch {
	case t.Epochs < 1:
		return r.errorf("train.epochs", "%d must be at least 1", t.Epochs)
	case t.BatchSize < 1:
		return r.errorf("train.batch_size", "%d must be at least 1", t.BatchSize)
	}
	o := &t.Optimizer
	if err := r.oneOf("train.optimizer.name", o.Name, "adamw", "adam", "sgd"); err != nil {
		return err
	}
	switch {
	case o.LR <= 0:
		return r.errorf("train.optimizer.lr", "%g must be positive", o.LR)
	case o.WeightDecay < 0:
		return r.errorf("train.optimizer.weight_decay", "%g is negative", o.WeightDecay)
	case o.QuantizerLR <= 0:
		return r.errorf("train.optimizer.quantizer_lr", "%g must be positive", o.QuantizerLR)
	case len(o.Betas) != 2:
		return r.errorf("train.optimizer.betas", "expected 2 values, got %d", len(o.Betas))
	case o.Eps <= 0:
		return r.errorf("train.optimizer.eps", "%g must be positive", o.Eps)
	}
	for i, b := range o.Betas {
		if b < 0 || b >= 1 {
			return r.errorf(fmt.Sprintf("train.optimizer.betas[%d]", i), "%g is outside [0, 1)", b)
		}
	}
	if err := r.oneOf("train.schedule.name", t.Schedule.Name, "constant", "cosine", "linear"); err != nil {
		return err
	}
	if t.Schedule.WarmupSteps < 0 {
		return r.errorf("train.schedule.warmup_steps", "%d is negative", t.Schedule.WarmupSteps)
	}
	l := &t.Loss
	switch {
	case l.Contrastive < 0:
		return r.errorf("train.loss.contrastive", "%g is negative", l.Contrastive)
	case l.Distill.Weight < 0:
		return r.errorf("train.loss.distill.weight", "%g is negative", l.Distill.Weight)
	case l.Classification < 0:
		return r.errorf("train.loss.classification", "%g is negative", l.Classification)
	case l.Distill.Temperature <= 0:
		return r.errorf("train.loss.distill.temperature", "%g must be positive", l.Distill.Temperature)
	case l.Contrastive+l.Distill.Weight+l.Classification == 0:
		return r.errorf("train.loss", "every loss weight is 0: give contrastive, distill.weight or classification a positive weight")
	}
	if err := r.oneOf("train.loss.distill.kind", l.Distill.Kind, "logits", "features"); err != nil {
		return err
	}
	switch {
	case t.GradClip < 0:
		return r.errorf("train.grad_clip", "%g is negative", t.GradClip)
	case t.GradAccum < 1:
		return r.errorf("train.grad_accum", "%d must be at least 1", t.GradAccum)
	}
	if err := r.oneOf("train.precision", t.Precision, "f32", "bf16"); err != nil {
		return err
	}
	if err := r.checkPatterns("train.freeze", t.Freeze); err != nil {
		return err
	}
	if t.Data.ImageColumn == "" {
		return r.errorf("train.data.image_column", "must not be empty")
	}
	if t.Data.TextColumn == "" {
		return r.errorf("train.data.text_column", "must not be empty")
	}
	ck := &t.Checkpoint
	switch {
	case ck.EverySteps < 0:
		return r.errorf("train.checkpoint.every_steps", "%d is negative", ck.EverySteps)
	case ck.Keep < 1:
		return r.errorf("train.checkpoint.keep", "%d must be at least 1", ck.Keep)
	}
	if _, err := ParseMetric(ck.Best.Metric); err != nil {
		return r.errorf("train.checkpoint.best.metric", "%v", err)
	}
	return r.oneOf("train.checkpoint.best.mode", ck.Best.Mode, "max", "min")
}

func (r *Recipe) validateEval() error {
	e := &r.Eval
	if _, _, err := e.LogitScale.Value(); err != nil {
		return r.errorf("eval.logit_scale", "%v", err)
	}
	switch {
	case e.MCMTemperature <= 0:
		return r.errorf("eval.mcm_temperature", "%g must be positive", e.MCMTemperature)
	case e.ECEBins < 1:
		return r.errorf("eval.ece_bins", "%d must be at least 1", e.ECEBins)
	case e.FitFraction <= 0 || e.FitFraction >= 1:
		return r.errorf("eval.fit_fraction", "%g is outside (0, 1)", e.FitFraction)
	case e.EveryEpochs < 0:
		return r.errorf("eval.every_epochs", "%d is negative", e.EveryEpochs)
	case e.ID.LabelColumn == "":
		return r.errorf("eval.id.label_column", "must not be empty")
	case e.ID.ImageColumn == "":
		return r.errorf("eval.id.image_column", "must not be empty")
	case e.ID.Classnames == "":
		return r.errorf("eval.id.classnames", "must not be empty: \"from-dataset\" or a file")
	case e.ID.Templates == "":
		return r.errorf("eval.id.templates", "must not be empty: \"default\", \"simple\" or a file")
	case len(e.ID.ClassList) > 0 && r.Given("eval.id.classnames"):
		return r.errorf("eval.id.class_list", "give class_list or classnames, not both")
	}
	for i, c := range e.ID.ClassList {
		if strings.TrimSpace(c) == "" {
			return r.errorf(fmt.Sprintf("eval.id.class_list[%d]", i), "empty class name")
		}
	}
	for i, s := range e.Robustness.NoiseSigma {
		if !(s > 0) || math.IsInf(s, 0) {
			return r.errorf(fmt.Sprintf("eval.robustness.noise_sigma[%d]", i), "%g must be a finite number > 0", s)
		}
	}
	for i, q := range e.Robustness.JPEGQuality {
		if q < 1 || q > 100 {
			return r.errorf(fmt.Sprintf("eval.robustness.jpeg_quality[%d]", i), "%d is outside [1, 100]", q)
		}
	}
	names := map[string]int{}
	for i, o := range e.OOD {
		key := fmt.Sprintf("eval.ood[%d]", i)
		switch {
		case o.Name == "":
			return r.errorf(key+".name", "required")
		case o.Path == "":
			return r.errorf(key+".path", "required")
		case o.ImageColumn == "":
			return r.errorf(key+".image_column", "must not be empty")
		}
		if j, dup := names[o.Name]; dup {
			return r.errorf(key+".name", "%q is also the name of eval.ood[%d]", o.Name, j)
		}
		names[o.Name] = i
	}
	return nil
}

func (r *Recipe) validateExport() error {
	x := &r.Export
	if err := r.oneOf("export.format", x.Format, "compressed-tensors", "fake-quant-f32"); err != nil {
		return err
	}
	if x.PackInt4 && x.Format != "compressed-tensors" {
		return r.errorf("export.pack_int4", "needs format \"compressed-tensors\", not %q", x.Format)
	}
	return nil
}

// Value returns the fixed logit scale, or fromModel true for "model".
func (s LogitScale) Value() (scale float64, fromModel bool, err error) {
	if s == "model" {
		return 0, true, nil
	}
	v, err := strconv.ParseFloat(string(s), 64)
	if err != nil || v <= 0 {
		return 0, false, fmt.Errorf("%q is neither \"model\" nor a positive number", string(s))
	}
	return v, false, nil
}

// MetricTerm is one weighted metric of a checkpoint-selection criterion.
type MetricTerm struct {
	// Weight multiplies the metric.
	Weight float64
	// Name is the metric name, e.g. "ts_ece".
	Name string
}

// MetricNames lists the evaluation metrics a criterion may name.
func MetricNames() []string {
	return []string{"acc1", "acc5", "nll", "brier", "ece", "ts_ece", "ts_nll", "aurc", "auroc", "aupr_in", "aupr_out", "fpr95"}
}

// metricTerm matches one term of a criterion: sign, optional "weight*",
// metric name.
var metricTerm = regexp.MustCompile(`^([+-]?)(?:((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\*)?([a-z][a-z0-9_]*)`)

// ParseMetric parses a checkpoint-selection criterion: a metric name or a
// weighted sum such as "acc1 - 0.5*ts_ece + 0.5*auroc".
func ParseMetric(s string) ([]MetricTerm, error) {
	expr := strings.ReplaceAll(s, " ", "")
	if expr == "" {
		return nil, fmt.Errorf("empty metric")
	}
	var terms []MetricTerm
	for expr != "" {
		m := metricTerm.FindStringSubmatch(expr)
		if m == nil || (len(terms) > 0 && m[1] == "") {
			return nil, fmt.Errorf("%q: cannot parse %q (write e.g. \"acc1 - 0.5*ts_ece\")", s, expr)
		}
		w := 1.0
		if m[2] != "" {
			w, _ = strconv.ParseFloat(m[2], 64)
		}
		if m[1] == "-" {
			w = -w
		}
		if !slices.Contains(MetricNames(), m[3]) {
			return nil, fmt.Errorf("%q: unknown metric %q (known: %s)", s, m[3], strings.Join(MetricNames(), ", "))
		}
		terms = append(terms, MetricTerm{Weight: w, Name: m[3]})
		expr = expr[len(m[0]):]
	}
	return terms, nil
}
