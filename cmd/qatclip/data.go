package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newDataCmd is a placeholder replaced by the real command.
func newDataCmd() *cobra.Command {
	return &cobra.Command{Use: "data", RunE: func(*cobra.Command, []string) error { return errors.New("data: not implemented yet") }}
}
