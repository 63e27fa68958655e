package quantizers

import (
	"fmt"
	"math"
	"strings"
)

// Granularity says how many quantization parameter sets a tensor gets.
type Granularity string

const (
	// PerTensor uses one scale (and zero point) for the whole tensor.
	PerTensor Granularity = "per-tensor"
	// PerChannel uses one scale per slice along Config.Axis.
	PerChannel Granularity = "per-channel"
	// PerGroup uses one scale per group of Config.GroupSize consecutive
	// elements along the last (input) axis, per output channel (weights).
	PerGroup Granularity = "per-group"
)

// Config describes one quantizer: the scheme (bits, sign, symmetry,
// granularity) and the method that sets or learns its range. Recipes
// (package recipes) produce Configs; New builds a Quantizer from one.
// The zero value is not valid: start from DefaultConfig.
type Config struct {
	// Method is the registry name: "none", "minmax", "percentile", "mse",
	// "lsq", "lsq+", "pact". Default "minmax".
	Method string `mapstructure:"method" json:"method"`
	// Bits is the integer width, 2 to 8. Default 8.
	Bits int `mapstructure:"bits" json:"bits"`
	// Symmetric fixes the zero point at 0 (signed) or at the middle
	// (unsigned). Default true.
	Symmetric bool `mapstructure:"symmetric" json:"symmetric"`
	// Signed selects the integer range [-2^(b-1), 2^(b-1)-1] instead of
	// [0, 2^b-1]. Default: true when Symmetric, false otherwise.
	Signed *bool `mapstructure:"signed" json:"signed,omitempty"`
	// NarrowRange drops the most negative value of a signed range
	// ([-127, 127] for 8 bits). Default false.
	NarrowRange bool `mapstructure:"narrow_range" json:"narrow_range"`
	// Granularity is per-tensor, per-channel or per-group. Default per-tensor.
	Granularity Granularity `mapstructure:"granularity" json:"granularity"`
	// Axis is the channel axis for per-channel quantization (negative counts
	// from the end). Default 0 (the output channel of a [out, in] weight).
	Axis int `mapstructure:"axis" json:"axis"`
	// GroupSize is the group length along the input axis for per-group
	// quantization. Default 128.
	GroupSize int `mapstructure:"group_size" json:"group_size"`
	// Momentum of the EMA observer (minmax/percentile/mse): running =
	// momentum*running + (1-momentum)*batch. 0 keeps the running min/max
	// over all batches seen (static observer). Default 0.
	Momentum float64 `mapstructure:"momentum" json:"momentum"`
	// Percentile for the percentile observer and the PACT alpha
	// initialisation, in (0, 100]. Default 99.99.
	Percentile float64 `mapstructure:"percentile" json:"percentile"`
	// Init selects how learnable quantizers (lsq, lsq+) initialise their
	// range: "lsq" (2*mean|x|/sqrt(qmax)), "minmax" or "mse". Default "lsq"
	// for lsq and "minmax" for lsq+.
	Init string `mapstructure:"init" json:"init"`
	// AlphaL2 is the L2 regularisation weight on PACT's alpha. Default 0.
	AlphaL2 float64 `mapstructure:"alpha_l2" json:"alpha_l2"`
	// Dynamic computes activation ranges per batch at run time instead of
	// keeping state (not exported as static input scales). Default false.
	Dynamic bool `mapstructure:"dynamic" json:"dynamic"`
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		Method:      "minmax",
		Bits:        8,
		Symmetric:   true,
		Granularity: PerTensor,
		Axis:        0,
		GroupSize:   128,
		Percentile:  99.99,
	}
}

// IsSigned reports whether the integer range is signed, applying the
// default (signed when symmetric) when Signed is unset.
func (c Config) IsSigned() bool {
	if c.Signed != nil {
		return *c.Signed
	}
	return c.Symmetric
}

// QRange returns the integer range [qmin, qmax] the scheme quantizes to.
func (c Config) QRange() (qmin, qmax int) {
	if c.IsSigned() {
		qmin, qmax = -(1 << (c.Bits - 1)), (1<<(c.Bits-1))-1
		if c.NarrowRange {
			qmin++
		}
		return qmin, qmax
	}
	qmin, qmax = 0, (1<<c.Bits)-1
	if c.NarrowRange {
		qmax--
	}
	return qmin, qmax
}

// Built-in method names, as recipes spell them.
const (
	// MethodNone leaves tensors in float.
	MethodNone = "none"
	// MethodMinMax observes the running min/max (or its EMA).
	MethodMinMax = "minmax"
	// MethodPercentile observes the Percentile-th percentile range.
	MethodPercentile = "percentile"
	// MethodMSE observes the range minimising the quantization MSE.
	MethodMSE = "mse"
	// MethodLSQ learns the scale (Esser et al. 2020).
	MethodLSQ = "lsq"
	// MethodLSQPlus learns scale and offset (Bhalgat et al. 2020).
	MethodLSQPlus = "lsq+"
	// MethodPACT learns a clipping level alpha (Choi et al. 2018).
	MethodPACT = "pact"
)

// Initialisations of learnable ranges (Config.Init).
const (
	// InitLSQ sets the scale to 2*mean(|x|)/sqrt(qmax).
	InitLSQ = "lsq"
	// InitMinMax sets scale and zero point from the batch min/max.
	InitMinMax = "minmax"
	// InitMSE sets them from the range of least quantization MSE.
	InitMSE = "mse"
)

// isObserverMethod reports whether the method sets its range from
// observed statistics (no learned parameters).
func isObserverMethod(m string) bool {
	return m == MethodMinMax || m == MethodPercentile || m == MethodMSE
}

// isLearnedMethod reports whether the method learns its range by gradient.
func isLearnedMethod(m string) bool {
	return m == MethodLSQ || m == MethodLSQPlus || m == MethodPACT
}

// Validate checks every field against the documented ranges and the
// combinations the built-in methods support. The error names the field as
// recipes spell it ("bits: 9 is out of range [2, 8]"), so callers can
// prefix the key path. A method name outside the built-ins is accepted here
// (a Registry may know it); Registry.New rejects names it does not know.
func (c Config) Validate() error {
	if c.Method == "" {
		return fmt.Errorf("method: must be set (one of %s)", strings.Join(builtinMethods(), ", "))
	}
	if c.Bits < 2 || c.Bits > 8 {
		return fmt.Errorf("bits: %d is out of range [2, 8]", c.Bits)
	}
	switch c.Granularity {
	case PerTensor, PerChannel:
	case PerGroup:
		if c.GroupSize <= 0 {
			return fmt.Errorf("group_size: %d must be positive for per-group quantization", c.GroupSize)
		}
	default:
		return fmt.Errorf("granularity: %q is not one of %q, %q, %q", c.Granularity, PerTensor, PerChannel, PerGroup)
	}
	if math.IsNaN(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
		return fmt.Errorf("momentum: %g is out of range [0, 1)", c.Momentum)
	}
	if math.IsNaN(c.Percentile) || c.Percentile <= 0 || c.Percentile > 100 {
		return fmt.Errorf("percentile: %g is out of range (0, 100]", c.Percentile)
	}
	if math.IsNaN(c.AlphaL2) || c.AlphaL2 < 0 {
		return fmt.Errorf("alpha_l2: %g must be >= 0", c.AlphaL2)
	}
	if c.AlphaL2 != 0 && c.Method != MethodPACT {
		return fmt.Errorf("alpha_l2: only method %q has an alpha, got method %q", MethodPACT, c.Method)
	}
	switch c.Init {
	case "":
	case InitLSQ, InitMinMax, InitMSE:
		if c.Method != MethodLSQ && c.Method != MethodLSQPlus {
			return fmt.Errorf("init: only methods %q and %q take an initialisation, got method %q", MethodLSQ, MethodLSQPlus, c.Method)
		}
	default:
		return fmt.Errorf("init: %q is not one of %q, %q, %q", c.Init, InitLSQ, InitMinMax, InitMSE)
	}
	if c.Dynamic && !isObserverMethod(c.Method) {
		return fmt.Errorf("dynamic: method %q keeps learned state; only %s can be dynamic",
			c.Method, strings.Join([]string{MethodMinMax, MethodPercentile, MethodMSE}, ", "))
	}
	if c.Momentum != 0 && !isObserverMethod(c.Method) {
		return fmt.Errorf("momentum: method %q has no observer", c.Method)
	}
	if c.Method == MethodPACT {
		if c.IsSigned() {
			return fmt.Errorf("signed: method %q quantizes to the unsigned range [0, alpha]; set symmetric: false (or signed: false)", MethodPACT)
		}
		if c.Granularity != PerTensor {
			return fmt.Errorf("granularity: method %q learns one alpha per tensor, got %q", MethodPACT, c.Granularity)
		}
	}
	return nil
}

// builtinMethods lists the built-in method names.
func builtinMethods() []string {
	return []string{MethodNone, MethodMinMax, MethodPercentile, MethodMSE, MethodLSQ, MethodLSQPlus, MethodPACT}
}
