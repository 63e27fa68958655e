package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newTokenizeCmd is a placeholder replaced by the real command.
func newTokenizeCmd() *cobra.Command {
	return &cobra.Command{Use: "tokenize", RunE: func(*cobra.Command, []string) error { return errors.New("tokenize: not implemented yet") }}
}
