// Package testbackend opens GoMLX backends for tests. It is apart from
// package testutil so that tests of packages without GoMLX (npy, tokenizer,
// recipes, ...) do not link it.
package testbackend

import (
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/qatclip/qatclip/internal/backend"
)

// Go opens the pure-Go backend as qatclip runs it (sequential op
// scheduling, matmul-based gradients; see internal/backend) and finalizes
// it when the test ends.
func Go(t testing.TB) backends.Backend {
	t.Helper()
	b, err := backend.Open("go", nil)
	if err != nil {
		t.Fatalf("open the pure-Go backend: %v", err)
	}
	t.Cleanup(b.Finalize)
	return b
}
