package quantizers

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

func TestQRange(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name       string
		cfg        Config
		qmin, qmax int
	}{
		{"int8", Config{Bits: 8, Symmetric: true}, -128, 127},
		{"int8 narrow", Config{Bits: 8, Symmetric: true, NarrowRange: true}, -127, 127},
		{"uint8", Config{Bits: 8}, 0, 255},
		{"uint8 narrow", Config{Bits: 8, NarrowRange: true}, 0, 254},
		{"int4", Config{Bits: 4, Symmetric: true}, -8, 7},
		{"uint4 symmetric", Config{Bits: 4, Symmetric: true, Signed: &no}, 0, 15},
		{"int3 asymmetric", Config{Bits: 3, Signed: &yes}, -4, 3},
		{"int2", Config{Bits: 2, Symmetric: true}, -2, 1},
	}
	for _, tc := range tests {
		qmin, qmax := tc.cfg.QRange()
		if qmin != tc.qmin || qmax != tc.qmax {
			t.Errorf("%s: QRange() = [%d, %d], want [%d, %d]", tc.name, qmin, qmax, tc.qmin, tc.qmax)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	no := false
	mod := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name, wantErr string // "" for valid
		cfg           Config
	}{
		{"default", "", DefaultConfig()},
		{"lsq per-channel", "", mod(func(c *Config) { c.Method, c.Granularity, c.Bits = MethodLSQ, PerChannel, 4 })},
		{"lsq+ mse init", "", mod(func(c *Config) { c.Method, c.Symmetric, c.Init = MethodLSQPlus, false, InitMSE })},
		{"pact unsigned", "", mod(func(c *Config) { c.Method, c.Symmetric, c.AlphaL2 = MethodPACT, false, 1e-4 })},
		{"per-group", "", mod(func(c *Config) { c.Granularity, c.GroupSize = PerGroup, 32 })},
		{"ema", "", mod(func(c *Config) { c.Momentum = 0.9 })},
		{"dynamic percentile", "", mod(func(c *Config) { c.Method, c.Dynamic = MethodPercentile, true })},
		{"no method", "method: must be set", mod(func(c *Config) { c.Method = "" })},
		{"bits 9", "bits: 9 is out of range [2, 8]", mod(func(c *Config) { c.Bits = 9 })},
		{"bits 1", "bits: 1 is out of range [2, 8]", mod(func(c *Config) { c.Bits = 1 })},
		{"granularity", `granularity: "per-row" is not one of`, mod(func(c *Config) { c.Granularity = "per-row" })},
		{"group size", "group_size: 0 must be positive", mod(func(c *Config) { c.Granularity, c.GroupSize = PerGroup, 0 })},
		{"momentum 1", "momentum: 1 is out of range [0, 1)", mod(func(c *Config) { c.Momentum = 1 })},
		{"momentum lsq", `momentum: method "lsq" has no observer`, mod(func(c *Config) { c.Method, c.Momentum = MethodLSQ, 0.5 })},
		{"percentile 0", "percentile: 0 is out of range (0, 100]", mod(func(c *Config) { c.Percentile = 0 })},
		{"percentile 101", "percentile: 101 is out of range (0, 100]", mod(func(c *Config) { c.Percentile = 101 })},
		{"alpha_l2 negative", "alpha_l2: -1 must be >= 0", mod(func(c *Config) { c.Method, c.Symmetric, c.AlphaL2 = MethodPACT, false, -1 })},
		{"alpha_l2 on minmax", `alpha_l2: only method "pact"`, mod(func(c *Config) { c.AlphaL2 = 0.1 })},
		{"init unknown", `init: "kaiming" is not one of`, mod(func(c *Config) { c.Method, c.Init = MethodLSQ, "kaiming" })},
		{"init on minmax", `init: only methods "lsq" and "lsq+"`, mod(func(c *Config) { c.Init = InitMSE })},
		{"dynamic lsq", `dynamic: method "lsq" keeps learned state`, mod(func(c *Config) { c.Method, c.Dynamic = MethodLSQ, true })},
		{"pact signed", `signed: method "pact" quantizes to the unsigned range`, mod(func(c *Config) { c.Method = MethodPACT })},
		{"pact per-channel", `granularity: method "pact" learns one alpha per tensor`,
			mod(func(c *Config) { c.Method, c.Signed, c.Granularity = MethodPACT, &no, PerChannel })},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error: %v", tc.name, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%s: no error, want %q", tc.name, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tc.name, err)
		}
	}
}

// doubler is a test method: it multiplies x by two.
type doubler struct{ cfg Config }

func (d doubler) Quantize(_ *context.Context, x *graph.Node) *graph.Node {
	return graph.MulScalar(x, 2)
}
func (d doubler) Config() Config { return d.cfg }

func TestRegistry(t *testing.T) {
	r := DefaultRegistry()
	want := []string{"lsq", "lsq+", "minmax", "mse", "none", "pact", "percentile"}
	if got := strings.Join(r.Names(), ","); got != strings.Join(want, ",") {
		t.Errorf("Names() = %s, want %s", got, strings.Join(want, ","))
	}
	for _, name := range want {
		cfg := DefaultConfig()
		cfg.Method = name
		if name == MethodPACT {
			cfg.Symmetric = false
		}
		q, err := r.New(cfg)
		if err != nil {
			t.Errorf("New(%s): %v", name, err)
			continue
		}
		if q.Config().Method != name {
			t.Errorf("New(%s).Config().Method = %q", name, q.Config().Method)
		}
	}
	if err := r.Register("lsq", func(Config) (Quantizer, error) { return nil, nil }); err == nil {
		t.Error("registering a duplicate name succeeded")
	}
	if err := r.Register("", func(Config) (Quantizer, error) { return nil, nil }); err == nil {
		t.Error("registering an empty name succeeded")
	}
	if err := r.Register("x", nil); err == nil {
		t.Error("registering a nil factory succeeded")
	}
	cfg := DefaultConfig()
	cfg.Method = "double"
	if _, err := r.New(cfg); err == nil || !strings.Contains(err.Error(), `unknown quantizer method "double"`) {
		t.Errorf("New(unknown) error = %v", err)
	}
	var custom Registry // the zero value is usable
	if err := custom.Register("double", func(c Config) (Quantizer, error) { return doubler{c}, nil }); err != nil {
		t.Fatal(err)
	}
	if q, err := custom.New(cfg); err != nil || q.Config().Method != "double" {
		t.Errorf("custom New = %v, %v", q, err)
	}
	// Registries are independent: the default one does not see "double".
	if _, err := DefaultRegistry().New(cfg); err == nil {
		t.Error("a fresh DefaultRegistry knows a method registered elsewhere")
	}
	bad := DefaultConfig()
	bad.Bits = 12
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "bits: 12") {
		t.Errorf("New(bits 12) error = %v", err)
	}
}
