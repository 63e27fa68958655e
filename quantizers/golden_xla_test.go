//go:build xla

package quantizers

// Parity of the fake-quant ops on the XLA (PJRT) backend, built only with
// `go test -tags xla` (it needs cgo and a PJRT plugin at run time):
//
//	QATCLIP_TEST_BACKEND=xla:cuda go test -tags xla -run XLA ./quantizers/
//
// QATCLIP_TEST_BACKEND is a GoMLX backend config ("xla:cpu", "xla:cuda",
// "xla:/abs/path/xla_cuda_plugin.so"); default "xla:cpu". The tests skip
// when the backend cannot be created.

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/stablehlo"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/qatclip/qatclip/internal/testutil"
)

func xlaBackend(t *testing.T) backends.Backend {
	t.Helper()
	cfg := os.Getenv("QATCLIP_TEST_BACKEND")
	if cfg == "" {
		cfg = "xla:cpu"
	}
	b, err := backends.NewWithConfig(cfg)
	if err != nil {
		t.Skipf("XLA backend %q unavailable: %v", cfg, err)
	}
	return b
}

func TestXLAGoldenQuantizers(t *testing.T) {
	b := xlaBackend(t)
	dir := os.Getenv(envGoldenQuantizers)
	if dir == "" {
		dir = filepath.Join(testutil.SharedDir(t), "golden", "quantizers")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("golden quantizer cases %s not found: skipping", dir)
	}
	runCaseFolderOn(t, dir, b)
}

func TestXLAFixtureQuantizers(t *testing.T) {
	runCaseFolderOn(t, filepath.Join("testdata", "quantizers"), xlaBackend(t))
}

func TestXLARoundHalfEven(t *testing.T) {
	b := xlaBackend(t)
	var in []float32
	for k := -300; k <= 300; k++ {
		h := float32(k) + 0.5
		in = append(in, h, math.Nextafter32(h, -1e9), math.Nextafter32(h, 1e9), float32(k))
	}
	got := tensors.MustCopyFlatData[float32](MustExecOnce(b, RoundHalfEven, tensors.FromValue(in)))
	for i, v := range in {
		if want := float32(math.RoundToEven(float64(v))); got[i] != want {
			t.Errorf("RoundHalfEven(%v) = %v, want %v", v, got[i], want)
		}
	}
}
