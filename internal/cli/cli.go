// Package cli is usine's command line: it parses arguments and wires the
// internal packages together. Every command lives here, one file each.
package cli

import (
	"context"
	"errors"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
)

// Exit codes that scripts can rely on (docs/CLI.md lists them too).
const (
	ExitOK          = 0
	ExitError       = 1 // the command ran and failed
	ExitUsage       = 2 // bad flags or arguments, or a request the server refused as invalid
	ExitNotFound    = 3 // no such job, node, project, user or token
	ExitDenied      = 4 // no token, an unknown or expired one, or not allowed
	ExitConflict    = 5 // the object is not in a state that allows this
	ExitUnreachable = 6 // the server did not answer, or is not ready
)

// exitHelp explains the exit codes in usine --help.
const exitHelp = `Exit codes:
  0  ok
  1  error
  2  usage: bad flags or arguments, or a request the server refused as invalid
  3  not found: no such job, node, project, user or token
  4  not authorised: no token, an unknown or expired one, or forbidden
  5  conflict: the object is not in a state that allows this (e.g. cancel an ended job)
  6  server unreachable, or not ready`

// UsageError marks an error in how the command was called.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode maps an error returned by Run to a process exit code: an error
// that knows its code (an ExitCode method) says it, the API's error codes
// map to the constants above.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	var unreachable *api.UnreachableError
	if errors.As(err, &unreachable) {
		return ExitUnreachable
	}
	var e *api.Error
	if errors.As(err, &e) {
		switch e.Code {
		case api.CodeInvalidField, api.CodeBadRequest, api.CodeTooLarge:
			return ExitUsage
		case api.CodeNotFound:
			return ExitNotFound
		case api.CodeUnauthorized, api.CodeForbidden:
			return ExitDenied
		case api.CodeConflict:
			return ExitConflict
		case api.CodeUnavailable:
			return ExitUnreachable
		}
	}
	return ExitError
}

// Run executes the command line args (args[0] is the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if slurmCmd := slurmMain(filepath.Base(args[0])); slurmCmd != nil {
			return slurmCmd(ctx, args[1:], stdout, stderr)
		}
	}
	root := newRoot(stdout, stderr)
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctx)
	return err
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "usine",
		Short:         "usine runs an AI factory: grants, scheduling, agents and a simulator",
		Long:          "usine runs an AI factory: grants, scheduling, agents and a simulator.\n\n" + exitHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	root.AddCommand(newTraceCmd(), newSimCmd(), newUpCmd(), newPlanCmd(), newServerCmd())
	root.AddCommand(newAgentCmd(), newLogsCmd(), newSlurmCmd())
	root.AddCommand(clientCommands()...)
	return root
}
