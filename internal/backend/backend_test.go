package backend

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gopjrt/dtypes"
)

func TestOpen(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		wantLog string // substring of the log line; "" means an error is expected
		wantErr string
	}{
		{name: "go", wantLog: "backend: go"},
		{name: "", env: "go", wantLog: "backend: go"},
		{name: "auto", wantLog: "backend: "},
		{name: "xla:nosuchplugin", wantLog: "requested xla:nosuchplugin unavailable"},
		{name: "xla:/nonexistent/pjrt_c_api_cuda_plugin.so", wantErr: "/nonexistent/pjrt_c_api_cuda_plugin.so"},
		{name: "xla", wantErr: "name a PJRT plugin"},
		{name: "tpu-magic", wantErr: `unknown backend "tpu-magic"`},
		{name: "go:bogus", wantErr: "backend go:bogus"},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.env, func(t *testing.T) {
			t.Setenv(EnvVar, c.env)
			t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
			var log bytes.Buffer
			b, err := Open(c.name, &log)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Open(%q) error = %v, want %q", c.name, err, c.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", c.name, err)
			}
			defer b.Finalize()
			if !strings.Contains(log.String(), c.wantLog) || strings.Count(log.String(), "\n") != 1 {
				t.Errorf("log %q, want one line containing %q", log.String(), c.wantLog)
			}
		})
	}
}

// TestConcurrentMatmulsDoNotDeadlock runs a graph with many independent
// large matmuls and their gradients from several goroutines at once, the
// pattern that deadlocks simplego's default scheduling with matmul VJPs.
// A deadlock shows up as the test binary's timeout.
func TestConcurrentMatmulsDoNotDeadlock(t *testing.T) {
	b, err := Open("go", nil)
	if err != nil {
		t.Fatal(err)
	}
	exec := graph.MustNewExec(b, func(x *graph.Node) *graph.Node {
		var loss *graph.Node
		for i := range 8 {
			w := graph.AddScalar(graph.Iota(x.Graph(), shapes.Make(dtypes.Float32, 256, 256), i%2), float64(i))
			y := graph.Tanh(graph.Dot(x, graph.MulScalar(w, 1e-4)))
			l := graph.ReduceAllSum(y)
			if loss == nil {
				loss = l
			} else {
				loss = graph.Add(loss, l)
			}
		}
		return graph.Gradient(loss, x)[0]
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := tensors.FromScalarAndDimensions(float32(0.01), 128, 256)
			exec.MustExec(x)
		}()
	}
	wg.Wait()
}
