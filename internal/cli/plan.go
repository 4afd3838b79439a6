package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newPlanCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "plan",
		Short:  "Estimate the accelerator-hours, time and energy of a training run, and the grant to ask for",
		Hidden: true, // until the calculator lands
		Args:   cobra.NoArgs,
		RunE:   func(*cobra.Command, []string) error { return errors.New("usine plan is not built yet") },
	}
}
