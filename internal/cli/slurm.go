package cli

// The Slurm front-ends: the usine binary answers as sbatch, squeue,
// scancel, sacct, sinfo, scontrol and srun when it is invoked under those
// names (links that usine slurm install-links makes). Each parses its
// options as Slurm does, talks to the usine API with the native CLI's
// connection settings (USINE_SERVER, USINE_TOKEN, the config file usine
// login writes), and prints what Slurm prints. docs/SLURM.md says what is
// supported.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm"
	"github.com/usine-project/usine/internal/store"
)

// slurmCommands are the names the binary answers to as a Slurm command.
var slurmCommands = []string{"sbatch", "squeue", "scancel", "sacct", "sinfo", "scontrol", "srun"}

// moduleStubs are the names of the optional stand-in for environment
// modules (install-links --module-stub).
var moduleStubs = []string{"module", "ml"}

// slurmMain is the Slurm command that name (the program's base name)
// stands for, or nil.
func slurmMain(name string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch name {
	case "sbatch":
		return runSbatch
	case "squeue":
		return runSqueue
	case "scancel":
		return runScancel
	case "sacct":
		return runSacct
	case "sinfo":
		return runSinfo
	case "scontrol":
		return runScontrol
	case "srun":
		return runSrun
	case "module", "ml":
		return func(_ context.Context, args []string, _, stderr io.Writer) error {
			return runModuleStub(name, args, stderr)
		}
	}
	return nil
}

// reported is an error already printed in the command's own style; main
// only sets the exit code.
type reported struct{ code int }

func (e *reported) Error() string { return fmt.Sprintf("exit status %d", e.code) }
func (e *reported) ExitCode() int { return e.code }

// Reported says whether err has already been shown to the user (Slurm
// commands print their errors as Slurm does), so that main only exits.
func Reported(err error) bool {
	var r *reported
	return errors.As(err, &r)
}

// slurmFail prints "cmd: error: msg" and returns an error that exits 1
// (or code).
func slurmFail(stderr io.Writer, cmd string, code int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	for line := range strings.SplitSeq(strings.TrimRight(msg, "\n"), "\n") {
		fmt.Fprintf(stderr, "%s: error: %s\n", cmd, line)
	}
	return &reported{code: code}
}

// slurmClient is an API client with the native CLI's connection settings.
func slurmClient(stderr io.Writer, cmd string) (*api.Client, error) {
	e, err := (&conn{}).resolve(stderr)
	if err != nil {
		return nil, slurmFail(stderr, cmd, 1, "%v", err)
	}
	if e.token == "" {
		return nil, slurmFail(stderr, cmd, 1, "%v", noToken(e))
	}
	return newAPIClient(e.server, e.token), nil
}

// apiFail prints an API error in the command's style.
func apiFail(stderr io.Writer, cmd string, err error) error {
	if Reported(err) {
		return err
	}
	return slurmFail(stderr, cmd, 1, "%v", err) // Slurm's commands exit 1, whatever failed
}

// slurmFlags is a pflag set that reads options as Slurm's commands do and
// reports errors in their style.
func slurmFlags(cmd string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parseSlurmFlags parses args, printing usage errors as Slurm does.
func parseSlurmFlags(fs *pflag.FlagSet, cmd string, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "%s: %v\nTry \"%s --help\" for more information\n", cmd, err, cmd)
		return &reported{code: 1}
	}
	return nil
}

func newSlurmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "slurm",
		Short: "Slurm-compatible commands: sbatch, squeue, scancel, sacct, sinfo, scontrol, srun",
		Long: `The usine binary answers as sbatch, squeue, scancel, sacct, sinfo, scontrol and
srun when it is invoked under those names. usine slurm install-links DIR makes
the links; put DIR on your PATH (and on the nodes' PATH, for srun and
scontrol inside jobs). docs/SLURM.md lists what each supports.`,
	}
	var moduleStub, force bool
	install := &cobra.Command{
		Use:   "install-links DIR",
		Short: "Make sbatch, squeue, scancel, sacct, sinfo, scontrol and srun links to this binary in DIR",
		Long: `Make symbolic links named sbatch, squeue, scancel, sacct, sinfo, scontrol and
srun in DIR, each pointing to this usine binary. With --module-stub, also
module and ml: a stand-in for environment modules on nodes that have none,
which skips "module load …" with a warning (USINE_MODULES=fail makes it fail
instead). A name that exists and is not already such a link is left alone
unless --force.`,
		Example: `  usine slurm install-links ~/.local/bin
  usine slurm install-links --module-stub /opt/usine/bin`,
		Args: usageArgs(cobra.ExactArgs(1), "give the directory for the links"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return installLinks(args[0], moduleStub, force, cmd.OutOrStdout())
		},
	}
	install.Flags().BoolVar(&moduleStub, "module-stub", false, "also make module and ml, a stand-in for environment modules")
	install.Flags().BoolVar(&force, "force", false, "replace files of those names that are not links to usine")
	cmd.AddCommand(install)
	return cmd
}

// installLinks makes the Slurm names in dir point to this executable.
func installLinks(dir string, moduleStub, force bool, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("install-links: find this executable: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("install-links: find this executable: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install-links: %w", err)
	}
	names := slices.Clone(slurmCommands)
	if moduleStub {
		names = append(names, moduleStubs...)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Lstat(p); err == nil {
			target, _ := os.Readlink(p)
			switch {
			case target == exe:
				continue
			case fi.Mode()&os.ModeSymlink == 0 && !force:
				return fmt.Errorf("install-links: %s exists and is not a link; remove it or give --force", p)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("install-links: replace %s: %w", p, err)
			}
		}
		if err := os.Symlink(exe, p); err != nil {
			return fmt.Errorf("install-links: %w", err)
		}
	}
	fmt.Fprintf(stdout, "Linked %s in %s to %s\n", strings.Join(names, ", "), dir, exe)
	return nil
}

// runModuleStub stands in for environment modules where a node has none:
// it says what it skips, and fails when USINE_MODULES=fail.
func runModuleStub(name string, args []string, stderr io.Writer) error {
	what := strings.TrimSpace(name + " " + strings.Join(args, " "))
	if strings.EqualFold(os.Getenv("USINE_MODULES"), "fail") {
		fmt.Fprintf(stderr, "%s: error: this node has no environment modules; %q cannot run (USINE_MODULES=fail). Put the software on PATH instead\n", name, what)
		return &reported{code: 1}
	}
	fmt.Fprintf(stderr, "%s: warning: this node has no environment modules; skipped %q\n", name, what)
	return nil
}

// jobInfo is a usine job as the Slurm printers take it.
func jobInfo(j *store.Job) slurm.JobInfo {
	ji := slurm.JobInfo{
		ID: j.ID, Name: j.Name, User: j.User, Account: j.Project, Partition: j.Partition, QoS: cmp.Or(j.QoS, "normal"),
		State: j.State, Reason: j.Reason, NumNodes: j.Nodes, Model: j.Model, Limit: j.Limit,
		Submit: unix(j.Submit), Start: unix(j.Start), End: unix(j.End), ExitCode: j.ExitCode,
		Signal: slurm.SignalNumber(j.Signal), Priority: j.Priority, Deps: j.Deps,
		WorkDir: j.Task.WorkDir, Stdout: j.Task.Stdout, Stderr: j.Task.Stderr, Requeue: j.Task.Requeue,
		Accelerators: j.TotalAccelerators(), AcceleratorsPerNode: j.AcceleratorsPerNode,
	}
	if ji.Partition == "" {
		// Submitted without -p: any partition may run it. Never blank, so
		// that scripts splitting squeue's columns on spaces keep their count.
		ji.Partition = "(any)"
	}
	if j.ArrayID != "" {
		ji.ArrayJobID, ji.ArrayTaskID = j.ArrayID, j.ArrayIndex
	}
	if j.State.Final() && j.State != model.JobCompleted {
		ji.Reason = slurmEndReason(j)
	}
	if j.State == model.JobPending && j.EstStart > 0 {
		ji.Start = unix(j.EstStart)
	}
	if j.State == model.JobPending && j.Held && ji.Reason == "" {
		ji.Reason = "JobHeldUser"
	}
	for _, a := range j.Alloc {
		ji.Nodes = append(ji.Nodes, a.Node)
		ji.CPUs += a.CPUs
		ji.MemoryMiB += a.MemoryMiB
	}
	if len(j.Alloc) == 0 {
		n := max(j.Nodes, 1)
		ji.CPUs = j.CPUs
		ji.MemoryMiB = j.MemoryMiB
		if j.Nodes > 0 {
			ji.CPUs, ji.MemoryMiB = j.CPUs*n, j.MemoryMiB*int64(n)
		}
	}
	ji.CPUs = max(ji.CPUs, len(j.Alloc), j.Nodes, 1) // Slurm allocates a CPU per node at least
	if j.Task.Script != "" {
		ji.Command = cmp.Or(j.Name, "(script)")
	} else {
		ji.Command = strings.Join(j.Task.Command, " ")
	}
	if j.Task.BatchHost && (j.State == model.JobRunning || j.State.Final()) && !ji.Start.IsZero() {
		st := slurm.StepInfo{ID: "batch", Name: "batch", State: j.State, Start: ji.Start, End: ji.End,
			ExitCode: j.ExitCode, Signal: ji.Signal, CPUs: ji.CPUs}
		if len(ji.Nodes) > 0 {
			st.Nodes = ji.Nodes[:1]
			if len(j.Alloc) > 0 {
				st.GPUs, st.CPUs = j.Alloc[0].Accelerators, max(j.Alloc[0].CPUs, 1)
			}
		}
		ji.Steps = []slurm.StepInfo{st}
	}
	for _, s := range j.Steps { // srun's steps of this run, as their nodes reported them
		if s.Epoch != j.Epoch {
			continue
		}
		state := model.JobCompleted
		if s.ExitCode != 0 || s.Signal != "" {
			state = model.JobFailed
		}
		ji.Steps = append(ji.Steps, slurm.StepInfo{ID: s.ID, Name: s.Name, State: state, Start: time.Unix(s.Start, 0),
			End: time.Unix(s.End, 0), ExitCode: max(s.ExitCode, 0), Signal: slurm.SignalNumber(s.Signal), CPUs: s.Tasks, Nodes: s.Nodes})
	}
	return ji
}

// slurmEndReason is why an ended job ended, in Slurm's words where Slurm
// has them.
func slurmEndReason(j *store.Job) string {
	switch {
	case j.State == model.JobTimeout:
		return "TimeLimit"
	case j.State == model.JobCancelled:
		return "None"
	case j.Reason == "NodeFail":
		return "NodeFail"
	}
	return "NonZeroExitCode"
}

func unix(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

// sortSqueue orders jobs as squeue does by default: running before
// pending, pending by priority, then by id.
func sortSqueue(jobs []store.Job) {
	rank := func(s model.JobState) int {
		if s == model.JobRunning {
			return 0
		}
		return 1
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		x, y := &jobs[a], &jobs[b]
		if rank(x.State) != rank(y.State) {
			return rank(x.State) < rank(y.State)
		}
		if x.State == model.JobPending && x.Priority != y.Priority {
			return x.Priority > y.Priority
		}
		return idLess(x.ID, y.ID)
	})
}

// idLess orders job ids numerically when both are numbers.
func idLess(a, b string) bool {
	if len(a) != len(b) && strings.Trim(a, "0123456789") == "" && strings.Trim(b, "0123456789") == "" {
		return len(a) < len(b)
	}
	return a < b
}

// whoami is the name of the token's user.
func whoami(ctx context.Context, c *api.Client) (string, error) {
	w, err := c.Whoami(ctx)
	if err != nil {
		return "", err
	}
	return w.User, nil
}

// expandJobIDs turns Slurm job ids (123, 123_4, an array's id for all its
// elements) into usine job ids.
func expandJobIDs(ctx context.Context, c *api.Client, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		arr, idx, isElem := strings.Cut(id, "_")
		elems, err := c.AllJobs(ctx, api.JobQuery{Array: arr})
		if err != nil {
			return nil, err
		}
		switch {
		case len(elems) == 0:
			out = append(out, arr)
		case !isElem:
			for _, e := range elems {
				out = append(out, e.ID)
			}
			if !slices.ContainsFunc(elems, func(e store.Job) bool { return e.ID == arr }) {
				out = append(out, arr)
			}
		default:
			found := false
			for _, e := range elems {
				if fmt.Sprint(e.ArrayIndex) == idx {
					out, found = append(out, e.ID), true
				}
			}
			if !found {
				return nil, fmt.Errorf("Invalid job id specified: array %s has no task %s", arr, idx)
			}
		}
	}
	return out, nil
}
