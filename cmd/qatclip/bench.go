package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/qatclip/qatclip/internal/benchmark"
	"github.com/spf13/cobra"
)

// benchFlags are the flags of `qatclip bench` and its subcommands.
type benchFlags struct {
	config     string
	batch      int
	steps      int
	warmup     int
	rounds     int
	backend    string
	precision  string
	recipe     string
	data       string
	workers    int
	cpuprofile string
}

// options converts the flags to benchmark options.
func (f benchFlags) options(log io.Writer) benchmark.Options {
	return benchmark.Options{
		Config: f.config, Batch: f.batch, Steps: f.steps, Warmup: f.warmup, NoWarmup: f.warmup == 0,
		Rounds: f.rounds, Backend: f.backend, Precision: f.precision, Recipe: f.recipe,
		Data: f.data, Workers: f.workers, Log: log,
	}
}

// newBenchCmd builds `qatclip bench`: timings of the training step, the
// image embedding, the data loader and the fake-quant cost on named model
// sizes, as JSON lines comparable with bench/pytorch/bench.py.
func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench train|embed|loader|quant [flags]",
		Short: "Time training, embedding, data loading and fake quantization on fixed model sizes",
		Long: `bench times one of qatclip's hot paths on a named model size with seeded
random weights and inputs, and prints one JSON line per result on stdout
(the fields of bench/pytorch/bench.py, so the two can be compared) and a
table on stderr.

Model sizes (--config):
  tiny   the sizes of shared/golden/clip-tiny (image 32, patch 8, widths 128/64, 2 layers)
  small  image 64, patch 8, width 256 and 4 layers in both towers, vocab 49408
  b32    OpenAI ViT-B/32

Subcommands:
  train   forward, contrastive loss, backward and AdamW of both towers (one step per batch)
  embed   the image tower's forward to the projected embedding
  loader  JPEG decoding, CLIP preprocessing and batching by the data loader
  quant   the cost of fake quantization: quantized / float step time, in alternating rounds

The first step (graph building, compilation, quantizer calibration) is
reported as compile_s; --warmup more steps run untimed, then --steps steps
are timed one by one. On a machine shared with other work, compare
cpu_ms_median and figures taken side by side in one session.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("bench: name what to time: train, embed, loader or quant")
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.config, "config", "tiny", "model size: "+strings.Join(benchmark.ConfigNames(), ", "))
	pf.IntVar(&f.batch, "batch", 64, "batch size")
	pf.IntVar(&f.steps, "steps", 10, "timed steps (quant: per model and round)")
	pf.IntVar(&f.warmup, "warmup", 2, "untimed steps after the first one")
	pf.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	pf.StringVar(&f.precision, "precision", "f32", "compute precision: f32 or bf16")
	pf.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := pf.MarkHidden("cpuprofile"); err != nil {
		panic(err) // the flag is defined just above
	}

	recipeUsage := "recipe file or shipped recipe name; none runs the model in float"
	trainCmd := benchSubCmd("train", "Time QAT training steps (forward, loss, backward, AdamW)", &f, benchmark.Train)
	trainCmd.Flags().StringVar(&f.recipe, "recipe", benchmark.DefaultRecipe, recipeUsage)
	embedCmd := benchSubCmd("embed", "Time the image tower's forward to the embedding", &f, benchmark.Embed)
	embedCmd.Flags().StringVar(&f.recipe, "recipe", benchmark.DefaultRecipe, recipeUsage)
	loaderCmd := benchSubCmd("loader", "Time the data loader (decode, preprocess, batch)", &f, benchmark.Loader)
	loaderCmd.Flags().StringVar(&f.data, "data", "", "dataset folder to read (default: synthetic 640x480 JPEGs in a temporary folder)")
	loaderCmd.Flags().IntVar(&f.workers, "workers", 0, "decode goroutines (0: one per CPU)")
	quantCmd := benchSubCmd("quant", "Time the cost of fake quantization (quantized / float step)", &f, benchmark.FakeQuantCost)
	quantCmd.Flags().StringVar(&f.recipe, "recipe", benchmark.DefaultRecipe, "recipe of the quantized model (file or shipped name)")
	quantCmd.Flags().IntVar(&f.rounds, "rounds", 5, "alternating float/quantized rounds")
	cmd.AddCommand(trainCmd, embedCmd, loaderCmd, quantCmd)
	return cmd
}

// benchSubCmd builds one `qatclip bench` subcommand running fn.
func benchSubCmd(name, short string, f *benchFlags, fn func(benchmark.Options) (benchmark.Result, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.OutOrStdout(), cmd.ErrOrStderr(), name, *f, fn)
		},
	}
}

// runBench runs one measurement and prints its JSON line on out and its
// table on logw. A configuration qatclip does not support (bf16) is
// printed as a JSON line with an "error" field and is not an error.
func runBench(out, logw io.Writer, name string, f benchFlags, fn func(benchmark.Options) (benchmark.Result, error)) error {
	if _, err := benchmark.ModelConfig(f.config); err != nil {
		return fmt.Errorf("bench %s: --config: %w", name, err)
	}
	switch {
	case f.batch < 1:
		return fmt.Errorf("bench %s: --batch must be positive, got %d", name, f.batch)
	case f.steps < 1:
		return fmt.Errorf("bench %s: --steps must be positive, got %d", name, f.steps)
	case f.warmup < 0:
		return fmt.Errorf("bench %s: --warmup must not be negative, got %d", name, f.warmup)
	case f.precision != "f32" && f.precision != "bf16":
		return fmt.Errorf("bench %s: --precision %q: want f32 or bf16", name, f.precision)
	case name == "quant" && f.rounds < 1:
		return fmt.Errorf("bench quant: --rounds must be positive, got %d", f.rounds)
	case f.workers < 0:
		return fmt.Errorf("bench %s: --workers must not be negative, got %d", name, f.workers)
	}
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return fmt.Errorf("bench %s: --cpuprofile: %w", name, err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fmt.Errorf("bench %s: --cpuprofile: %w", name, err)
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	res, err := fn(f.options(logw))
	if err != nil && (res.Error == "" || !errors.Is(err, benchmark.ErrUnsupported)) {
		if strings.HasPrefix(err.Error(), "bench ") {
			return err
		}
		return fmt.Errorf("bench %s: %w", name, err)
	}
	line, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("bench %s: %w", name, err)
	}
	if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
		return err
	}
	return benchmark.WriteTable(logw, []benchmark.Result{res})
}
