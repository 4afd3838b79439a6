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
