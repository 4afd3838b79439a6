package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/sim"
	"github.com/usine-project/usine/internal/trace"
)

// newUpCmd is usine on this machine with its embedded defaults. Until the
// control plane lands (server, store, agents), that means the scheduler on
// a built-in factory, replaying a generated day of work under each policy.
func newUpCmd() *cobra.Command {
	var (
		clusterName string
		jobs        int
		seed        uint64
		policies    string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run usine on this machine with its embedded defaults",
		Long: `Run usine on this machine with its embedded defaults: no file, no network.

Today this runs usine's scheduler on a built-in factory (by default "laptop":
4 nodes × 8 H100 in 2 blocks) over a generated workload, under FIFO, FIFO +
EASY backfill (a default Slurm) and usine's own policy, and prints how each
did. The API server and node agents that run real jobs come next.`,
		Args: usageArgs(cobra.NoArgs, "up takes no arguments, only flags"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobs <= 0 {
				return &UsageError{fmt.Errorf("up: --jobs %d; give a positive number of jobs", jobs)}
			}
			c, err := cluster.Resolve(clusterName)
			if err != nil {
				return &UsageError{fmt.Errorf("up: --cluster: %w", err)}
			}
			var cfgs []sched.Config
			for _, name := range strings.Split(policies, ",") {
				cfg, err := sched.PolicyByName(strings.TrimSpace(name))
				if err != nil {
					return &UsageError{fmt.Errorf("up: --policy: %w", err)}
				}
				cfgs = append(cfgs, cfg)
			}
			recs, err := workload(c, trace.GenOptions{Jobs: jobs, Seed: seed})
			if err != nil {
				return fmt.Errorf("up: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "usine: factory %q — %d nodes, %d accelerators; replaying %d generated jobs (seed %d)\n\n",
				c.Name, len(c.Nodes), c.TotalAccelerators(), len(recs), seed)
			res, err := sim.RunAll(cmd.Context(), sim.Input{Cluster: c, Records: recs}, cfgs, sim.Options{SkipImpossible: true})
			if err != nil {
				return fmt.Errorf("up: %w", err)
			}
			if err := sim.WriteTable(out, res); err != nil {
				return err
			}
			fmt.Fprint(out, `
Try next:
  usine trace gen --cluster gigafactory --jobs 100000 -o giga.csv
  usine sim --cluster gigafactory --trace giga.csv --policy easy,usine --report giga.html
  usine sim --help
`)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&clusterName, "cluster", "laptop", "built-in cluster ("+strings.Join(cluster.Examples(), ", ")+") or a JSON cluster file")
	f.IntVar(&jobs, "jobs", 2000, "jobs to generate")
	f.Uint64Var(&seed, "seed", 1, "seed of the generated workload")
	f.StringVar(&policies, "policy", "fifo,easy,usine", "policies to compare, comma-separated")
	return cmd
}
