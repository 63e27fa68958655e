package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newTrainCmd is a placeholder replaced by the real command.
func newTrainCmd() *cobra.Command {
	return &cobra.Command{Use: "train", RunE: func(*cobra.Command, []string) error { return errors.New("train: not implemented yet") }}
}
