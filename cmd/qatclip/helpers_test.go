package main

import (
	"bytes"
	"testing"

	"github.com/spf13/cobra"
)

// execCmd runs a subcommand built by newCmd with args on the pure-Go
// backend, as main() would (errors returned, not printed), writing its
// standard output to stdout and its log to stderr (which may be the same
// buffer).
func execCmd(t *testing.T, newCmd func() *cobra.Command, stdout, stderr *bytes.Buffer, args ...string) error {
	t.Helper()
	t.Setenv("QATCLIP_BACKEND", "go")
	cmd := newCmd()
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	return cmd.Execute()
}

// execCombined runs a subcommand like execCmd and returns its standard
// output and log together.
func execCombined(t *testing.T, newCmd func() *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := execCmd(t, newCmd, &out, &out, args...)
	return out.String(), err
}

// execSeparate runs a subcommand like execCmd and returns its standard
// output and log apart.
func execSeparate(t *testing.T, newCmd func() *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = execCmd(t, newCmd, &out, &errOut, args...)
	return out.String(), errOut.String(), err
}
