package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newEmbedCmd is a placeholder replaced by the real command.
func newEmbedCmd() *cobra.Command {
	return &cobra.Command{Use: "embed", RunE: func(*cobra.Command, []string) error { return errors.New("embed: not implemented yet") }}
}
