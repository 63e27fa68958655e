package quantizers

import (
	"fmt"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Quantizer fake-quantizes tensors at one quantization site.
//
// Quantize is a graph-building function: ctx must be scoped to the
// quantizer's own sub-scope, by convention the site name plus ScopeSuffix
// under the module's scope (ctx.In(ScopeName("weight")) gives
// ".../weight_quant"). Its state lives in variables there (see the Var*
// constants): learned parameters (scale, zero_point, alpha) are trainable,
// everything else (observer min/max, the initialized, frozen and enabled
// flags, observer-derived scale and zero_point) is not.
//
// Phases, decided per graph:
//   - Observing: when ctx.IsTraining(g) or the graph parameter
//     GraphParamCalibrate is true, observers update their running range
//     from the batch (unless frozen) and learnable quantizers that are not
//     yet initialised store their initial range from the batch.
//   - Otherwise the stored state is read and never written; a quantizer
//     not yet initialised takes its range from each batch (so a fresh model
//     runs fake-quantized on whatever it is given).
//
// The initialized flag is tested inside the graph with Where, so a graph
// built before initialisation stays correct after it. Graphs built after
// initialisation (the flag read on the host at build time) leave out the
// initialisation arithmetic.
//
// When the enabled flag is 0 the quantizer returns x unchanged (observers
// still observe); see SetEnabled. When the frozen flag is 1 observers stop
// updating and learned parameters get no gradient; see SetFrozen.
type Quantizer interface {
	// Quantize returns x fake-quantized, with straight-through gradients.
	Quantize(ctx *context.Context, x *graph.Node) *graph.Node
	// Config returns the quantizer's configuration.
	Config() Config
}

// Factory builds a Quantizer from a validated Config.
type Factory func(cfg Config) (Quantizer, error)

// Registry maps method names to factories. The zero value is an empty
// registry ready to use; DefaultRegistry returns one holding the built-in
// methods. A Registry is not safe for concurrent Register calls.
type Registry struct {
	factories map[string]Factory
}

// DefaultRegistry returns a new registry holding the built-in methods:
// none, minmax, percentile, mse, lsq, lsq+ and pact. Callers may Register
// more methods on it without affecting other registries.
func DefaultRegistry() *Registry {
	r := &Registry{}
	for name, f := range map[string]Factory{
		MethodNone:       newNone,
		MethodMinMax:     newObserver,
		MethodPercentile: newObserver,
		MethodMSE:        newObserver,
		MethodLSQ:        newLSQ,
		MethodLSQPlus:    newLSQ,
		MethodPACT:       newPACT,
	} {
		if err := r.Register(name, f); err != nil {
			panic(err) // Unreachable: the built-in names are distinct.
		}
	}
	return r
}

// Register adds a method. It fails when name is empty, f is nil or the name
// is already registered.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" {
		return fmt.Errorf("quantizers: register: empty method name")
	}
	if f == nil {
		return fmt.Errorf("quantizers: register %q: nil factory", name)
	}
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("quantizers: register %q: method already registered", name)
	}
	if r.factories == nil {
		r.factories = map[string]Factory{}
	}
	r.factories[name] = f
	return nil
}

// Names returns the registered method names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New validates cfg and builds the quantizer its Method names.
func (r *Registry) New(cfg Config) (Quantizer, error) {
	f, ok := r.factories[cfg.Method]
	if !ok {
		return nil, fmt.Errorf("method: unknown quantizer method %q (known: %v)", cfg.Method, r.Names())
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return f(cfg)
}

// New builds a quantizer for cfg from the built-in methods
// (DefaultRegistry().New(cfg)).
func New(cfg Config) (Quantizer, error) {
	return DefaultRegistry().New(cfg)
}

// none is the "none" method: it returns x unchanged and keeps no state.
type none struct{ cfg Config }

func newNone(cfg Config) (Quantizer, error) { return none{cfg: cfg}, nil }

// Quantize implements Quantizer.
func (q none) Quantize(_ *context.Context, x *graph.Node) *graph.Node { return x }

// Config implements Quantizer.
func (q none) Config() Config { return q.cfg }
