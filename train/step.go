package train

import (
	"fmt"
	"sort"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
	"github.com/qatclip/qatclip/layers"
	"github.com/qatclip/qatclip/layers/clip"
	"github.com/qatclip/qatclip/quantizers"
)

// Scopes of the trainer's context.
const (
	// ModelScope holds the student model.
	ModelScope = "model"
	// TeacherScope holds the frozen float teacher.
	TeacherScope = "teacher"
	// OptimizerScope holds optimizer moments.
	OptimizerScope = "optimizer"
	// AccumScope holds gradient accumulators.
	AccumScope = "accum"
)

// Loss term names, as logged in metrics.jsonl.
const (
	// TermContrastive is CLIP's symmetric contrastive loss (ContrastiveLoss).
	TermContrastive = "contrastive"
	// TermDistill is the distillation loss (DistillLogitsLoss or DistillFeaturesLoss).
	TermDistill = "distill"
	// TermClassification is the zero-shot head's cross-entropy (ClassificationLoss).
	TermClassification = "classification"
	// TermRegularization is the quantizers' own loss (PACT's alpha L2).
	TermRegularization = "regularization"
)

// termNames lists the loss terms in the order of the step's output vector,
// which is [total, terms..., grad_norm].
var termNames = [...]string{TermContrastive, TermDistill, TermClassification, TermRegularization}

// Group is an optimizer parameter group.
type Group int

const (
	// GroupDecay holds weight matrices: learning rate lr, weight decay.
	GroupDecay Group = iota
	// GroupNoDecay holds LayerNorm parameters, biases, embeddings,
	// class_embedding and logit_scale: learning rate lr, no weight decay.
	GroupNoDecay
	// GroupQuantizer holds learned quantizer parameters: quantizer_lr, no
	// weight decay.
	GroupQuantizer
)

// String returns the group's name.
func (g Group) String() string {
	switch g {
	case GroupDecay:
		return "decay"
	case GroupNoDecay:
		return "no_decay"
	case GroupQuantizer:
		return "quantizer"
	}
	return "unknown"
}

// GroupOf returns the parameter group of a student variable: quantizer
// state is GroupQuantizer, the 2-D weight of a Linear module (every
// projection, attention and MLP matrix and the patch embedding) is
// GroupDecay, anything else GroupNoDecay.
func GroupOf(cfg clip.Config, v *context.Variable) Group {
	if quantizers.IsQuantizerVariable(v) {
		return GroupQuantizer
	}
	module, _ := moduleOf(v)
	if v.Name() == "weight" && v.Shape().Rank() == 2 {
		for _, m := range clip.LinearModules(cfg) {
			if m == module {
				return GroupDecay
			}
		}
	}
	return GroupNoDecay
}

// moduleOf returns the HF module a student variable belongs to (the first
// scope element under /model), or its name for a variable of the model's
// root scope such as logit_scale (root true).
func moduleOf(v *context.Variable) (module string, root bool) {
	prefix := context.RootScope + ModelScope
	scope := v.Scope()
	if scope == prefix {
		return v.Name(), true
	}
	rest := strings.TrimPrefix(scope, prefix+context.ScopeSeparator)
	if i := strings.Index(rest, context.ScopeSeparator); i >= 0 {
		rest = rest[:i]
	}
	return rest, false
}

// stepKind selects one of the compiled training graphs.
type stepKind struct {
	// apply runs the optimizer update (the last micro-batch of a step);
	// otherwise the gradients are only added to the accumulators.
	apply bool
	// scalesFrozen leaves learned quantizer parameters out of the update.
	scalesFrozen bool
	// teacherCached takes the teacher's image and text embeddings as the
	// graph's last two inputs (train.teacher_cache) instead of running
	// the teacher.
	teacherCached bool
}

// stepInputs are the host values fed to a training graph besides the batch.
type stepInputs struct {
	lrWeights, lrQuantizer float32
	// bc1 and bc2 are Adam's bias corrections 1-beta^t.
	bc1, bc2 float32
	// accumScale is 1/grad_accum.
	accumScale float32
}

// numStepOutputs is the length of the step's output vector.
const numStepOutputs = len(termNames) + 2

// features runs both towers of the model in ctx.
func (t *Trainer) features(ctx *context.Context, pixels, ids *Node, quantized bool) (img, txt *Node) {
	var hook layers.Hook // a nil *QuantHook would be a non-nil Hook
	if quantized {
		hook = t.hook
	}
	return clip.ImageFeatures(ctx, t.cfg, hook, pixels), clip.TextFeatures(ctx, t.cfg, hook, ids)
}

// losses builds the loss terms of one batch and returns the weighted total
// and the terms in termNames order (zero for terms with weight 0). cached
// is empty, or the teacher's image and text embeddings of the batch
// (train.teacher_cache), which then replace the teacher's forward pass.
func (t *Trainer) losses(ctx *context.Context, pixels, ids, labels *Node, cached ...*Node) (*Node, [len(termNames)]*Node) {
	g := pixels.Graph()
	lw := t.recipe.Train.Loss
	mctx := ctx.In(ModelScope)
	img, txt := t.features(mctx, pixels, ids, true)
	ls := ClampLogitScale(clip.LogitScale(mctx, t.cfg, g))
	var terms [len(termNames)]*Node
	zero := ScalarZero(g, dtypes.Float32)
	for i := range terms {
		terms[i] = zero
	}
	var studentLogits *Node
	logits := func() *Node {
		if studentLogits == nil {
			studentLogits = clip.Logits(ls, img, txt)
		}
		return studentLogits
	}
	if lw.Contrastive > 0 {
		terms[0] = ContrastiveLoss(logits())
	}
	if lw.Distill.Weight > 0 {
		tctx := ctx.In(TeacherScope)
		var timg, ttxt *Node
		if len(cached) == 2 {
			timg, ttxt = cached[0], cached[1]
		} else {
			timg, ttxt = t.features(tctx, pixels, ids, false)
		}
		timg, ttxt = StopGradient(timg), StopGradient(ttxt)
		if lw.Distill.Kind == "features" {
			terms[1] = DistillFeaturesLoss(timg, ttxt, img, txt)
		} else {
			tls := StopGradient(ClampLogitScale(clip.LogitScale(tctx, t.cfg, g)))
			terms[1] = DistillLogitsLoss(clip.Logits(tls, timg, ttxt), logits(), lw.Distill.Temperature)
		}
	}
	if lw.Classification > 0 {
		head := Const(g, tensors.FromFlatDataAndDimensions(t.head, len(t.head)/t.cfg.ProjectionDim, t.cfg.ProjectionDim))
		terms[2] = ClassificationLoss(img, head, Exp(ls), labels)
	}
	if reg := quantizers.RegularizationLoss(ctx, g); reg != nil {
		terms[3] = ConvertDType(reg, dtypes.Float32)
	}
	total := Add(MulScalar(terms[0], lw.Contrastive), MulScalar(terms[1], lw.Distill.Weight))
	total = Add(total, MulScalar(terms[2], lw.Classification))
	total = Add(total, terms[3])
	return total, terms
}

// trainedVariables returns the student variables the step updates, sorted
// by scope and name so every run orders them (and their gradient norm's
// sum) the same way.
func (t *Trainer) trainedVariables(ctx *context.Context, g *Graph, scalesFrozen bool) []*context.Variable {
	var vars []*context.Variable
	for v := range ctx.In(ModelScope).IterVariablesInScope() {
		if !v.Trainable || !v.InUseByGraph(g) || t.isFrozen(v) {
			continue
		}
		if scalesFrozen && quantizers.IsQuantizerVariable(v) {
			continue
		}
		vars = append(vars, v)
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].ScopeAndName() < vars[j].ScopeAndName() })
	return vars
}

// isFrozen reports whether train.freeze selects the variable's module.
func (t *Trainer) isFrozen(v *context.Variable) bool {
	module, _ := moduleOf(v)
	for _, p := range t.freeze {
		if p.MatchScope(module) {
			return true
		}
	}
	return false
}

// stateVar returns the optimizer-state variable name of v under scope,
// created with zeros.
func stateVar(ctx *context.Context, scope string, v *context.Variable, suffix string) *context.Variable {
	sv := ctx.InAbsPath(context.RootScope+scope+v.Scope()).Checked(false).
		VariableWithValue(v.Name()+suffix, tensors.FromShape(v.Shape()))
	return sv.SetTrainable(false)
}

// stepGraph returns the graph function of a training step of kind k. Its
// inputs are pixels [N,C,H,W], ids [N,L], labels [N] and the five scalars
// of stepInputs, then with k.teacherCached the teacher's image and text
// embeddings [N,D]; its output is the vector [total, terms..., grad_norm].
func (t *Trainer) stepGraph(k stepKind) func(ctx *context.Context, in []*Node) *Node {
	return func(ctx *context.Context, in []*Node) *Node {
		pixels, ids, labels := in[0], in[1], in[2]
		lrW, lrQ, bc1, bc2, accumScale := in[3], in[4], in[5], in[6], in[7]
		g := pixels.Graph()
		ctx.SetTraining(g, true)
		var cached []*Node
		if k.teacherCached {
			cached = in[len(in)-2:]
		}
		total, terms := t.losses(ctx, pixels, ids, labels, cached...)
		vars := t.trainedVariables(ctx, g, k.scalesFrozen)
		params := make([]*Node, len(vars))
		for i, v := range vars {
			params[i] = v.ValueGraph(g)
		}
		var grads []*Node
		if len(vars) > 0 {
			grads = Gradient(total, params...)
		}
		accum := t.recipe.Train.GradAccum > 1
		outs := make([]*Node, 0, numStepOutputs)
		outs = append(outs, total)
		outs = append(outs, terms[:]...)
		if !k.apply {
			for i, v := range vars {
				acc := stateVar(ctx, AccumScope, v, "")
				acc.SetValueGraph(Add(acc.ValueGraph(g), grads[i]))
			}
			outs = append(outs, ScalarZero(g, dtypes.Float32))
			return Stack(outs, 0)
		}
		if accum {
			for i, v := range vars {
				acc := stateVar(ctx, AccumScope, v, "")
				grads[i] = Mul(Add(acc.ValueGraph(g), grads[i]), accumScale)
				acc.SetValueGraph(ZerosLike(grads[i]))
			}
		}
		norm := ScalarZero(g, dtypes.Float32)
		for _, gr := range grads {
			norm = Add(norm, ReduceAllSum(Square(gr)))
		}
		norm = Sqrt(norm)
		if c := t.recipe.Train.GradClip; c > 0 && len(grads) > 0 {
			factor := MinScalar(Div(Scalar(g, dtypes.Float32, c), AddScalar(norm, 1e-6)), 1)
			for i := range grads {
				grads[i] = Mul(grads[i], factor)
			}
		}
		finite := LogicalAnd(IsFinite(total), IsFinite(norm))
		for i, v := range vars {
			t.update(ctx, v, params[i], grads[i], finite, lrW, lrQ, bc1, bc2)
		}
		outs = append(outs, norm)
		return Stack(outs, 0)
	}
}

// update builds the optimizer update of one variable; the new values are
// kept only when finite is true (a step with a NaN/Inf loss or gradient
// changes nothing).
func (t *Trainer) update(ctx *context.Context, v *context.Variable, p, grad, finite, lrW, lrQ, bc1, bc2 *Node) {
	o := t.recipe.Train.Optimizer
	group := GroupOf(t.cfg, v)
	lr, wd := lrW, 0.0
	switch group {
	case GroupDecay:
		wd = o.WeightDecay
	case GroupQuantizer:
		lr = lrQ
	}
	keep := func(sv *context.Variable, next *Node) {
		sv.SetValueGraph(Where(finite, next, sv.ValueGraph(p.Graph())))
	}
	var next *Node
	switch o.Name {
	case "sgd":
		if wd > 0 {
			grad = Add(grad, MulScalar(p, wd))
		}
		next = Sub(p, Mul(lr, grad))
	default: // adamw, adam
		b1, b2 := o.Betas[0], o.Betas[1]
		if o.Name == "adam" && wd > 0 {
			grad = Add(grad, MulScalar(p, wd))
		}
		mv := stateVar(ctx, OptimizerScope, v, "_m")
		vv := stateVar(ctx, OptimizerScope, v, "_v")
		g := p.Graph()
		m := Add(MulScalar(mv.ValueGraph(g), b1), MulScalar(grad, 1-b1))
		s := Add(MulScalar(vv.ValueGraph(g), b2), MulScalar(Square(grad), 1-b2))
		keep(mv, m)
		keep(vv, s)
		step := Div(Div(m, bc1), AddScalar(Sqrt(Div(s, bc2)), o.Eps))
		base := p
		if o.Name == "adamw" && wd > 0 {
			base = Mul(p, OneMinus(MulScalar(lr, wd)))
		}
		next = Sub(base, Mul(lr, step))
	}
	if module, root := moduleOf(v); root && module == "logit_scale" {
		next = ClipScalar(next, 0, MaxLogitScale)
	}
	keep(v, next)
}

// calibrateGraph runs both towers of the student with quantizers
// calibrating (observers observe, learnable quantizers initialise).
func (t *Trainer) calibrateGraph(ctx *context.Context, pixels, ids *Node) *Node {
	mctx := ctx.In(ModelScope)
	quantizers.SetCalibrating(mctx, pixels.Graph(), true)
	img, txt := t.features(mctx, pixels, ids, true)
	return Add(ReduceAllSum(img), ReduceAllSum(txt))
}

// stepOutputs converts the step's output tensor to float64s.
func stepOutputs(out *tensors.Tensor) ([]float64, error) {
	var vals []float64
	err := out.ConstFlatData(func(flat any) {
		if f, ok := flat.([]float32); ok {
			vals = make([]float64, len(f))
			for i, x := range f {
				vals[i] = float64(x)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if len(vals) != numStepOutputs {
		return nil, fmt.Errorf("training step returned %d values, want %d", len(vals), numStepOutputs)
	}
	return vals, nil
}
