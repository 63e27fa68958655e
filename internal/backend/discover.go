package backend

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
)

// jaxCUDAPluginGlob matches jax's CUDA PJRT plugin below a Python
// site-packages folder (jax-cuda12-plugin, jax-cuda13-plugin, ...).
const jaxCUDAPluginGlob = "jax_plugins/xla_cuda*/xla_cuda_plugin.so"

// pythonEnv is what plugin discovery reads of the environment; tests
// replace it.
type pythonEnv struct {
	getenv   func(string) string
	lookPath func(string) (string, error)
	home     string
}

// systemPythonEnv reads the process's environment.
func systemPythonEnv() pythonEnv {
	home, _ := os.UserHomeDir()
	return pythonEnv{getenv: os.Getenv, lookPath: exec.LookPath, home: home}
}

// findJaxCUDAPlugins returns the paths of jax's CUDA PJRT plugins
// (`pip install "jax[cuda13]"` puts one in
// site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so), a file name
// GoMLX's plugin search does not look for. It looks, in this order, in
// the active virtual environment ($VIRTUAL_ENV), conda environment
// ($CONDA_PREFIX), the environment of the first python3 on $PATH, the
// user's site-packages and the system's dist-packages. Nothing is run.
func findJaxCUDAPlugins(env pythonEnv) []string {
	var prefixes []string
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := env.getenv(v); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	if py, err := env.lookPath("python3"); err == nil {
		// A venv's bin/python3 is a link to the base interpreter: the
		// environment is the folder above the unresolved bin/.
		prefixes = append(prefixes, filepath.Dir(filepath.Dir(py)))
	}
	var patterns []string
	for _, p := range prefixes {
		patterns = append(patterns,
			filepath.Join(p, "lib", "python3*", "site-packages", jaxCUDAPluginGlob),
			filepath.Join(p, "lib", "python3*", "dist-packages", jaxCUDAPluginGlob))
	}
	if env.home != "" {
		patterns = append(patterns, filepath.Join(env.home, ".local", "lib", "python3*", "site-packages", jaxCUDAPluginGlob))
	}
	patterns = append(patterns,
		filepath.Join("/usr", "local", "lib", "python3*", "dist-packages", jaxCUDAPluginGlob),
		filepath.Join("/usr", "lib", "python3", "dist-packages", jaxCUDAPluginGlob))
	var found []string
	for _, pat := range patterns {
		matches, _ := filepath.Glob(pat)
		// The newest CUDA first (xla_cuda13 before xla_cuda12).
		slices.Sort(matches)
		slices.Reverse(matches)
		for _, m := range matches {
			if !slices.Contains(found, m) {
				found = append(found, m)
			}
		}
	}
	return found
}

// hasNVIDIADevice reports whether an NVIDIA GPU device node exists, as
// GoMLX checks before it tries a CUDA plugin.
func hasNVIDIADevice() bool {
	matches, _ := filepath.Glob("/dev/nvidia[0-9]*")
	return len(matches) > 0
}
