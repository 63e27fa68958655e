package quantizers

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gopjrt/dtypes"
)

// ScopeSuffix ends the name of every quantizer's scope: a quantizer for
// site "weight" of module m keeps its variables under "m/weight_quant".
const ScopeSuffix = "_quant"

// Names of the variables quantizers keep in their scope. All are float32.
const (
	// VarScale is the quantization step: trainable for lsq/lsq+, updated
	// from the observed range for observers. Shape [1] per tensor, [C] per
	// channel, [out, in/group_size] per group.
	VarScale = "scale"
	// VarZeroPoint is the zero point (a float holding an integer, rounded
	// and clamped when used); trainable for asymmetric lsq+. Shape as
	// VarScale.
	VarZeroPoint = "zero_point"
	// VarAlpha is PACT's learned clipping level, shape [1].
	VarAlpha = "alpha"
	// VarMin and VarMax are an observer's running range, shape as VarScale.
	VarMin = "min"
	VarMax = "max"
	// VarInitialized is 1 once the state holds a range from data, else 0.
	VarInitialized = "initialized"
	// VarFrozen is 1 when observers must not update and learned parameters
	// get no gradient.
	VarFrozen = "frozen"
	// VarEnabled is 1 when the quantizer quantizes; 0 passes x through.
	VarEnabled = "enabled"
)

// GraphParamCalibrate is the graph parameter (a bool, read with
// context.GetGraphParamOr from the quantizer's scope) that makes observers
// observe and learnable quantizers initialise in a graph that is not a
// training graph; see SetCalibrating.
const GraphParamCalibrate = "quantizers_calibrate"

// graphParamRegularization is the root-scope graph parameter accumulating
// quantizer loss terms (PACT's alpha L2) while a graph is built.
const graphParamRegularization = "quantizers_regularization"

// addRegularization adds a scalar loss term to graph g's quantizer
// regularization.
func addRegularization(ctx *context.Context, term *graph.Node) {
	root := ctx.InAbsPath(context.RootScope)
	g := term.Graph()
	if prev, ok := root.GetGraphParam(g, graphParamRegularization); ok && prev != nil {
		term = graph.Add(prev.(*graph.Node), term)
	}
	root.SetGraphParam(g, graphParamRegularization, term)
}

// RegularizationLoss returns the sum of the loss terms quantizers built in
// graph g so far (PACT's AlphaL2 * alpha^2 in training graphs), or nil when
// there are none. A trainer adds it to the loss after the model is built,
// e.g. with GoMLX's trainer: train.AddLoss(ctx, quantizers.RegularizationLoss(ctx, g)).
func RegularizationLoss(ctx *context.Context, g *graph.Graph) *graph.Node {
	v, ok := ctx.InAbsPath(context.RootScope).GetGraphParam(g, graphParamRegularization)
	if !ok || v == nil {
		return nil
	}
	return v.(*graph.Node)
}

// ScopeName returns the scope name for a quantization site: site +
// ScopeSuffix ("weight" -> "weight_quant").
func ScopeName(site string) string { return site + ScopeSuffix }

// SetCalibrating marks graph g as a calibration graph for every quantizer
// under ctx's scope: observers observe and learnable quantizers initialise
// from the data, as in training, without a training step.
func SetCalibrating(ctx *context.Context, g *graph.Graph, on bool) {
	ctx.SetGraphParam(g, GraphParamCalibrate, on)
}

// observing reports whether quantizers under ctx update state in graph g.
func observing(ctx *context.Context, g *graph.Graph) bool {
	return ctx.IsTraining(g) || context.GetGraphParamOr(ctx, g, GraphParamCalibrate, false)
}

// IsQuantizerVariable reports whether v is quantizer state: a variable with
// one of the Var* names in a scope whose last element ends in ScopeSuffix.
func IsQuantizerVariable(v *context.Variable) bool {
	scope := v.Scope()
	last := scope[strings.LastIndex(scope, context.ScopeSeparator)+1:]
	if !strings.HasSuffix(last, ScopeSuffix) {
		return false
	}
	switch v.Name() {
	case VarScale, VarZeroPoint, VarAlpha, VarMin, VarMax, VarInitialized, VarFrozen, VarEnabled:
		return true
	}
	return false
}

// Variables returns the quantizer variables under ctx's scope, in the
// context's deterministic order.
func Variables(ctx *context.Context) []*context.Variable {
	var out []*context.Variable
	for v := range ctx.IterVariablesInScope() {
		if IsQuantizerVariable(v) {
			out = append(out, v)
		}
	}
	return out
}

// LearnedVariables returns the trainable quantizer variables under ctx's
// scope (LSQ/LSQ+ scales and zero points, PACT alphas): the ones a trainer
// gives their own learning rate and no weight decay.
func LearnedVariables(ctx *context.Context) []*context.Variable {
	var out []*context.Variable
	for _, v := range Variables(ctx) {
		if v.Trainable {
			out = append(out, v)
		}
	}
	return out
}

// SetEnabled switches every quantizer under ctx's scope on or off by
// setting its enabled flag; compiled graphs see the change at their next
// execution.
func SetEnabled(ctx *context.Context, enabled bool) error {
	return setFlags(ctx, VarEnabled, enabled, func(string) bool { return true })
}

// FreezeTarget selects which quantizers SetFrozen affects.
type FreezeTarget int

const (
	// FreezeObservers freezes quantizers that observe ranges (minmax,
	// percentile, mse): their running range stops changing.
	FreezeObservers FreezeTarget = iota
	// FreezeLearned freezes quantizers with learned parameters (lsq, lsq+,
	// pact): their parameters get zero gradient.
	FreezeLearned
	// FreezeAll freezes every quantizer.
	FreezeAll
)

// SetFrozen sets the frozen flag of the quantizers under ctx's scope that
// target selects; compiled graphs see the change at their next execution.
// A frozen learned parameter gets zero gradient, but an optimizer with
// momentum or weight decay may still move it: a trainer that must keep it
// fixed also leaves it out of the optimizer (see LearnedVariables).
func SetFrozen(ctx *context.Context, target FreezeTarget, frozen bool) error {
	learned := map[string]bool{}
	observer := map[string]bool{}
	for _, v := range Variables(ctx) {
		switch {
		case v.Trainable:
			learned[v.Scope()] = true
		case v.Name() == VarMin:
			observer[v.Scope()] = true
		}
	}
	return setFlags(ctx, VarFrozen, frozen, func(scope string) bool {
		switch target {
		case FreezeObservers:
			return observer[scope]
		case FreezeLearned:
			return learned[scope]
		default:
			return true
		}
	})
}

// setFlags sets the named flag variable of each quantizer scope under ctx
// that sel accepts.
func setFlags(ctx *context.Context, name string, on bool, sel func(scope string) bool) error {
	val := float32(0)
	if on {
		val = 1
	}
	for _, v := range Variables(ctx) {
		if v.Name() != name || !sel(v.Scope()) {
			continue
		}
		if err := v.SetValue(tensors.FromScalar(val)); err != nil {
			return fmt.Errorf("set %s/%s: %w", v.Scope(), name, err)
		}
	}
	return nil
}

// flagVar returns the named scalar flag variable of the quantizer scope,
// creating it with def. Flags are never trainable.
func flagVar(ctx *context.Context, name string, def float32) *context.Variable {
	return ctx.Checked(false).VariableWithValue(name, def).SetTrainable(false)
}

// paramVar returns the named float32 parameter variable of shape dims,
// creating it filled with def.
func paramVar(ctx *context.Context, name string, dims []int, def float32, trainable bool) *context.Variable {
	v := ctx.Checked(false).VariableWithValue(name, tensors.FromScalarAndDimensions(def, dims...))
	return v.SetTrainable(trainable)
}

// hostFlag reads a scalar flag variable's current value on the host, at
// graph-building time. A value that cannot be read counts as 0.
func hostFlag(v *context.Variable) bool {
	t, err := v.Value()
	if err != nil || t == nil || t.Shape().DType != dtypes.Float32 || t.Shape().Size() != 1 {
		return false
	}
	return tensors.MustCopyFlatData[float32](t)[0] != 0
}

// isSet returns flag > 0 as a boolean scalar node.
func isSet(v *context.Variable, g *graph.Graph) *graph.Node {
	return graph.GreaterThan(v.ValueGraph(g), graph.ScalarZero(g, dtypes.Float32))
}

// flags holds one quantizer's three flag variables.
type flags struct {
	enabled, frozen, initialized *context.Variable
}

// newFlags creates or finds the flag variables in ctx's scope.
func newFlags(ctx *context.Context) flags {
	return flags{
		enabled:     flagVar(ctx, VarEnabled, 1),
		frozen:      flagVar(ctx, VarFrozen, 0),
		initialized: flagVar(ctx, VarInitialized, 0),
	}
}

// gate returns y when the quantizer is enabled and x otherwise.
func (f flags) gate(x, y *graph.Node) *graph.Node {
	return graph.Where(isSet(f.enabled, x.Graph()), y, x)
}
