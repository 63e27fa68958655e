package backend

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// touch creates an empty file and its folders.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindJaxCUDAPlugins(t *testing.T) {
	root := t.TempDir()
	venv := filepath.Join(root, "venv")
	other := filepath.Join(root, "opt", "torch", ".venv")
	home := filepath.Join(root, "home")
	plugin := func(prefix, site, cuda string) string {
		return filepath.Join(prefix, "lib", "python3.12", site, "jax_plugins", "xla_"+cuda, "xla_cuda_plugin.so")
	}
	venv12, venv13 := plugin(venv, "site-packages", "cuda12"), plugin(venv, "site-packages", "cuda13")
	onPath := plugin(other, "site-packages", "cuda13")
	user := filepath.Join(home, ".local", "lib", "python3.11", "site-packages", "jax_plugins", "xla_cuda12", "xla_cuda_plugin.so")
	for _, p := range []string{venv12, venv13, onPath, user} {
		touch(t, p)
	}
	// Not a plugin: another file name, and a plugin folder of another kind.
	touch(t, filepath.Join(venv, "lib", "python3.12", "site-packages", "jax_plugins", "xla_cuda13", "libfoo.so"))
	touch(t, filepath.Join(venv, "lib", "python3.12", "site-packages", "jax_plugins", "xla_rocm", "xla_cuda_plugin.so"))

	tests := []struct {
		name   string
		vars   map[string]string
		python string
		want   []string
	}{
		{"venv, python3 on PATH and user site", map[string]string{"VIRTUAL_ENV": venv}, filepath.Join(other, "bin", "python3"),
			[]string{venv13, venv12, onPath, user}},
		{"python3 of the venv itself is not listed twice", map[string]string{"VIRTUAL_ENV": venv}, filepath.Join(venv, "bin", "python3"),
			[]string{venv13, venv12, user}},
		{"conda prefix, no python3", map[string]string{"CONDA_PREFIX": other}, "", []string{onPath, user}},
		{"nothing but the user site", nil, "", []string{user}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := pythonEnv{
				getenv: func(k string) string { return tc.vars[k] },
				lookPath: func(string) (string, error) {
					if tc.python == "" {
						return "", errors.New("not found")
					}
					return tc.python, nil
				},
				home: home,
			}
			got := findJaxCUDAPlugins(env)
			// The system's dist-packages may hold real plugins on a machine
			// with jax installed: compare only those under the test's root.
			got = slices.DeleteFunc(got, func(p string) bool { return !strings.HasPrefix(p, root+string(filepath.Separator)) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
