package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPtqCmd is a placeholder replaced by the real command.
func newPtqCmd() *cobra.Command {
	return &cobra.Command{Use: "ptq", RunE: func(*cobra.Command, []string) error { return errors.New("ptq: not implemented yet") }}
}
