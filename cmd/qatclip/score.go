package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newScoreCmd is a placeholder replaced by the real command.
func newScoreCmd() *cobra.Command {
	return &cobra.Command{Use: "score", RunE: func(*cobra.Command, []string) error { return errors.New("score: not implemented yet") }}
}
