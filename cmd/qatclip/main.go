// Command qatclip trains, evaluates and exports quantized CLIP models.
//
// The command is a thin layer over the qatclip packages: each subcommand
// parses its flags and calls one package function. Errors are printed as a
// single line on stderr and the process exits with status 1.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "qatclip: %v\n", err)
		os.Exit(1)
	}
}

// newRootCmd builds the command tree. Each subcommand lives in its own file.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "qatclip",
		Short:         "Quantization-aware training of CLIP models, with reliability reports",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDemoCmd(),
		newTokenizeCmd(),
		newPreprocessCmd(),
		newEmbedCmd(),
		newRecipeCmd(),
		newScoreCmd(),
		newEvalCmd(),
		newDataCmd(),
		newTrainCmd(),
		newPtqCmd(),
		newExportCmd(),
		newBenchCmd(),
	)
	return root
}
