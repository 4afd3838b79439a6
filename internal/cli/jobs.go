package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm"
	"github.com/usine-project/usine/internal/slurm/hostlist"
	"github.com/usine-project/usine/internal/store"
)

// submitFlags are usine submit's flags; the job's shape and task come from
// them, or from the lines of --batch.
type submitFlags struct {
	conn
	project, name, partition, model string
	nodes, gpusPerNode, gpus, cpus  int
	mem, limit, qos, array, deps    string
	begin, workdir, stdout, stderr  string
	signal, openMode                string
	env                             []string
	hold, requeue, oneBlock         bool
	exclusive, preemptible          bool
	dryRun, wait, parsable          bool
	batch                           string
}

// jobFlags are the flags that describe one job: --batch takes them from
// its lines instead.
var jobFlags = []string{"name", "partition", "model", "nodes", "gpus-per-node", "gpus", "cpus", "mem", "time", "qos",
	"array", "dependency", "hold", "begin", "workdir", "env", "output", "error", "open-mode", "signal", "requeue", "one-block", "exclusive", "preemptible"}

func newSubmitCmd() *cobra.Command { return (&submitFlags{}).command() }

func (f *submitFlags) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit [flags] [SCRIPT | -- COMMAND ARGS…]",
		Short: "Submit a job: a batch script or a command, on accelerators",
		Long: `Submit a job to run a batch script (SCRIPT, or - for standard input) or a
command (after --). Flags say what it needs, with Slurm's names where Slurm
has one:

  -N 2 --gpus-per-node 8    a gang: 2 nodes with 8 accelerators each, all
                            started together
  --gpus 4                  4 accelerators packed onto as few nodes as fit
  (neither)                 a CPU-only job

The project defaults to yours when you are a member of exactly one. The job
runs in --workdir (by default the current directory) with a clean
environment plus what -e sets; its output goes to -o (by default
usine-<job id>.out in the working directory).

#SBATCH lines in the script are not read: give their values as flags, or
submit with sbatch, which reads them.

It prints the job ID(s); with --parsable, only the IDs, one a line. With
--wait it returns when every job has ended, with the highest exit status of
the jobs (128+N for a job killed by signal N, 1 for one that failed, timed
out or was cancelled without either).`,
		Example: `  usine submit -p mylab -N 2 --gpus-per-node 8 -t 1-00:00:00 train.sh
  usine submit --gpus 1 --mem 64G -- python eval.py --ckpt last
  usine submit --array 0-15 --gpus 1 sweep.sh
  usine submit -d afterok:41 --gpus 8 finetune.sh
  usine submit --dry-run -N 4 --gpus-per-node 8 train.sh
  usine submit --batch jobs.jsonl --wait`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSubmit(cmd, f, args)
		},
	}
	f.conn.register(cmd, false)
	fl := cmd.Flags()
	fl.StringVarP(&f.project, "project", "p", "", "project (account) to charge (default: your only project)")
	fl.StringVarP(&f.name, "name", "J", "", "job name (default: the script's or command's name)")
	fl.StringVar(&f.partition, "partition", "", "partition (default: any that fits)")
	fl.StringVar(&f.model, "model", "", "accelerator model, e.g. H100 (default: any)")
	fl.IntVarP(&f.nodes, "nodes", "N", 0, "nodes of a gang job; with --gpus-per-node")
	fl.IntVar(&f.gpusPerNode, "gpus-per-node", 0, "accelerators on each node of a gang (-N 1 when -N is not given)")
	fl.IntVar(&f.gpus, "gpus", 0, "accelerators in all; packed onto as few nodes as fit, or split evenly over -N nodes")
	fl.IntVarP(&f.cpus, "cpus", "c", 0, "CPUs (per node for a gang, in all otherwise)")
	fl.StringVar(&f.mem, "mem", "", "memory, MiB or with a K, M, G or T suffix (per node for a gang, in all otherwise)")
	fl.StringVarP(&f.limit, "time", "t", "", "time limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (default: the server's)")
	fl.StringVar(&f.qos, "qos", "", "quality of service: normal, high or low (default: normal)")
	fl.StringVarP(&f.array, "array", "a", "", "make a job array: 0-15, 1,3,5-11:2; 0-99%8 runs at most 8 at once")
	fl.StringVarP(&f.deps, "dependency", "d", "", "start after other jobs: afterok:ID[:ID…], afterany:…, afternotok:…, after:…, joined with ','; an array's ID means all its elements, ARRAY_INDEX one")
	fl.BoolVar(&f.hold, "hold", false, "submit held: it waits until usine release")
	fl.StringVar(&f.begin, "begin", "", "start no earlier than: now+1hour, 16:00, tomorrow, 2026-06-01T08:00, …")
	fl.StringVarP(&f.workdir, "workdir", "D", "", "working directory on the nodes (default: the current directory)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set NAME=VALUE in the job's environment, or pass NAME from yours (repeatable)")
	fl.StringVarP(&f.stdout, "output", "o", "", "standard output file, relative to --workdir (default usine-<job id>.out)")
	fl.StringVar(&f.stderr, "error", "", "standard error file (default: with standard output)")
	fl.StringVar(&f.openMode, "open-mode", "", "append or truncate the output files (default: truncate on the first run, append when requeued)")
	fl.StringVar(&f.signal, "signal", "", "send SIG SECS seconds before the time limit and on preemption: SIG[@SECS] (default TERM, 60 s)")
	fl.BoolVar(&f.requeue, "requeue", false, "requeue rather than fail when a node is lost or the job is preempted")
	fl.BoolVar(&f.oneBlock, "one-block", false, "run inside one block (scale-up domain), or wait")
	fl.BoolVar(&f.exclusive, "exclusive", false, "take whole nodes")
	fl.BoolVar(&f.preemptible, "preemptible", false, "may be preempted by higher-priority work")
	fl.BoolVar(&f.dryRun, "dry-run", false, "submit nothing: say when and where the job would start")
	fl.StringVar(&f.batch, "batch", "", "submit the jobs of a JSON Lines file (one API JobSpec a line; - = standard input) in one transaction")
	fl.BoolVar(&f.wait, "wait", false, "wait until the jobs end; exit with their highest exit status")
	fl.BoolVar(&f.parsable, "parsable", false, "print only the job IDs, one a line")
	_ = cmd.RegisterFlagCompletionFunc("qos", cobra.FixedCompletions([]string{"normal", "high", "low"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("project", completeProjects(&f.conn))
	_ = cmd.RegisterFlagCompletionFunc("partition", completePartitions(&f.conn))
	return cmd
}

func runSubmit(cmd *cobra.Command, f *submitFlags, args []string) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var specs []api.JobSpec
	if f.batch != "" {
		if len(args) > 0 {
			return &UsageError{errors.New("submit: --batch takes the jobs from its file; give no SCRIPT or command")}
		}
		for _, name := range jobFlags {
			if cmd.Flags().Changed(name) {
				return &UsageError{fmt.Errorf("submit: --%s does not apply to --batch; set it in each line of %s", name, f.batch)}
			}
		}
		var err error
		if specs, err = readBatch(cmd.InOrStdin(), f.batch); err != nil {
			return err
		}
	} else {
		sp, err := f.spec(cmd, args, time.Now())
		if err != nil {
			return err
		}
		specs = []api.JobSpec{sp}
	}
	c, err := f.conn.client(cmd)
	if err != nil {
		return err
	}
	if f.project == "" && slices.ContainsFunc(specs, func(s api.JobSpec) bool { return s.Project == "" }) {
		if f.project, err = defaultProject(ctx, c); err != nil {
			return err
		}
	}
	for i := range specs {
		if specs[i].Project == "" {
			specs[i].Project = f.project
		}
	}
	for i := range specs {
		if specs[i].Deps, err = resolveDeps(ctx, c, specs[i].Deps); err != nil {
			return err
		}
	}
	if f.dryRun {
		return dryRun(ctx, c, specs, stdout)
	}
	jobs, err := c.Submit(ctx, specs...)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	switch {
	case f.parsable:
		for _, id := range ids {
			fmt.Fprintln(stdout, id)
		}
	case len(specs) == 1 && specs[0].Array != "":
		fmt.Fprintf(stdout, "Submitted array job %s: %d jobs %s\n", jobs[0].ArrayID, len(ids), compactIDs(ids))
	case len(ids) == 1:
		fmt.Fprintf(stdout, "Submitted job %s\n", ids[0])
	default:
		fmt.Fprintf(stdout, "Submitted %d jobs: %s\n", len(ids), compactIDs(ids))
	}
	if !f.wait {
		return nil
	}
	return waitJobs(ctx, c, ids, stderr)
}

// spec turns the flags and arguments into one job.
func (f *submitFlags) spec(cmd *cobra.Command, args []string, now time.Time) (api.JobSpec, error) {
	usage := func(format string, a ...any) error {
		return &UsageError{fmt.Errorf("submit: "+format, a...)}
	}
	sp := api.JobSpec{Name: f.name, Partition: f.partition, Model: f.model, CPUs: f.cpus, QoS: f.qos,
		Preemptible: f.preemptible, OneBlock: f.oneBlock, Exclusive: f.exclusive, Held: f.hold, Array: f.array}

	dash := cmd.ArgsLenAtDash()
	switch {
	case dash == 0 && len(args) > 0:
		sp.Task.Command = args
		if sp.Name == "" {
			sp.Name = filepath.Base(args[0])
		}
	case dash > 0:
		return sp, usage("give either SCRIPT or -- COMMAND ARGS…, not both (%q comes before --)", args[0])
	case len(args) == 0 || dash == 0:
		return sp, usage("nothing to run; give a SCRIPT (- for standard input) or -- COMMAND ARGS…")
	case len(args) > 1:
		return sp, usage("usine submit passes no arguments to a script (%q); run a command with -- COMMAND ARGS…, or set variables with -e", args[1])
	default:
		script, err := readScript(cmd.InOrStdin(), args[0])
		if err != nil {
			return sp, err
		}
		sp.Task.Script = script
		if sp.Name == "" && args[0] != "-" {
			sp.Name = filepath.Base(args[0])
		}
		if strings.Contains(script, "\n#SBATCH") || strings.HasPrefix(script, "#SBATCH") {
			fmt.Fprintln(cmd.ErrOrStderr(), "usine: warning: usine submit does not read #SBATCH lines; give their values as flags, or submit with sbatch")
		}
	}

	switch {
	case f.nodes < 0 || f.gpusPerNode < 0 || f.gpus < 0 || f.cpus < 0:
		return sp, usage("-N, --gpus-per-node, --gpus and -c take counts of 0 or more")
	case f.nodes > 0 && f.gpus > 0 && f.gpusPerNode > 0:
		return sp, usage("give --gpus or --gpus-per-node with -N, not both")
	case f.nodes > 0 && f.gpus > 0:
		if f.gpus%f.nodes != 0 {
			return sp, usage("--gpus %d does not split evenly over -N %d nodes; give --gpus-per-node", f.gpus, f.nodes)
		}
		sp.Nodes, sp.AcceleratorsPerNode = f.nodes, f.gpus/f.nodes
	case f.nodes > 0:
		sp.Nodes, sp.AcceleratorsPerNode = f.nodes, f.gpusPerNode
	case f.gpusPerNode > 0:
		if f.gpus > 0 {
			return sp, usage("give --gpus (packed anywhere) or --gpus-per-node (a gang), not both")
		}
		sp.Nodes, sp.AcceleratorsPerNode = 1, f.gpusPerNode
	default:
		sp.Accelerators = f.gpus
	}
	if f.mem != "" {
		mib, err := parseMemory(f.mem)
		if err != nil {
			return sp, usage("--mem %q: %v", f.mem, err)
		}
		sp.MemoryMiB = mib
	}
	if f.limit != "" {
		secs, err := slurm.ParseDuration(f.limit)
		if err != nil {
			return sp, usage("--time: %v", err)
		}
		if secs <= 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "usine: warning: --time %s asks for no limit; usine jobs always have one: the server's default applies\n", f.limit)
			secs = 0
		}
		sp.Limit = secs
	}
	if f.deps != "" {
		deps, singleton, err := slurm.ParseDependency(f.deps)
		if err != nil {
			return sp, usage("%v", err)
		}
		if singleton {
			return sp, usage("--dependency singleton is not supported; name the jobs to wait for, as in afterok:41")
		}
		sp.Deps = deps
	}
	if f.begin != "" {
		t, err := slurm.ParseBegin(f.begin, now)
		if err != nil {
			return sp, usage("--begin: %v", err)
		}
		sp.Begin = t.Unix()
	}
	if f.signal != "" {
		sig, before, err := parseSignalSpec(f.signal)
		if err != nil {
			return sp, usage("--signal %q: %v", f.signal, err)
		}
		sp.Task.Signal, sp.Task.SignalBefore = sig, before
	}
	for _, kv := range f.env {
		if sp.Task.Env == nil {
			sp.Task.Env = map[string]string{}
		}
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return sp, usage("-e %q: give NAME=VALUE, or NAME to pass the variable from your environment", kv)
		}
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				return sp, usage("-e %s: %s is not set in your environment; give %s=VALUE", k, k, k)
			}
		}
		sp.Task.Env[k] = v
	}
	sp.Task.WorkDir = f.workdir
	if sp.Task.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return sp, fmt.Errorf("submit: find the current directory (%w); give -D DIR", err)
		}
		sp.Task.WorkDir = wd
	} else if abs, err := filepath.Abs(sp.Task.WorkDir); err == nil {
		sp.Task.WorkDir = abs
	}
	if err := model.CheckOpenMode(f.openMode); err != nil {
		return sp, usage("--open-mode: %v", err)
	}
	sp.Task.Stdout, sp.Task.Stderr, sp.Task.Requeue, sp.Task.OpenMode = f.stdout, f.stderr, f.requeue, f.openMode
	return sp, nil
}

// resolveDeps gives dependencies Slurm's meaning for arrays: ARRAY_INDEX
// names one element, and an array's job ID all of its elements.
func resolveDeps(ctx context.Context, c *api.Client, deps []model.Dependency) ([]model.Dependency, error) {
	var out []model.Dependency
	for _, d := range deps {
		arr, idx, isElem := strings.Cut(d.JobID, "_")
		elems, err := c.AllJobs(ctx, api.JobQuery{Array: arr})
		if err != nil {
			return nil, fmt.Errorf("submit: look up dependency %s: %w", d.JobID, err)
		}
		if !isElem && len(elems) <= 1 {
			out = append(out, d)
			continue
		}
		if !isElem {
			for _, e := range elems {
				out = append(out, model.Dependency{Type: d.Type, JobID: e.ID})
			}
			continue
		}
		n, err := strconv.Atoi(idx)
		i := slices.IndexFunc(elems, func(e store.Job) bool { return e.ArrayIndex == n })
		if err != nil || i < 0 {
			return nil, &UsageError{fmt.Errorf("submit: --dependency %s: array %s has no element %s", d.JobID, arr, idx)}
		}
		out = append(out, model.Dependency{Type: d.Type, JobID: elems[i].ID})
	}
	return out, nil
}

// readScript reads a batch script from a file, or standard input for "-".
func readScript(stdin io.Reader, path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return "", &UsageError{fmt.Errorf("submit: script %s does not exist; to run a command, put it after --, as in usine submit -- %s", path, path)}
	}
	if err != nil {
		return "", fmt.Errorf("submit: read script: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", &UsageError{fmt.Errorf("submit: script %s is empty", path)}
	}
	return string(b), nil
}

// readBatch reads one JobSpec a line; blank lines are skipped.
func readBatch(stdin io.Reader, path string) ([]api.JobSpec, error) {
	r := stdin
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return nil, &UsageError{fmt.Errorf("submit: --batch: %w", err)}
		}
		defer fh.Close()
		r = fh
	}
	var specs []api.JobSpec
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var sp api.JobSpec
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sp); err != nil {
			return nil, &UsageError{fmt.Errorf("submit: %s line %d: %v; each line is one JSON job spec, such as {\"name\":\"a\",\"accelerators\":1,\"task\":{\"command\":[\"true\"]}}", path, line, err)}
		}
		if dec.More() {
			return nil, &UsageError{fmt.Errorf("submit: %s line %d holds more than one JSON value; put one job a line", path, line)}
		}
		specs = append(specs, sp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("submit: read %s: %w", path, err)
	}
	if len(specs) == 0 {
		return nil, &UsageError{fmt.Errorf("submit: %s holds no jobs", path)}
	}
	return specs, nil
}

// parseMemory reads a size: a number of MiB, or with a K, M, G or T suffix
// (binary units, an optional B), rounded up to whole MiB.
func parseMemory(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	t = strings.TrimSuffix(t, "IB")
	if len(t) >= 2 && strings.HasSuffix(t, "B") {
		t = t[:len(t)-1]
	}
	mult, div := int64(1), int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			div = 1024
		case 'M':
		case 'G':
			mult = 1 << 10
		case 'T':
			mult = 1 << 20
		}
		if c := t[len(t)-1]; c < '0' || c > '9' {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("give a size such as 4000 (MiB), 500M, 32G or 1T")
	}
	if n > (1<<40)/mult {
		return 0, errors.New("too large")
	}
	return (n*mult + div - 1) / div, nil
}

// parseSignalSpec reads --signal's [B:]SIG[@SECS].
func parseSignalSpec(v string) (string, int64, error) {
	rest := v
	if pre, after, ok := strings.Cut(rest, ":"); ok {
		if strings.Trim(pre, "BR") != "" {
			return "", 0, errors.New("give [B:]SIG[@SECS], as in USR1@120")
		}
		rest = after
	}
	sigText, secsText, hasSecs := strings.Cut(rest, "@")
	sig, ok := slurm.SignalName(sigText)
	if !ok {
		return "", 0, fmt.Errorf("%q is not a signal; give a name such as USR1 or TERM, or a number", sigText)
	}
	secs := int64(60)
	if hasSecs {
		n, err := strconv.ParseInt(secsText, 10, 64)
		if err != nil || n < 0 || n > 65535 {
			return "", 0, fmt.Errorf("%q: give seconds before the time limit, 0 to 65535", secsText)
		}
		secs = n
	}
	return sig, secs, nil
}

// defaultProject is the one project the caller belongs to, else an error
// that lists the choices.
func defaultProject(ctx context.Context, c *api.Client) (string, error) {
	who, err := c.Whoami(ctx)
	if err != nil {
		return "", fmt.Errorf("find your project: %w", err)
	}
	var mine []string
	for _, m := range who.Roles {
		if m.Project != "" && (m.Role == store.RoleMember || m.Role == store.RoleManager) && !slices.Contains(mine, m.Project) {
			mine = append(mine, m.Project)
		}
	}
	slices.Sort(mine)
	switch len(mine) {
	case 1:
		return mine[0], nil
	case 0:
		return "", &UsageError{fmt.Errorf("%s is a member of no project: give -p PROJECT, or ask a project's manager to add you (usine projects add-member PROJECT %s)", who.User, who.User)}
	}
	return "", &UsageError{fmt.Errorf("%s is a member of several projects (%s); choose one with -p", who.User, strings.Join(mine, ", "))}
}

// dryRun asks the server when and where each job would start.
func dryRun(ctx context.Context, c *api.Client, specs []api.JobSpec, w io.Writer) error {
	now := time.Now()
	for i, sp := range specs {
		est, err := c.Estimate(ctx, sp)
		if err != nil {
			return fmt.Errorf("submit --dry-run: %w", err)
		}
		what := "The job"
		if len(specs) > 1 {
			what = fmt.Sprintf("Job %d (%s)", i+1, dash(sp.Name))
		}
		where := ""
		if len(est.Nodes) > 0 {
			where = " on " + hostlist.Compress(est.Nodes)
		}
		switch {
		case est.Start:
			fmt.Fprintf(w, "%s would start now%s.\n", what, where)
		case est.EstStart > 0:
			fmt.Fprintf(w, "%s would start at %s (%s)%s; until then it waits: %s.\n", what, fmtFullTime(est.EstStart), fmtRelative(est.EstStart, now), where, dash(est.Reason))
		default:
			fmt.Fprintf(w, "%s would wait (%s); no start time can be estimated yet.\n", what, dash(est.Reason))
		}
	}
	fmt.Fprintln(w, "Nothing was submitted (--dry-run).")
	return nil
}

// exitStatus is an error that carries the exit code of waited-for jobs.
type exitStatus struct {
	code int
	msg  string
}

func (e *exitStatus) Error() string { return e.msg }
func (e *exitStatus) ExitCode() int { return e.code }

// jobStatus is a shell's view of how a job ended: its exit code, 128+N
// for a signal N, 1 for any other failure.
func jobStatus(j *store.Job) int {
	if j.State == model.JobCompleted && j.ExitCode == 0 {
		return 0
	}
	if n := slurm.SignalNumber(j.Signal); n > 0 {
		return 128 + n
	}
	if j.ExitCode > 0 && j.ExitCode < 256 {
		return j.ExitCode
	}
	return 1
}

// waitJobs polls the jobs until all have ended, then says how they did.
func waitJobs(ctx context.Context, c *api.Client, ids []string, stderr io.Writer) error {
	left := slices.Clone(ids)
	ended := map[string]store.Job{}
	delay := 100 * time.Millisecond
	for len(left) > 0 {
		for chunk := range slices.Chunk(slices.Clone(left), 200) {
			jobs, err := c.AllJobs(ctx, api.JobQuery{IDs: chunk})
			if err != nil {
				return fmt.Errorf("submit --wait: %w (the jobs were submitted: %s)", err, compactIDs(ids))
			}
			for _, j := range jobs {
				if j.State.Final() {
					ended[j.ID] = j
					if len(ids) > 1 {
						fmt.Fprintf(stderr, "job %s %s%s\n", j.ID, j.State, endDetail(&j))
					}
				}
			}
		}
		left = slices.DeleteFunc(left, func(id string) bool { _, ok := ended[id]; return ok })
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("submit --wait: stopped waiting; %d job(s) still queued or running (%s)", len(left), compactIDs(left))
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
	worst, worstID := 0, ""
	for _, id := range ids {
		j := ended[id]
		if s := jobStatus(&j); s > worst {
			worst, worstID = s, id
		}
	}
	if worst == 0 {
		return nil
	}
	j := ended[worstID]
	return &exitStatus{code: worst, msg: fmt.Sprintf("job %s %s%s", j.ID, j.State, endDetail(&j))}
}

// endDetail says how an ended job ended: " (exit 3)", " (signal KILL,
// TimeLimit)".
func endDetail(j *store.Job) string {
	var parts []string
	if j.Signal != "" {
		parts = append(parts, "signal "+j.Signal)
	} else if j.State != model.JobCancelled || j.ExitCode != 0 {
		parts = append(parts, "exit "+strconv.Itoa(j.ExitCode))
	}
	if j.Reason != "" {
		parts = append(parts, j.Reason)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// queueFlags are usine queue's filters.
type queueFlags struct {
	conn
	out                                    output
	states, projects, user, partition, arr string
	ids, name                              string
	me, all, start                         bool
}

func newQueueCmd() *cobra.Command {
	var f queueFlags
	cmd := &cobra.Command{
		Use:     "queue",
		Aliases: []string{"q"},
		Short:   "List jobs: what runs, what waits and why",
		Long: `List the jobs you may see: by default those pending or running, with --all the
ended ones too. Pending jobs show why they wait in NODELIST(REASON); --start
adds when each is expected to start (running ones: when they started).

States: pending, running, completed, failed, cancelled, timeout (Slurm's PD,
R, CD, F, CA and TO work too), or ended for the last four.`,
		Example: `  usine queue
  usine q --me --start
  usine queue -p mylab --state pending -o wide
  usine queue --all -j 41,42 -o json`,
		Args: usageArgs(cobra.NoArgs, "filter with flags, such as -j ID or -u USER"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runQueue(cmd, &f)
		},
	}
	f.conn.register(cmd, false)
	f.out.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.states, "state", "", "only jobs in these states, comma-separated")
	fl.StringVarP(&f.projects, "project", "p", "", "only jobs of these projects, comma-separated")
	fl.StringVarP(&f.user, "user", "u", "", "only jobs of this user")
	fl.BoolVar(&f.me, "me", false, "only your jobs")
	fl.StringVar(&f.partition, "partition", "", "only jobs of this partition")
	fl.StringVar(&f.arr, "array", "", "only the jobs of this array (its job ID)")
	fl.StringVarP(&f.ids, "jobs", "j", "", "only these job IDs, comma-separated (any state)")
	fl.StringVarP(&f.name, "name", "n", "", "only jobs with this name")
	fl.BoolVar(&f.all, "all", false, "include ended jobs")
	fl.BoolVar(&f.start, "start", false, "show the (expected) start time")
	_ = cmd.RegisterFlagCompletionFunc("project", completeProjects(&f.conn))
	_ = cmd.RegisterFlagCompletionFunc("partition", completePartitions(&f.conn))
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"pending", "running", "completed", "failed", "cancelled", "timeout", "ended"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// parseStates reads a --state list, Slurm's codes and names included.
func parseStates(v string) ([]string, error) {
	var out []string
	add := func(s ...model.JobState) {
		for _, x := range s {
			if !slices.Contains(out, string(x)) {
				out = append(out, string(x))
			}
		}
	}
	for s := range strings.SplitSeq(v, ",") {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "pending", "pd":
			add(model.JobPending)
		case "running", "r":
			add(model.JobRunning)
		case "completed", "cd":
			add(model.JobCompleted)
		case "failed", "f":
			add(model.JobFailed)
		case "cancelled", "canceled", "ca":
			add(model.JobCancelled)
		case "timeout", "to":
			add(model.JobTimeout)
		case "ended":
			add(model.JobCompleted, model.JobFailed, model.JobCancelled, model.JobTimeout)
		case "all":
			add(model.JobPending, model.JobRunning, model.JobCompleted, model.JobFailed, model.JobCancelled, model.JobTimeout)
		default:
			return nil, &UsageError{fmt.Errorf("--state %q: use pending, running, completed, failed, cancelled, timeout, ended or all (or PD, R, CD, F, CA, TO)", s)}
		}
	}
	return out, nil
}

// splitComma splits a comma-separated option value (Slurm's lists too),
// dropping blanks.
func splitComma(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func runQueue(cmd *cobra.Command, f *queueFlags) error {
	if err := f.out.check(); err != nil {
		return err
	}
	if f.me && f.user != "" {
		return &UsageError{errors.New("queue: give --me or -u USER, not both")}
	}
	q := api.JobQuery{Projects: splitComma(f.projects), User: f.user, Partition: f.partition, Array: f.arr,
		IDs: splitComma(f.ids), Name: f.name}
	if f.states != "" {
		var err error
		if q.States, err = parseStates(f.states); err != nil {
			return err
		}
	} else if !f.all && len(q.IDs) == 0 {
		q.States = []string{string(model.JobPending), string(model.JobRunning)}
	}
	c, err := f.conn.client(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if f.me {
		who, err := c.Whoami(ctx)
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		q.User = who.User
	}
	jobs, err := c.AllJobs(ctx, q)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	w := cmd.OutOrStdout()
	if f.out.json() {
		return writeJSON(w, api.Jobs{Items: nonNilJobs(jobs)})
	}
	now := time.Now()
	header := []string{"JOBID", "NAME", "USER", "PROJECT", "STATE", "TIME", "NODES", "ACCEL"}
	if f.out.wide() {
		header = []string{"JOBID", "ARRAY", "NAME", "USER", "PROJECT", "PARTITION", "QOS", "STATE", "TIME", "LIMIT", "NODES", "ACCEL", "CPUS", "MEM", "PRIORITY", "SUBMIT"}
	}
	if f.start || f.out.wide() {
		header = append(header, "START")
	}
	t := f.out.table(w, append(header, "NODELIST(REASON)")...)
	for i := range jobs {
		j := &jobs[i]
		row := []string{j.ID, dash(j.Name), j.User, j.Project, string(j.State), jobTime(j, now), jobNodes(j), strconv.Itoa(j.TotalAccelerators())}
		if f.out.wide() {
			row = []string{j.ID, dash(arrayName(j)), dash(j.Name), j.User, j.Project, dash(j.Partition), dash(j.QoS), string(j.State),
				jobTime(j, now), fmtDuration(j.Limit), jobNodes(j), strconv.Itoa(j.TotalAccelerators()), cpus(j.CPUs), fmtMiB(j.MemoryMiB),
				strconv.FormatInt(j.Priority, 10), fmtTime(j.Submit, now)}
		}
		if f.start || f.out.wide() {
			row = append(row, jobStart(j, now))
		}
		t.row(append(row, nodelistReason(j))...)
	}
	return t.flush()
}

func nonNilJobs(j []store.Job) []store.Job {
	if j == nil {
		return []store.Job{}
	}
	return j
}

func cpus(n int) string {
	if n <= 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// arrayName is an array element as Slurm names it: ARRAYID_INDEX.
func arrayName(j *store.Job) string {
	if j.ArrayID == "" {
		return ""
	}
	return j.ArrayID + "_" + strconv.Itoa(j.ArrayIndex)
}

// jobTime is how long a job has run: until now, or until it ended.
func jobTime(j *store.Job, now time.Time) string {
	switch {
	case j.Start <= 0:
		return "-"
	case j.State == model.JobRunning:
		return fmtDuration(now.Unix() - j.Start)
	case j.End > 0:
		return fmtDuration(j.End - j.Start)
	}
	return "-"
}

// jobNodes is how many nodes a job holds, or asks for.
func jobNodes(j *store.Job) string {
	switch {
	case len(j.Alloc) > 0:
		return strconv.Itoa(len(j.Alloc))
	case j.Nodes > 0:
		return strconv.Itoa(j.Nodes)
	}
	return "-"
}

// jobStart is when a job started, or is expected to.
func jobStart(j *store.Job, now time.Time) string {
	if j.Start > 0 {
		return fmtTime(j.Start, now)
	}
	if j.State == model.JobPending && j.EstStart > 0 {
		return fmtTime(j.EstStart, now)
	}
	return "-"
}

// nodelistReason is squeue's NODELIST(REASON): the nodes a job holds or
// held, else why it waits or how it ended.
func nodelistReason(j *store.Job) string {
	if len(j.Alloc) > 0 && j.State != model.JobPending {
		names := make([]string, len(j.Alloc))
		for i, a := range j.Alloc {
			names[i] = a.Node
		}
		return hostlist.Compress(names)
	}
	if reason := jobReason(j); reason != "" {
		return "(" + reason + ")"
	}
	return ""
}

// jobReason is why a pending job waits, or how an ended job ended.
func jobReason(j *store.Job) string {
	switch {
	case j.State == model.JobRunning:
		return ""
	case j.State != model.JobPending:
		return j.Reason
	case j.Held && !strings.Contains(j.Reason, "Held"):
		return "JobHeldUser"
	case j.Reason == "":
		return "None"
	}
	return j.Reason
}

func newShowCmd() *cobra.Command {
	var (
		c   conn
		out output
	)
	cmd := &cobra.Command{
		Use:   "show JOB",
		Short: "Show a job in detail, with its history",
		Example: `  usine show 42
  usine show 42 -o json`,
		Args:              usageArgs(cobra.ExactArgs(1), "give one job ID"),
		ValidArgsFunction: completeJobs(&c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			j, err := cl.Job(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("show: %w", err)
			}
			ev, err := cl.Events(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("show: events of job %s: %w", args[0], err)
			}
			if ev == nil {
				ev = []store.Event{}
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), jobDetail{Job: j, Events: ev})
			}
			return writeJob(cmd.OutOrStdout(), &out, &j, ev, time.Now())
		},
	}
	c.register(cmd, false)
	out.register(cmd)
	return cmd
}

// jobDetail is what usine show -o json prints.
type jobDetail struct {
	Job    store.Job     `json:"job"`
	Events []store.Event `json:"events"`
}

// writeJob prints a job's fields, then its events.
func writeJob(w io.Writer, o *output, j *store.Job, ev []store.Event, now time.Time) error {
	kv := (&output{noHeaders: true}).table(w)
	add := func(k, v string) {
		if v != "" && v != "-" {
			kv.row(k+":", v)
		}
	}
	add("Job", j.ID)
	add("Name", j.Name)
	add("Array", arrayName(j))
	add("State", string(j.State))
	add("Reason", jobReason(j))
	add("Project", j.Project)
	add("User", j.User)
	add("Partition", j.Partition)
	add("Model", j.Model)
	add("QoS", j.QoS)
	add("Request", request(j))
	add("Time limit", fmtDuration(j.Limit))
	add("Priority", strconv.FormatInt(j.Priority, 10))
	var deps []string
	for _, d := range j.Deps {
		deps = append(deps, string(d.Type)+":"+d.JobID)
	}
	add("Dependencies", strings.Join(deps, ","))
	var flags []string
	for _, fl := range []struct {
		on   bool
		name string
	}{{j.Held, "held"}, {j.Preemptible, "preemptible"}, {j.OneBlock, "one-block"}, {j.Exclusive, "exclusive"}, {j.Task.Requeue, "requeue"}} {
		if fl.on {
			flags = append(flags, fl.name)
		}
	}
	add("Flags", strings.Join(flags, ", "))
	add("Submitted", fmtFullTime(j.Submit))
	if j.Begin > 0 {
		add("Begin", fmtFullTime(j.Begin))
	}
	if j.State == model.JobPending && j.EstStart > 0 {
		add("Expected start", fmtFullTime(j.EstStart)+" ("+fmtRelative(j.EstStart, now)+")")
	}
	add("Started", fmtFullTime(j.Start))
	add("Ended", fmtFullTime(j.End))
	add("Run time", jobTime(j, now))
	if j.State != model.JobPending {
		add("Nodes", nodelistReason(j))
	}
	for _, a := range j.Alloc {
		held := []string{fmt.Sprintf("%d accelerator(s)", a.Accelerators)}
		if a.CPUs > 0 {
			held = append(held, fmt.Sprintf("%d CPUs", a.CPUs))
		}
		if a.MemoryMiB > 0 {
			held = append(held, fmtMiB(a.MemoryMiB)+" memory")
		}
		add("  "+a.Node, strings.Join(held, ", "))
	}
	if j.State.Final() {
		add("Exit code", strconv.Itoa(j.ExitCode))
		add("Signal", j.Signal)
	}
	if j.Requeues > 0 {
		add("Requeues", strconv.Itoa(j.Requeues))
	}
	if len(j.Task.Command) > 0 {
		add("Command", strings.Join(j.Task.Command, " "))
	} else {
		add("Script", fmt.Sprintf("%d lines, %d bytes", strings.Count(strings.TrimRight(j.Task.Script, "\n"), "\n")+1, len(j.Task.Script)))
	}
	add("Workdir", j.Task.WorkDir)
	add("Output", j.Task.Stdout)
	add("Error", j.Task.Stderr)
	if j.Task.Signal != "" {
		add("Signal before end", fmt.Sprintf("%s %ds before the limit", j.Task.Signal, j.Task.SignalBefore))
	}
	keys := make([]string, 0, len(j.Task.Env))
	for k := range j.Task.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		label := ""
		if i == 0 {
			label = "Environment"
		}
		kv.row(label+":", k+"="+j.Task.Env[k])
	}
	if err := kv.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := o.table(w, "TIME", "EVENT", "DETAIL")
	if !slices.ContainsFunc(ev, func(e store.Event) bool { return e.Kind == "submitted" }) {
		t.row(fmtTime(j.Submit, now), "submitted", "by "+j.User+" to project "+j.Project)
	}
	for _, e := range ev {
		t.row(fmtTime(e.Time, now), e.Kind, e.Detail)
	}
	return t.flush()
}

// request says what a job asks for, in words.
func request(j *store.Job) string {
	var s string
	switch {
	case j.Nodes > 0:
		s = fmt.Sprintf("%d node(s) × %d accelerator(s)", j.Nodes, j.AcceleratorsPerNode)
	case j.Accelerators > 0:
		s = fmt.Sprintf("%d accelerator(s), packed", j.Accelerators)
	default:
		s = "no accelerator"
	}
	per := ""
	if j.Nodes > 0 {
		per = " per node"
	}
	if j.CPUs > 0 {
		s += fmt.Sprintf(", %d CPUs%s", j.CPUs, per)
	}
	if j.MemoryMiB > 0 {
		s += fmt.Sprintf(", %s memory%s", fmtMiB(j.MemoryMiB), per)
	}
	return s
}

// actionDone says what an action did, for its report line.
var actionDone = map[string]string{"cancel": "cancelled", "hold": "held", "release": "released", "requeue": "requeued"}

func newJobActionCmd(action string) *cobra.Command {
	var (
		c      conn
		signal string
		array  string
	)
	short := map[string]string{
		"cancel":  "Cancel jobs, or send them a signal",
		"hold":    "Hold pending jobs: they wait until released",
		"release": "Release held jobs",
		"requeue": "Put jobs back in the queue",
	}[action]
	use := action + " JOB…"
	if action == "cancel" {
		use = "cancel [--signal SIG] JOB…"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

It reports on each job, and exits non-zero if any failed: with the code of
the failures when they agree (3 not found, 4 not allowed, 5 not in a state
that allows it), else 1. --array ID acts on every element of an array.`,
		Example:           "  usine " + action + " 41 42\n  usine " + action + " --array 40",
		ValidArgsFunction: completeJobs(&c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && array == "" {
				return &UsageError{fmt.Errorf("%s: give job IDs, or --array ID", action)}
			}
			var body any
			if signal != "" {
				sig, ok := slurm.SignalName(signal)
				if !ok {
					return &UsageError{fmt.Errorf("cancel --signal %q: give a signal name such as USR1 or TERM, or a number", signal)}
				}
				body = api.CancelRequest{Signal: sig}
				signal = sig
			}
			cl, err := c.client(cmd)
			if err != nil {
				return err
			}
			ids := args
			if array != "" {
				elems, err := cl.AllJobs(cmd.Context(), api.JobQuery{Array: array})
				if err != nil {
					return fmt.Errorf("%s: elements of array %s: %w", action, array, err)
				}
				if len(elems) == 0 {
					return &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("%s: array %s not found", action, array)}
				}
				for _, j := range elems {
					if actionApplies(action, &j) {
						ids = append(ids, j.ID)
					}
				}
				if len(ids) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "usine: no element of array %s to %s\n", array, action)
				}
			}
			return forEach(cmd, ids, func(ctx context.Context, id string) (string, error) {
				if _, err := cl.JobAction(ctx, id, action, body); err != nil {
					return "", err
				}
				if signal != "" {
					return "job " + id + " sent " + signal, nil
				}
				return "job " + id + " " + actionDone[action], nil
			})
		},
	}
	c.register(cmd, false)
	if action == "cancel" {
		cmd.Flags().StringVarP(&signal, "signal", "s", "", "send this signal to the running job instead of ending it (USR1, TERM, 10, …)")
	}
	cmd.Flags().StringVar(&array, "array", "", "act on the elements of this array (its job ID) that it applies to")
	return cmd
}

// actionApplies says whether an array element is one an action is for.
func actionApplies(action string, j *store.Job) bool {
	switch action {
	case "cancel":
		return !j.State.Final()
	case "hold":
		return j.State == model.JobPending && !j.Held
	case "release":
		return j.State == model.JobPending && j.Held
	}
	return j.State != model.JobPending
}

// forEach runs do on each name and reports on each; the error says how
// many failed, with their common exit code.
func forEach(cmd *cobra.Command, names []string, do func(ctx context.Context, name string) (string, error)) error {
	var failed []string
	code := -1
	for _, n := range names {
		msg, err := do(cmd.Context(), n)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "usine: %v\n", err)
			failed = append(failed, n)
			if c := ExitCode(err); code == -1 || code == c {
				code = c
			} else {
				code = ExitError
			}
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), msg)
	}
	if len(failed) == 0 {
		return nil
	}
	return &exitStatus{code: code, msg: fmt.Sprintf("%s: %d of %d failed (%s)", cmd.Name(), len(failed), len(names), strings.Join(failed, ", "))}
}

// completionTimeout bounds what a shell completion may wait for the server.
const completionTimeout = 3 * time.Second

// completeJobs completes the IDs of pending and running jobs from the
// server.
func completeJobs(c *conn) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cl, err := c.client(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		q := api.JobQuery{Limit: 1000, States: []string{string(model.JobPending), string(model.JobRunning)}}
		page, err := cl.Jobs(ctx, q)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, j := range page.Items {
			if strings.HasPrefix(j.ID, toComplete) {
				out = append(out, cobra.CompletionWithDesc(j.ID, fmt.Sprintf("%s %s (%s)", dash(j.Name), j.State, j.User)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
