// Package backend chooses and opens the GoMLX backend qatclip runs on.
//
// Names accepted by Open (from --backend or $QATCLIP_BACKEND):
//
//	go                  pure Go (backends/simplego); always available
//	go:OPTIONS          pure Go with simplego options (e.g. go:parallelism=4), or
//	                    plain for simplego without qatclip's matmul and sums
//	xla:cuda, xla:cpu   XLA through a PJRT plugin found on PJRT_PLUGIN_LIBRARY_PATH;
//	                    for cuda, else jax's CUDA plugin of the Python environment
//	                    (pip install "jax[cuda13]"; see findJaxCUDAPlugins)
//	xla:/abs/plugin.so  XLA through the PJRT plugin at that path
//	auto (or empty)     xla with the first PJRT plugin found (or, with an NVIDIA
//	                    GPU, jax's CUDA plugin), else go
//
// Nothing is ever downloaded. When a named plugin cannot be loaded, Open
// falls back to the pure-Go backend and logs one line saying so; a plugin
// given by absolute path that does not exist is an error, since the user
// asked for that file.
//
// Open also installs matmul-based gradients for Dot and DotGeneral (see
// InstallFastGradients) and runs the pure-Go backend with sequential op
// scheduling, which cannot deadlock with them. On the pure-Go backend,
// float32 DotGeneral runs on internal/gemm (a blocked, vectorised GEMM),
// float32 ReduceSum on a direct loop and the float32 element-wise ops
// (arithmetic with broadcasting, comparisons, Where, common unary
// functions, BroadcastInDim, Transpose) on AVX2 kernels instead of
// simplego's, unless the plain option is given.
package backend

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/backends/stablehlo"

	"github.com/qatclip/qatclip/internal/gemm"
)

// EnvVar is the environment variable read when no backend name is given.
const EnvVar = "QATCLIP_BACKEND"

// DefaultGoOptions are the simplego options used for "go": ops run one at a
// time (each op still uses all cores internally). GoMLX's default mixes op-
// and intra-op parallelism on one bounded worker pool, which can deadlock
// when several large DotGeneral ops run at once.
const DefaultGoOptions = "ops_sequential"

// PlainOption, given among the go backend's options ("go:ops_sequential,plain"),
// opens GoMLX's simplego as it is: float32 DotGeneral, ReduceSum and the
// element-wise ops then run on simplego's own kernels instead of qatclip's
// (see goBackend). simplego's
// dotgeneral_small, dotgeneral_large and dotgeneral_check options imply it.
const PlainOption = "plain"

// Open returns the backend named by name (see the package documentation),
// writing one line to logw naming the backend and device (and, on fallback,
// why). An empty name reads $QATCLIP_BACKEND, then defaults to "auto".
// logw may be nil.
func Open(name string, logw io.Writer) (backends.Backend, error) {
	if logw == nil {
		logw = io.Discard
	}
	InstallFastGradients()
	if name == "" {
		name = os.Getenv(EnvVar)
	}
	if name == "" {
		name = "auto"
	}
	kind, opts, _ := strings.Cut(name, ":")
	switch kind {
	case "go", "simplego":
		b, err := openGo(opts)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "backend: %s\n", Describe(b))
		return b, nil
	case "auto":
		if opts != "" {
			return nil, fmt.Errorf("backend %q: auto takes no options", name)
		}
		if plugins := availablePlugins(); len(plugins) > 0 {
			if b, err := openXLA(plugins[0]); err == nil {
				fmt.Fprintf(logw, "backend: %s\n", Describe(b))
				return b, nil
			}
		}
		if hasNVIDIADevice() {
			if b, path := openJaxCUDA(""); b != nil {
				fmt.Fprintf(logw, "backend: %s (jax's CUDA plugin %s)\n", Describe(b), path)
				return b, nil
			}
		}
		b, err := openGo("")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(logw, "backend: %s (no PJRT plugin found)\n", Describe(b))
		return b, nil
	case "xla", "stablehlo":
		if opts == "" {
			return nil, fmt.Errorf("backend %q: name a PJRT plugin, e.g. xla:cuda, xla:cpu or xla:/abs/path/plugin.so", name)
		}
		plugin, _, _ := strings.Cut(opts, ",")
		if filepath.IsAbs(plugin) {
			if _, err := os.Stat(plugin); err != nil {
				return nil, fmt.Errorf("backend %q: PJRT plugin %s: %w", name, plugin, err)
			}
		}
		b, err := openXLA(opts)
		if err == nil {
			fmt.Fprintf(logw, "backend: %s\n", Describe(b))
			return b, nil
		}
		if filepath.IsAbs(plugin) {
			return nil, fmt.Errorf("backend %q: %v", name, oneLine(err))
		}
		if plugin == "cuda" && hasNVIDIADevice() {
			if b, path := openJaxCUDA(strings.TrimPrefix(opts, plugin)); b != nil {
				fmt.Fprintf(logw, "backend: %s (jax's CUDA plugin %s)\n", Describe(b), path)
				return b, nil
			}
		}
		gb, gerr := openGo("")
		if gerr != nil {
			return nil, gerr
		}
		fmt.Fprintf(logw, "backend: %s (requested %s unavailable: %s; set PJRT_PLUGIN_LIBRARY_PATH or pass xla:/abs/path/plugin.so)\n",
			Describe(gb), name, oneLine(err))
		return gb, nil
	}
	return nil, fmt.Errorf("unknown backend %q: want go, xla:cuda, xla:cpu, xla:/abs/path/plugin.so or auto", name)
}

// Describe names a backend and its device in one short phrase, e.g.
// "go (pure Go, 2 CPU cores)" or "xla (CUDA plugin, NVIDIA H100, 1 device)".
func Describe(b backends.Backend) string {
	switch gb := b.(type) {
	case *goBackend:
		return fmt.Sprintf("go (pure Go, %d CPU cores, %s matmul)", runtime.NumCPU(), gb.mul.Kernel())
	case *simplego.Backend:
		return fmt.Sprintf("go (pure Go, %d CPU cores)", runtime.NumCPU())
	}
	desc := oneLine(fmt.Errorf("%s", b.Description()))
	if n := b.NumDevices(); n > 0 {
		if d := oneLine(fmt.Errorf("%s", b.DeviceDescription(0))); d != "" && !strings.Contains(desc, d) {
			desc += ", " + d
		}
		desc += fmt.Sprintf(", %d device(s)", n)
	}
	return fmt.Sprintf("xla (%s)", desc)
}

// IsGo reports whether b is the pure-Go backend (as Open makes it, or plain
// simplego), whose buffers live in host memory. Use it instead of a type
// assertion to *simplego.Backend, which Open's pure-Go backend is not.
func IsGo(b backends.Backend) bool {
	switch b.(type) {
	case *goBackend, *simplego.Backend:
		return true
	}
	return false
}

func openGo(opts string) (b backends.Backend, err error) {
	if opts == "" {
		opts = DefaultGoOptions
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("backend go:%s: %v", opts, r)
		}
	}()
	// Our own option, and the ones that configure simplego's DotGeneral,
	// give plain simplego; otherwise float32 DotGeneral runs on gemm.
	var simplegoOpts []string
	stockDot, workers := false, 0
	for _, o := range strings.Split(opts, ",") {
		key, value, _ := strings.Cut(o, "=")
		switch key {
		case PlainOption:
			stockDot = true
			continue
		case "dotgeneral_small", "dotgeneral_large", "dotgeneral_check":
			stockDot = true
		case "parallelism":
			workers, _ = strconv.Atoi(value) // simplego.New reports a bad value
		}
		simplegoOpts = append(simplegoOpts, o)
	}
	b, err = simplego.New(strings.Join(simplegoOpts, ","))
	if err != nil {
		return nil, fmt.Errorf("backend go:%s: %v", opts, oneLine(err))
	}
	if stockDot {
		return b, nil
	}
	if workers <= 0 {
		workers = defaultWorkers()
	}
	return &goBackend{Backend: b.(*simplego.Backend), mul: gemm.New(workers), workers: workers}, nil
}

// openJaxCUDA opens the first of jax's CUDA PJRT plugins
// (findJaxCUDAPlugins) that loads, with the plugin options rest (",opt..."
// or ""), and returns it with the plugin's path; nil when none loads.
func openJaxCUDA(rest string) (backends.Backend, string) {
	for _, path := range findJaxCUDAPlugins(systemPythonEnv()) {
		if b, err := openXLA(path + rest); err == nil {
			return b, path
		}
	}
	return nil, ""
}

// openXLA opens the stablehlo (XLA/PJRT) backend, turning any panic from the
// plugin loader into an error.
func openXLA(config string) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return stablehlo.New(config)
}

// availablePlugins lists the PJRT plugins GoMLX can find, without panicking.
func availablePlugins() (plugins []string) {
	defer func() {
		if recover() != nil {
			plugins = nil
		}
	}()
	return stablehlo.GetAvailablePlugins()
}

// oneLine keeps the first line of an error message.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
