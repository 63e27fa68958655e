package quantizers

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
