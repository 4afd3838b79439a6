// Package cli is usine's command line: it parses arguments and wires the
// internal packages together. Every command lives here, one file each.
package cli

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes that scripts can rely on.
const (
	ExitOK    = 0
	ExitError = 1 // the command ran and failed
	ExitUsage = 2 // bad flags or arguments
)

// UsageError marks an error in how the command was called.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by Run to a process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitError
}

// Run executes the command line args (args[0] is the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctx)
	return err
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "usine",
		Short:         "usine runs an AI factory: grants, scheduling, agents and a simulator",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	root.AddCommand(newTraceCmd(), newSimCmd(), newUpCmd(), newPlanCmd(), newServerCmd())
	root.AddCommand(newAgentCmd(), newLogsCmd())
	root.AddCommand(clientCommands()...)
	return root
}
