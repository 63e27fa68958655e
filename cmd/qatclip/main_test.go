package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary act as the qatclip command: with
// QATCLIP_RUN_MAIN=1 it runs main() on the arguments after "--", so tests
// can check exit statuses and stderr exactly as a user sees them.
func TestMain(m *testing.M) {
	if os.Getenv("QATCLIP_RUN_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"qatclip"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs the command in a child process and returns its stderr
// and exit status.
func runMain(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	return runMainIn(t, "", args...)
}

// runMainIn is runMain with the child's working directory set to dir
// ("" keeps the test's).
func runMainIn(t *testing.T, dir string, args ...string) (stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "QATCLIP_RUN_MAIN=1", "QATCLIP_BACKEND=go")
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return errBuf.String(), 0
	case errors.As(err, &exitErr):
		return errBuf.String(), exitErr.ExitCode()
	}
	t.Fatalf("run qatclip %v: %v", args, err)
	return "", -1
}

// TestBadInputExitStatus checks, through the real main(), that a user's
// mistake ends with exit status 1, a last stderr line "qatclip: ...", and
// stderr naming the file at fault (recipe validate lists each bad file on
// its own line before its summary), never with a Go panic trace.
func TestBadInputExitStatus(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("model.safetensors", []byte("\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":"))
	notImage := write("cat.jpg", []byte("this is not a JPEG"))
	badNpy := write("pixels.npy", []byte("\x93NUMPY\x01\x00"))
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing model", []string{"embed", "--model", filepath.Join(dir, "nope"), "--texts", "a", "--out", dir}, "nope"},
		{"truncated safetensors", []string{"embed", "--model", truncated, "--texts", "a", "--out", dir}, "model.safetensors"},
		{"corrupt image", []string{"preprocess", "--out", filepath.Join(dir, "x.npy"), notImage}, "cat.jpg"},
		{"bad npy", []string{"score", "--id-cos", badNpy, "--id-labels", badNpy}, "pixels.npy"},
		{"unknown recipe", []string{"recipe", "validate", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{"unknown command flag", []string{"tokenize", "--no-such-flag"}, "no-such-flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr, code := runMain(t, c.args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic:") {
				t.Fatalf("stderr holds a Go panic trace:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "qatclip: ") {
				t.Errorf("last stderr line %q, want \"qatclip: ...\"", last)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not name %q:\n%s", c.want, stderr)
			}
		})
	}
}
