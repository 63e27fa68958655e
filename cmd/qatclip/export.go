package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newExportCmd is a placeholder replaced by the real command.
func newExportCmd() *cobra.Command {
	return &cobra.Command{Use: "export", RunE: func(*cobra.Command, []string) error { return errors.New("export: not implemented yet") }}
}
