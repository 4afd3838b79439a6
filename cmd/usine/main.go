// Command usine is the one binary of an AI factory's control plane.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/usine-project/usine/internal/cli"
	"github.com/usine-project/usine/internal/launch"
)

func main() {
	launch.SuperviseIfAsked() // a job's supervisor, started by the agent: no CLI, no Ctrl-C
	unignoreHangups()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !cli.Reported(err) { // the Slurm commands print their errors their own way
			fmt.Fprintln(os.Stderr, "usine:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}

// unignoreHangups keeps usine deaf to SIGHUP when it was started so (under
// nohup) without passing that on: an ignored signal stays ignored in every
// process usine starts, such as the srun tasks an agent runs, which could
// then neither trap SIGHUP nor die of it. A handled one is reset in them.
func unignoreHangups() {
	if signal.Ignored(syscall.SIGHUP) {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP) // nobody reads it: dropped
	}
}
