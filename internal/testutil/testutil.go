// Package testutil holds helpers shared by qatclip's tests: locating the
// shared golden data and the repository root.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the folder holding the qatclip go.mod, searching upwards
// from the current directory (a package folder while tests run).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

// SharedDir returns the shared data folder: $QATCLIP_SHARED when set, else
// ../shared beside the repository root. When it does not exist, the test is
// skipped with a message saying so.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("QATCLIP_SHARED")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(RepoRoot(t)), "shared")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared data folder %s not found (set QATCLIP_SHARED): skipping parity against shared golden data", dir)
	}
	return dir
}

// SharedPath returns filepath.Join(SharedDir(t), elem...), skipping the test
// when that path does not exist.
func SharedPath(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared file %s not found: skipping", p)
	}
	return p
}
