package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newEvalCmd is a placeholder replaced by the real command.
func newEvalCmd() *cobra.Command {
	return &cobra.Command{Use: "eval", RunE: func(*cobra.Command, []string) error { return errors.New("eval: not implemented yet") }}
}
