package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/qatclip/qatclip/export"
	"github.com/spf13/cobra"
)

// exportFlags are the flags of `qatclip export`.
type exportFlags struct {
	run      string
	out      string
	format   string
	packInt4 bool
	force    bool
}

// newExportCmd builds `qatclip export`: a run folder to an HF folder with
// int8 weights in compressed-tensors layout (or fake-quantized float32).
func newExportCmd() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export --run RUN --out DIR [--format compressed-tensors|fake-quant-f32] [--pack-int4] [--force]",
		Short: "Export a quantized run as an HF folder (compressed-tensors int8 or fake-quant float32)",
		Long: `export reads the newest checkpoint of a run folder (written by train or ptq)
and writes an HF-style folder: config.json (with compressed-tensors'
quantization_config), model.safetensors (int8 weights with weight_scale /
weight_zero_point, input_scale / input_zero_point for static activation
quantizers, float tensors under their HF names), qatclip_quant.json, a
model card README.md and the source model's tokenizer files. --pack-int4
packs weights into int32 words (compressed-tensors pack-quantized).
--format fake-quant-f32 writes the fake-quantized weights in float32
instead. The format defaults to the recipe's export.format. A size report
(float32 bytes vs exported bytes, per tower) ends the output.
"qatclip embed --model DIR" reloads the export.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			return runExport(cmd.OutOrStdout(), f, fl.Changed("format"), fl.Changed("pack-int4"))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.run, "run", "", "run folder (or one of its checkpoint folders) to export (required)")
	fl.StringVar(&f.out, "out", "", "output folder (required)")
	fl.StringVar(&f.format, "format", export.FormatCompressedTensors, "compressed-tensors or fake-quant-f32 (default: the recipe's export.format)")
	fl.BoolVar(&f.packInt4, "pack-int4", false, "pack weights into int32 (compressed-tensors pack-quantized; default: the recipe's export.pack_int4)")
	fl.BoolVar(&f.force, "force", false, "replace an existing output folder")
	return cmd
}

// runExport exports the run. formatSet and packSet say whether the flags
// were given (otherwise the recipe's export section decides).
func runExport(w io.Writer, f exportFlags, formatSet, packSet bool) error {
	switch {
	case f.run == "":
		return errors.New("export: --run is required")
	case f.out == "":
		return errors.New("export: --out is required")
	}
	switch f.format {
	case export.FormatCompressedTensors, export.FormatFakeQuantF32:
	default:
		return fmt.Errorf("export: unknown --format %q (want %s or %s)", f.format, export.FormatCompressedTensors, export.FormatFakeQuantF32)
	}
	run, err := export.LoadRun(f.run)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	opts := export.Options{Format: f.format, PackInt4: f.packInt4, Force: f.force, ModelDir: run.ModelDir, Eval: run.Manifest.Eval}
	if !formatSet && run.Recipe.Export.Format != "" {
		opts.Format = run.Recipe.Export.Format
	}
	if !packSet {
		opts.PackInt4 = run.Recipe.Export.PackInt4 && opts.Format == export.FormatCompressedTensors
	}
	rep, err := export.Write(f.out, run.Source(), opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "run %s, checkpoint %s, recipe %s\n", run.Dir, run.Checkpoint, run.Recipe.Name)
	_, err = rep.WriteTo(w)
	return err
}
