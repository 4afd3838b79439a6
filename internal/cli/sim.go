package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/cluster"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/sim"
	"github.com/usine-project/usine/internal/trace"
)

// simFlags are usine sim's flags.
type simFlags struct {
	cluster, from, policies, report string
	traces                          []string
	json, skipBad                   bool
	passInterval, backfillInterval  time.Duration
	halfLife, repairTime            time.Duration
	checkpoint                      time.Duration
	failRate, load                  float64
	seed                            uint64
}

func newSimCmd() *cobra.Command {
	var fl simFlags
	var formats strings.Builder
	for _, f := range trace.Formats() {
		fmt.Fprintf(&formats, "  %-13s %s\n", f, trace.FormatHelp(f))
	}
	cmd := &cobra.Command{
		Use:   "sim --cluster NAME|FILE --trace FILE [--policy fifo,easy,usine]",
		Short: "Replay a job trace on a cluster under scheduling policies and compare them",
		Long: `Replay a job trace on a cluster, on a simulated clock, under one or more
scheduling policies — the very scheduler a live factory runs — and compare
completion times, queueing delays, bounded slowdown, utilisation and fair
share. Policies run side by side, one per core.

Jobs arrive at their submit times and hold their accelerators for their
recorded run times, cut at their time limits (jobs without a limit get the
ladder default, see usine trace). A scheduling pass follows each batch of
arrivals and ends (at most one per --pass-interval, in strict priority
order, as Slurm's main scheduler), and a full pass with the policy's
backfill runs every --backfill-interval while jobs wait. docs/SIM.md
describes the events and every metric.

Trace formats (--from):
` + formats.String(),
		Example: `  usine sim --cluster laptop --trace jobs.csv
  usine trace gen --jobs 100000 --seed 1 -o giga.csv
  usine sim --cluster gigafactory --trace giga.csv --policy easy,usine --report giga.html
  usine sim --cluster philly --from philly-gavel --trace ../shared/traces/philly/gavel_vc_traces/seed=0 --json
  usine sim --cluster gigafactory --trace giga.csv --fail-rate 0.01 --checkpoint 1h
  usine sim --cluster philly --trace philly.csv --load 0.9 --policy easy,usine`,
		Args: usageArgs(cobra.NoArgs, "give the trace with --trace"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSim(cmd, &fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.cluster, "cluster", "", "built-in cluster ("+strings.Join(cluster.Examples(), ", ")+") or a JSON cluster file (required)")
	f.StringArrayVar(&fl.traces, "trace", nil, "trace file, or directory for philly-gavel; repeat for several (required)")
	f.StringVar(&fl.from, "from", "csv", "trace format: "+strings.Join(trace.Formats(), ", "))
	f.StringVar(&fl.policies, "policy", "fifo,easy,usine", "policies to compare, comma-separated: "+policyNames())
	f.BoolVar(&fl.json, "json", false, "write the results as JSON on standard output")
	f.StringVar(&fl.report, "report", "", "write a self-contained HTML report (charts and tables) to this file")
	f.BoolVar(&fl.skipBad, "skip-bad", false, "skip malformed trace lines and jobs that can never fit the cluster, counting them, instead of stopping")
	f.DurationVar(&fl.passInterval, "pass-interval", sim.DefaultPassInterval, "at most one pass per interval of simulated time after arrivals and ends")
	f.DurationVar(&fl.backfillInterval, "backfill-interval", sim.DefaultBackfillInterval, "full (backfill) passes every interval while jobs wait")
	f.DurationVar(&fl.halfLife, "half-life", sim.DefaultHalfLife, "half-life of the usage fair share weighs")
	f.Float64Var(&fl.failRate, "fail-rate", 0, "random node failures per node per day (0 = none); jobs on a failed node are requeued")
	f.DurationVar(&fl.repairTime, "repair-time", sim.DefaultRepairTime, "how long a failed node stays down")
	f.DurationVar(&fl.checkpoint, "checkpoint", 0, "jobs stopped by a failure or preemption resume from a checkpoint taken every interval (0 = restart from scratch)")
	f.Uint64Var(&fl.seed, "seed", 0, "seed of the failures and of philly-gavel's run-time draws")
	f.Float64Var(&fl.load, "load", 0, "compress or stretch arrival times so that the offered load is this fraction of the cluster (0 = as recorded)")
	return cmd
}

func policyNames() string {
	var names []string
	for _, c := range sched.Policies() {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}

// check validates the flags; every error it returns is a usage error.
func (fl *simFlags) check() ([]sched.Config, error) {
	usage := func(format string, args ...any) error {
		return &UsageError{fmt.Errorf("sim: "+format, args...)}
	}
	switch {
	case fl.cluster == "":
		return nil, usage("--cluster is required; name a built-in (%s) or a JSON cluster file", strings.Join(cluster.Examples(), ", "))
	case len(fl.traces) == 0:
		return nil, usage("--trace is required; give a trace file (usine trace gen writes one)")
	case !slices.Contains(trace.Formats(), fl.from):
		return nil, usage("unknown format %q for --from; use one of: %s", fl.from, strings.Join(trace.Formats(), ", "))
	case fl.passInterval < time.Second:
		return nil, usage("--pass-interval %v; give at least 1s", fl.passInterval)
	case fl.backfillInterval < time.Second:
		return nil, usage("--backfill-interval %v; give at least 1s", fl.backfillInterval)
	case fl.halfLife < time.Second:
		return nil, usage("--half-life %v; give at least 1s", fl.halfLife)
	case fl.repairTime < time.Second:
		return nil, usage("--repair-time %v; give at least 1s", fl.repairTime)
	case fl.checkpoint != 0 && fl.checkpoint < time.Second:
		return nil, usage("--checkpoint %v; give 0 or at least 1s", fl.checkpoint)
	case !(fl.failRate >= 0) || fl.failRate > 1e6:
		return nil, usage("--fail-rate %g; give failures per node per day, 0 or more, such as 0.01", fl.failRate)
	}
	var cfgs []sched.Config
	for _, name := range strings.Split(fl.policies, ",") {
		name = strings.TrimSpace(name)
		cfg, err := sched.PolicyByName(name)
		if err != nil {
			return nil, usage("--policy: %w", err)
		}
		if slices.ContainsFunc(cfgs, func(c sched.Config) bool { return c.Name == name }) {
			return nil, usage("--policy names %s twice", name)
		}
		cfgs = append(cfgs, cfg)
	}
	return cfgs, nil
}

func runSim(cmd *cobra.Command, fl *simFlags) error {
	cfgs, err := fl.check()
	if err != nil {
		return err
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ctx := cmd.Context()
	c, err := cluster.Resolve(fl.cluster)
	if err != nil {
		return &UsageError{fmt.Errorf("sim: --cluster: %w", err)}
	}
	recs, st, err := trace.Convert(ctx, fl.from, fl.traces, trace.ConvertOptions{ReadOptions: trace.ReadOptions{SkipBad: fl.skipBad}, Seed: fl.seed})
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	report(stderr, "read", len(recs), st)
	if len(recs) == 0 {
		return fmt.Errorf("sim: no job to replay in %s", strings.Join(fl.traces, " "))
	}
	trace.ApplyDefaultLimit(recs)
	if fl.load != 0 {
		before := trace.OfferedLoad(recs, c.TotalAccelerators())
		if err := trace.ScaleLoad(recs, c.TotalAccelerators(), fl.load); err != nil {
			return &UsageError{fmt.Errorf("sim: --load: %w", err)}
		}
		fmt.Fprintf(stderr, "arrivals rescaled: offered load %.3f as recorded, %.3f now\n", before, fl.load)
	}
	opt := sim.Options{
		PassInterval:     fl.passInterval,
		BackfillInterval: fl.backfillInterval,
		HalfLife:         fl.halfLife,
		FailRate:         fl.failRate,
		RepairTime:       fl.repairTime,
		Checkpoint:       fl.checkpoint,
		Seed:             fl.seed,
		SkipImpossible:   fl.skipBad,
	}
	jobs := len(recs)
	in := sim.Input{Cluster: c, Records: recs}

	// The scheduler allocates a fresh view of the cluster every pass:
	// collecting less often buys about a fifth of the run time.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	prog := newProgress(stderr, cfgs)
	opt.Progress = prog.update
	fmt.Fprintf(stderr, "replaying %d jobs on %s (%d nodes, %d accelerators) under %s\n",
		jobs, c.Name, len(c.Nodes), c.TotalAccelerators(), strings.Join(names(cfgs), ", "))
	start := time.Now()
	results, err := sim.RunAll(ctx, in, cfgs, opt)
	wall := time.Since(start)
	prog.clear()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	simulated := 0
	for k, r := range results {
		w := prog.wall(k, start, wall)
		r.WallSeconds = w.Seconds()
		if w > 0 {
			r.JobsPerSecond = float64(r.Jobs) / w.Seconds()
		}
		simulated += r.Jobs
	}
	if r := results[0]; r.Skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d job(s) that can never run on %s\n", r.Skipped, c.Name)
		for _, e := range r.SkipErrors {
			fmt.Fprintln(stderr, "  "+e)
		}
		if r.Skipped > len(r.SkipErrors) {
			fmt.Fprintf(stderr, "  … and %d more\n", r.Skipped-len(r.SkipErrors))
		}
	}
	speed := speedLine(results, simulated, wall)
	if fl.report != "" {
		info := sim.ReportInfo{
			Title:   "usine sim: " + c.Name,
			Cluster: c.Name,
			Trace:   baseNames(fl.traces)[1:] + " (" + fl.from + ")",
			Notes:   []string{optionsLine(fl), speed},
		}
		if err := writeFile(fl.report, func(w io.Writer) error { return sim.WriteReport(w, results, info) }); err != nil {
			return fmt.Errorf("sim: --report: %w", err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", fl.report)
	}
	if fl.json {
		fmt.Fprintln(stderr, speed)
		return sim.WriteJSON(stdout, results)
	}
	if err := sim.WriteTable(stdout, results); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, speed)
	return nil
}

func names(cfgs []sched.Config) []string {
	out := make([]string, len(cfgs))
	for k, c := range cfgs {
		out[k] = c.Name
	}
	return out
}

func speedLine(results []*sim.Result, simulated int, wall time.Duration) string {
	var per []string
	for _, r := range results {
		per = append(per, fmt.Sprintf("%s %.1fs", r.Policy, r.WallSeconds))
	}
	rate := 0.0
	if wall > 0 {
		rate = float64(simulated) / wall.Seconds()
	}
	return fmt.Sprintf("simulated %d jobs (%d policies) in %.1fs of wall time: %.0f jobs/s (%s)",
		simulated, len(results), wall.Seconds(), rate, strings.Join(per, ", "))
}

func optionsLine(fl *simFlags) string {
	s := fmt.Sprintf("passes: at most one per %v after arrivals and ends, full passes every %v while jobs wait; fair-share half-life %v",
		fl.passInterval, fl.backfillInterval, fl.halfLife)
	if fl.failRate > 0 {
		s += fmt.Sprintf("; %g node failures per node per day, repaired in %v (seed %d)", fl.failRate, fl.repairTime, fl.seed)
		if fl.checkpoint > 0 {
			s += fmt.Sprintf(", checkpoints every %v", fl.checkpoint)
		}
	}
	return s
}

// writeFile writes path through a temporary file renamed into place, so a
// failed write leaves no half file.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	werr := write(tmp)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// progress draws one line per update on a terminal's standard error, and
// notes when each policy finishes, for its wall time.
type progress struct {
	mu    sync.Mutex
	w     io.Writer // nil: not a terminal, draw nothing
	names []string
	done  []int
	total []int
	ended []time.Time
	last  time.Time
	drawn bool
}

func newProgress(stderr io.Writer, cfgs []sched.Config) *progress {
	p := &progress{names: names(cfgs), done: make([]int, len(cfgs)), total: make([]int, len(cfgs)), ended: make([]time.Time, len(cfgs))}
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.w = stderr
		}
	}
	return p
}

func (p *progress) update(pr sim.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done[pr.Index], p.total[pr.Index] = pr.Done, pr.Total
	now := time.Now()
	if pr.Done == pr.Total {
		p.ended[pr.Index] = now
	}
	if p.w == nil || now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	var b strings.Builder
	b.WriteString("\r")
	for k, name := range p.names {
		frac := 0.0
		if p.total[k] > 0 {
			frac = float64(p.done[k]) / float64(p.total[k])
		}
		const width = 20
		n := int(frac * width)
		fmt.Fprintf(&b, "%s [%s%s] %3.0f%%  ", name, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac)
	}
	io.WriteString(p.w, b.String())
	p.drawn = true
}

func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil && p.drawn {
		io.WriteString(p.w, "\r\033[K")
	}
}

// wall is how long policy k took: until its last progress report, or the
// whole run when it made none.
func (p *progress) wall(k int, start time.Time, whole time.Duration) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended[k].IsZero() {
		return whole
	}
	return p.ended[k].Sub(start)
}
