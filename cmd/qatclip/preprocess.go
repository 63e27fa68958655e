package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newPreprocessCmd is a placeholder replaced by the real command.
func newPreprocessCmd() *cobra.Command {
	return &cobra.Command{Use: "preprocess", RunE: func(*cobra.Command, []string) error { return errors.New("preprocess: not implemented yet") }}
}
