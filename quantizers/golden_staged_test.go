package quantizers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/qatclip/qatclip/internal/testutil"
	"github.com/qatclip/qatclip/internal/testutil/testbackend"
)

// TestGoldenQuantizersStaged runs the PyTorch golden cases and this
// package's fixtures on the pure-Go backend as qatclip opens it (element-
// wise ops, sums and matmuls run by internal/backend's own kernels), with
// the same tolerances as on plain simplego.
func TestGoldenQuantizersStaged(t *testing.T) {
	backend := testbackend.Go(t)
	t.Run("fixtures", func(t *testing.T) {
		runCaseFolderOn(t, filepath.Join("testdata", "quantizers"), backend)
	})
	t.Run("golden", func(t *testing.T) {
		dir := os.Getenv(envGoldenQuantizers)
		if dir == "" {
			dir = filepath.Join(testutil.SharedDir(t), "golden", "quantizers")
		}
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("golden quantizer cases %s not found (set %s): skipping", dir, envGoldenQuantizers)
		}
		runCaseFolderOn(t, dir, backend)
	})
}
