package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/trace"
)

func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Convert, generate and check job traces (usine trace CSV v1)",
		Long: `Job traces in usine's own format, usine trace CSV v1 (docs/TRACES.md):
convert public traces to it, generate synthetic gigafactory workloads, and
check a file.`,
	}
	cmd.AddCommand(newTraceConvertCmd(), newTraceGenCmd(), newTraceCheckCmd())
	return cmd
}

func newTraceConvertCmd() *cobra.Command {
	var (
		from, out, durations string
		seed                 uint64
		skipBad              bool
		perNode              int
	)
	var help strings.Builder
	for _, f := range trace.Formats() {
		fmt.Fprintf(&help, "  %-13s %s\n", f, trace.FormatHelp(f))
	}
	cmd := &cobra.Command{
		Use:   "convert --from FORMAT IN... [-o OUT]",
		Short: "Convert a public trace to usine trace CSV v1",
		Long: "Convert a public trace to usine trace CSV v1. Formats:\n" + help.String() +
			"\nThe same command and inputs always write the same file, byte for byte.",
		Example: `  usine trace convert --from philly-gavel ../shared/traces/philly/gavel_vc_traces/seed=0 -o philly.csv
  usine trace convert --from openb ../shared/traces/alibaba_openb_v2023/openb_pod_list_default.csv -o openb.csv
  usine trace convert --from swf --per-node 32 log.swf -o log.csv`,
		Args: usageArgs(cobra.MinimumNArgs(1), "give at least one input file or directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return &UsageError{fmt.Errorf("trace convert: --from is required; use one of: %s", strings.Join(trace.Formats(), ", "))}
			}
			if !slices.Contains(trace.Formats(), from) {
				return &UsageError{fmt.Errorf("trace convert: unknown format %q for --from; use one of: %s", from, strings.Join(trace.Formats(), ", "))}
			}
			if perNode < 0 {
				return &UsageError{fmt.Errorf("trace convert: --per-node %d is negative; give the processors of one node, or 0 to pack", perNode)}
			}
			opt := trace.ConvertOptions{ReadOptions: trace.ReadOptions{SkipBad: skipBad}, Seed: seed, Durations: durations, PerNode: perNode}
			recs, st, err := trace.Convert(cmd.Context(), from, args, opt)
			if err != nil {
				return fmt.Errorf("trace convert: %w", err)
			}
			report(cmd.ErrOrStderr(), "converted", len(recs), st)
			if len(recs) == 0 {
				return fmt.Errorf("trace convert: no job left to write from %s", strings.Join(args, " "))
			}
			provenance := []string{"usine trace csv v1", "usine trace convert " + convertFlags(from, seed, durations, perNode, skipBad) + baseNames(args)}
			return writeTrace(cmd.OutOrStdout(), out, recs, provenance)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "input format: "+strings.Join(trace.Formats(), ", "))
	f.StringVarP(&out, "output", "o", "-", "output file; - writes to standard output")
	f.Uint64Var(&seed, "seed", 0, "philly-gavel: seed of the run-time draws")
	f.StringVar(&durations, "durations", "", "philly-gavel: duration distribution ("+trace.DurationsFile+"); found next to the inputs when not given")
	f.IntVar(&perNode, "per-node", 0, "swf: processors per node of the logged machine; jobs of whole nodes become gangs (0 = pack)")
	f.BoolVar(&skipBad, "skip-bad", false, "skip malformed lines, counting them on standard error, instead of stopping at the first")
	return cmd
}

func newTraceGenCmd() *cobra.Command {
	var (
		jobs, projects int
		seed           uint64
		clusterName    string
		load           float64
		out            string
	)
	cmd := &cobra.Command{
		Use:   "gen --jobs N [--seed S] [--cluster NAME|FILE] [-o OUT]",
		Short: "Generate a synthetic gigafactory workload",
		Long: `Generate a synthetic workload sized for a cluster: pre-training gangs of
512–8,192 accelerators running for days, fine-tunes of 8–256, short
evaluations of 1–8 and single-accelerator jobs, arriving so that the offered
load is --load of the cluster's accelerators. The same flags write the same
file. docs/TRACES.md describes the mix.`,
		Example: `  usine trace gen --jobs 1000000 --seed 1 -o giga.csv
  usine trace gen --jobs 2000 --cluster laptop --load 0.7 -o laptop.csv`,
		Args: usageArgs(cobra.NoArgs, "trace gen takes no arguments, only flags"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if jobs <= 0 {
				return &UsageError{fmt.Errorf("trace gen: --jobs %d; give the number of jobs to generate, such as --jobs 100000", jobs)}
			}
			if !(load > 0) {
				return &UsageError{fmt.Errorf("trace gen: --load %g; give a fraction of the cluster above 0, such as 0.9", load)}
			}
			if projects < 0 {
				return &UsageError{fmt.Errorf("trace gen: --projects %d is negative", projects)}
			}
			c, err := cluster.Resolve(clusterName)
			if err != nil {
				return &UsageError{fmt.Errorf("trace gen: --cluster: %w", err)}
			}
			recs, err := workload(c, trace.GenOptions{Jobs: jobs, Seed: seed, Load: load, Projects: projects})
			if err != nil {
				return &UsageError{fmt.Errorf("trace gen: %w", err)}
			}
			flags := fmt.Sprintf("--jobs %d --seed %d --cluster %s --load %s", jobs, seed, filepath.Base(clusterName), strconv.FormatFloat(load, 'g', -1, 64))
			if projects > 0 {
				flags += fmt.Sprintf(" --projects %d", projects)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "generated %d jobs for %s (%d accelerators) at load %g\n", len(recs), c.Name, c.TotalAccelerators(), load)
			return writeTrace(cmd.OutOrStdout(), out, recs, []string{"usine trace csv v1", "usine trace gen " + flags})
		},
	}
	f := cmd.Flags()
	f.IntVar(&jobs, "jobs", 0, "number of jobs (required)")
	f.Uint64Var(&seed, "seed", 0, "seed; the same seed writes the same file")
	f.StringVar(&clusterName, "cluster", "gigafactory", "built-in cluster ("+strings.Join(cluster.Examples(), ", ")+") or a JSON cluster file")
	f.Float64Var(&load, "load", 0.9, "offered load as a fraction of the cluster's accelerators")
	f.IntVar(&projects, "projects", 0, "number of projects (0 = jobs/5,000 within 20–200)")
	f.StringVarP(&out, "output", "o", "-", "output file; - writes to standard output")
	return cmd
}

func newTraceCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a usine trace CSV v1 file and summarise it",
		Long: `Read a usine trace CSV v1 file, report every malformed line on standard
error (the first few in full) and summarise the jobs on standard output. It
fails when any line is malformed.`,
		Args: usageArgs(cobra.ExactArgs(1), "give one trace file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("trace check: %w", err)
			}
			defer f.Close()
			name := filepath.Base(args[0])
			recs, st, err := trace.ReadCSV(f, name, trace.ReadOptions{SkipBad: true})
			if err != nil {
				return fmt.Errorf("trace check: %w", err)
			}
			summarise(cmd.OutOrStdout(), name, recs, st)
			if st.Skipped > 0 {
				report(cmd.ErrOrStderr(), "read", len(recs), st)
				return fmt.Errorf("trace check: %s has %d malformed line(s)", name, st.Skipped)
			}
			return nil
		},
	}
}

// usageArgs turns cobra's argument-count errors into usage errors.
func usageArgs(check cobra.PositionalArgs, hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &UsageError{fmt.Errorf("%s: %w; %s", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), err, hint)}
		}
		return nil
	}
}

// report tells what a reader did, on standard error.
func report(w io.Writer, verb string, n int, st trace.Stats) {
	fmt.Fprintf(w, "%s %d jobs", verb, n)
	if st.Skipped > 0 {
		fmt.Fprintf(w, "; skipped %d malformed line(s)", st.Skipped)
	}
	if st.Dropped > 0 {
		fmt.Fprintf(w, "; dropped %d line(s) with no job to replay", st.Dropped)
	}
	fmt.Fprintln(w)
	for _, e := range st.Errors {
		fmt.Fprintln(w, "  "+e)
	}
	if st.Skipped > len(st.Errors) {
		fmt.Fprintf(w, "  … and %d more\n", st.Skipped-len(st.Errors))
	}
}

func summarise(w io.Writer, name string, recs []trace.Record, st trace.Stats) {
	fmt.Fprintf(w, "%s: %d jobs, %d malformed line(s)\n", name, len(recs), st.Skipped)
	if len(recs) == 0 {
		return
	}
	projects, users := map[string]bool{}, map[string]bool{}
	states := map[string]int{}
	var accSec float64
	maxAcc, limits, packed := 0, 0, 0
	for i := range recs {
		r := &recs[i]
		projects[r.Project], users[r.User] = true, true
		rt, state := r.Outcome()
		states[state]++
		accSec += float64(r.Accelerators) * float64(rt)
		maxAcc = max(maxAcc, r.Accelerators)
		if r.Limit > 0 {
			limits++
		}
		if r.Nodes == 0 {
			packed++
		}
	}
	span := recs[len(recs)-1].Submit - recs[0].Submit
	fmt.Fprintf(w, "  submitted over %d s (%.1f days), %d projects, %d users\n", span, float64(span)/86400, len(projects), len(users))
	fmt.Fprintf(w, "  accelerators per job up to %d; %.0f accelerator-hours of run time (cut at limits)\n", maxAcc, accSec/3600)
	fmt.Fprintf(w, "  %d jobs give a limit (the others get the ladder default); %d let the scheduler pack\n", limits, packed)
	var parts []string
	for _, s := range trace.States() {
		if states[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, states[s]))
		}
	}
	fmt.Fprintf(w, "  ends as replayed: %s\n", strings.Join(parts, ", "))
}

func convertFlags(from string, seed uint64, durations string, perNode int, skipBad bool) string {
	s := "--from " + from
	if from == "philly-gavel" {
		s += fmt.Sprintf(" --seed %d", seed)
		if durations != "" {
			s += " --durations " + filepath.Base(durations)
		}
	}
	if perNode > 0 {
		s += fmt.Sprintf(" --per-node %d", perNode)
	}
	if skipBad {
		s += " --skip-bad"
	}
	return s
}

func baseNames(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		b.WriteByte(' ')
		b.WriteString(filepath.Base(filepath.Clean(p)))
	}
	return b.String()
}

// writeTrace writes records to path ("-" = stdout). A file is written under
// a temporary name and renamed, so a failed write leaves no half file.
func writeTrace(stdout io.Writer, path string, recs []trace.Record, comments []string) error {
	if path == "-" || path == "" {
		return trace.WriteCSV(stdout, recs, comments...)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	werr := trace.WriteCSV(tmp, recs, comments...)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// workload generates a synthetic workload sized for cluster c.
func workload(c *model.Cluster, opt trace.GenOptions) ([]trace.Record, error) {
	if c.TotalAccelerators() == 0 {
		return nil, fmt.Errorf("cluster %s has no accelerators", c.Name)
	}
	for _, n := range c.Nodes {
		opt.PerNode = max(opt.PerNode, n.Accelerators)
	}
	opt.Accelerators = c.TotalAccelerators()
	return trace.Generate(opt)
}
