package main

import (
	"fmt"
	"io"

	"github.com/qatclip/qatclip/internal/backend"
	"github.com/qatclip/qatclip/train/demo"
	"github.com/spf13/cobra"
)

// demoFlags are the flags of `qatclip demo`.
type demoFlags struct {
	out     string
	backend string
	force   bool
	workers int
	// Hidden sizes, for quick looks and tests.
	n, floatEpochs, qatEpochs int
}

// newDemoCmd builds `qatclip demo`: the embedded default job.
func newDemoCmd() *cobra.Command {
	var f demoFlags
	d := demo.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "demo [--out DIR] [--backend NAME] [--force]",
		Short: "Train a small CLIP on synthetic shapes, quantize it (PTQ W8A8, QAT W4A8) and compare reliability",
		Long: fmt.Sprintf(`demo needs no data, model or network. It
  1. synthesises the shapes data set (train, test and ood splits; the ood
     split shows shapes train never does),
  2. learns a small BPE vocabulary from the captions,
  3. trains a small CLIP from scratch in float (contrastive loss, plus a
     classification loss on the shape labels that speeds up shape learning),
  4. quantizes it after training: W8A8 min-max PTQ (%s),
  5. fine-tunes it with quantization: W4A8 LSQ QAT distilled from the float
     model (%s),
  6. evaluates float, PTQ and QAT with the reliability evaluator (zero-shot
     accuracy on the test split, calibration, OOD detection of the ood
     split) and prints the comparison table.
It takes about %d minutes on 2 CPU cores with the pure-Go backend.

Everything goes to --out (default %s): data/shapes, runs/{float,ptq,qat},
models/{float,qat} (HF folders with their tokenizer, which "qatclip eval
--model" and "qatclip train" accept), reports/{float,ptq,qat} (report.json,
report.md and plots) and summary.md. --out must not exist or be empty;
--force replaces the output of an earlier demo (a folder holding %s) and
nothing else.`, demo.PTQRecipe, demo.QATRecipe, demo.DefaultMinutes, d.Out, demo.MarkerFile),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", d.Out, "output folder")
	fl.StringVar(&f.backend, "backend", "", "GoMLX backend: go, xla:cuda, xla:cpu, xla:/abs/plugin.so (default $QATCLIP_BACKEND, else auto)")
	fl.BoolVar(&f.force, "force", false, "replace --out when an earlier demo wrote it")
	fl.IntVar(&f.workers, "workers", 0, "image decode goroutines (default: one per CPU)")
	fl.IntVar(&f.n, "n", d.N, "training images")
	fl.IntVar(&f.floatEpochs, "float-epochs", d.FloatEpochs, "float training epochs")
	fl.IntVar(&f.qatEpochs, "qat-epochs", d.QATEpochs, "QAT epochs")
	for _, name := range []string{"n", "float-epochs", "qat-epochs"} {
		fl.MarkHidden(name)
	}
	return cmd
}

// runDemo opens the backend, runs the demo and prints the table on out.
func runDemo(out, logw io.Writer, f demoFlags) error {
	be, err := backend.Open(f.backend, logw)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer be.Finalize()
	o := demo.DefaultOptions()
	o.Out, o.Force, o.Backend, o.Workers, o.Log = f.out, f.force, be, f.workers, logw
	o.N, o.FloatEpochs, o.QATEpochs = f.n, f.floatEpochs, f.qatEpochs
	res, err := demo.Run(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s\nsummary: %s (took %.0f s)\n", res.Table(), res.Summary, res.Seconds)
	return nil
}
