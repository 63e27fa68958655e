package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRecipeCmd is a placeholder replaced by the real command.
func newRecipeCmd() *cobra.Command {
	return &cobra.Command{Use: "recipe", RunE: func(*cobra.Command, []string) error { return errors.New("recipe: not implemented yet") }}
}
