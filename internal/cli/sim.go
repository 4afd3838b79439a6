package cli

import "github.com/spf13/cobra"

func newSimCmd() *cobra.Command {
	return &cobra.Command{Use: "sim", Short: "(not yet built)"}
}
