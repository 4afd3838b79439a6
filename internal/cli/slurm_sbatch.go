package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/slurm"
	"github.com/usine-project/usine/internal/slurm/hostlist"
	"github.com/usine-project/usine/internal/store"
)

// slurmVersion is what the Slurm commands say with --version: the Slurm
// release whose behaviour they follow.
const slurmVersion = "slurm 24.05.0 (usine)"

const sbatchUsage = `Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]

usine's sbatch reads #SBATCH directives and the options below as Slurm's
does; docs/SLURM.md lists every option and what usine does with it.
  -A, --account=name     project to charge      -J, --job-name=name
  -p, --partition=name   partition              -q, --qos=qos
  -N, --nodes=N          nodes of a gang        -n, --ntasks=N
  -c, --cpus-per-task=N  --ntasks-per-node=N    --mem=size, --mem-per-cpu, --mem-per-gpu
  -G, --gpus=[type:]N    --gpus-per-node        --gpus-per-task, --gres=gpu[:type]:N
  -t, --time=time        -o, --output           -e, --error, -D, --chdir
  -a, --array=indexes    -d, --dependency       --export, --exclusive, -C, --constraint
  --switches, --signal, --requeue, --hold, --begin, --parsable, --wait, --test-only
`

// stdinFile is where sbatch reads a script given on standard input; a
// variable so that tests can hand one in.
type sbatchEnv struct {
	stdin  io.Reader
	getenv func() map[string]string
	now    func() time.Time
	// streamOutput submits for srun outside a job: the output is kept for
	// srun to stream, in no file of the job's (model.Task.StreamOutput).
	streamOutput bool
}

func runSbatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return sbatch(ctx, args, stdout, stderr, sbatchEnv{stdin: os.Stdin, getenv: environMap, now: time.Now})
}

func environMap() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

func sbatch(ctx context.Context, args []string, stdout, stderr io.Writer, se sbatchEnv) error {
	env := se.getenv()
	words := append(slurm.EnvOptions(env), args...)
	// A first pass finds the script's path (or --wrap, --help) in the
	// options; the second reads the script's directives.
	probe, _, err := slurm.ParseBatch(nil, words) // with --wrap, or --help
	if e := (*slurm.Error)(nil); errors.As(err, &e) && e.Msg == "error: Batch script is empty!" {
		probe, _, err = slurm.ParseBatch([]byte("#!/bin/sh\n"), words)
	}
	if err != nil {
		return sbatchError(stderr, err)
	}
	switch {
	case probe.Help || probe.Usage:
		fmt.Fprint(stdout, sbatchUsage)
		return nil
	case probe.Version:
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	}
	var script []byte
	if probe.Wrap == "" {
		switch {
		case probe.ScriptPath == "" || probe.ScriptPath == "-":
			script, err = io.ReadAll(io.LimitReader(se.stdin, 16<<20))
		default:
			script, err = os.ReadFile(probe.ScriptPath)
		}
		if errors.Is(err, os.ErrNotExist) {
			return slurmFail(stderr, "sbatch", 1, "Unable to open file %s", probe.ScriptPath)
		}
		if err != nil {
			return slurmFail(stderr, "sbatch", 1, "Unable to read the batch script: %v", err)
		}
	}
	r, warnings, err := slurm.ParseBatch(script, words)
	if err != nil {
		return sbatchError(stderr, err)
	}
	if !r.Quiet {
		for _, w := range warnings {
			fmt.Fprintln(stderr, w)
		}
	}
	r.Now = se.now()
	if r.SubmitDir, err = os.Getwd(); err != nil {
		return slurmFail(stderr, "sbatch", 1, "cannot find the current directory: %v", err)
	}
	r.SubmitHost, _ = os.Hostname()
	r.SubmitEnv = submitEnv(env)
	job, task, err := r.Job()
	if err != nil {
		return slurmFail(stderr, "sbatch", 1, "%s", strings.TrimPrefix(err.Error(), "map sbatch request to a job: "))
	}
	task.BatchHost = true
	if se.streamOutput {
		task.Stdout, task.Stderr, task.StreamOutput = "", "", true
	}
	spec := api.JobSpec{
		Name: job.Name, Project: job.Project, Partition: job.Partition, Model: job.Model, Nodes: job.Nodes,
		AcceleratorsPerNode: job.AcceleratorsPerNode, Accelerators: job.Accelerators, CPUs: job.CPUs,
		MemoryMiB: job.MemoryMiB, Limit: job.Limit, QoS: job.QoS, Deps: job.Deps, OneBlock: job.OneBlock,
		Exclusive: job.Exclusive, Held: job.Held, Begin: job.Begin, Task: task,
	}
	if r.Array != nil {
		spec.Array = r.Array.Spec // with its %N throttle, which the scheduler keeps
		lo, hi, n := r.Array.Bounds()
		for k, v := range map[string]int{"SLURM_ARRAY_TASK_MIN": lo, "SLURM_ARRAY_TASK_MAX": hi, "SLURM_ARRAY_TASK_COUNT": n, "SLURM_ARRAY_TASK_STEP": r.Array.Step()} {
			spec.Task.Env[k] = strconv.Itoa(v)
		}
	}

	c, err := slurmClient(stderr, "sbatch")
	if err != nil {
		return err
	}
	if spec.Project == "" {
		if spec.Project, err = sbatchAccount(ctx, c); err != nil {
			return slurmFail(stderr, "sbatch", 1, "%v; give -A/--account", strings.TrimSuffix(err.Error(), ": give -p PROJECT, or ask a project's manager to add you"))
		}
	}
	if r.Singleton {
		me, err := whoami(ctx, c)
		if err != nil {
			return apiFail(stderr, "sbatch", err)
		}
		same, err := c.AllJobs(ctx, api.JobQuery{User: me, Name: spec.Name, States: []string{string(model.JobPending), string(model.JobRunning)}})
		if err != nil {
			return apiFail(stderr, "sbatch", err)
		}
		for _, j := range same {
			spec.Deps = append(spec.Deps, model.Dependency{Type: model.AfterAny, JobID: j.ID})
		}
	}
	if spec.Deps, err = resolveDeps(ctx, c, spec.Deps); err != nil {
		return slurmFail(stderr, "sbatch", 1, "Batch job submission failed: Job dependency problem: %s", strings.TrimPrefix(err.Error(), "submit: "))
	}
	if r.TestOnly {
		return sbatchTestOnly(ctx, c, spec, stderr)
	}
	jobs, err := c.Submit(ctx, spec)
	if err != nil {
		return slurmFail(stderr, "sbatch", ExitCode(err), "Batch job submission failed: %v", err)
	}
	if len(jobs) == 0 {
		return slurmFail(stderr, "sbatch", 1, "Batch job submission failed: the server made no job")
	}
	id := jobs[0].ID
	if jobs[0].ArrayID != "" {
		id = jobs[0].ArrayID
	}
	if r.Parsable {
		fmt.Fprintln(stdout, id)
	} else {
		fmt.Fprintf(stdout, "Submitted batch job %s\n", id)
	}
	if !r.Wait {
		return nil
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	if err := waitJobs(ctx, c, ids, io.Discard); err != nil {
		var st *exitStatus
		if errors.As(err, &st) {
			return &reported{code: st.code}
		}
		return slurmFail(stderr, "sbatch", 1, "%v", err)
	}
	return nil
}

// sbatchError prints a parse error as sbatch does; its text already
// starts with "sbatch: ".
func sbatchError(stderr io.Writer, err error) error {
	var e *slurm.Error
	if errors.As(err, &e) {
		fmt.Fprintln(stderr, e.Error())
		return &reported{code: 1}
	}
	return slurmFail(stderr, "sbatch", 1, "%v", err)
}

// sbatchTestOnly says when and where the job would start, as sbatch
// --test-only does, and submits nothing.
func sbatchTestOnly(ctx context.Context, c *api.Client, spec api.JobSpec, stderr io.Writer) error {
	est, err := c.Estimate(ctx, spec)
	if err != nil {
		return slurmFail(stderr, "sbatch", ExitCode(err), "Job submit/allocate failed: %v", err)
	}
	when := time.Now()
	if !est.Start && est.EstStart > 0 {
		when = time.Unix(est.EstStart, 0)
	}
	if !est.Start && est.EstStart == 0 {
		fmt.Fprintf(stderr, "sbatch: Job would wait (%s); no start time can be estimated yet\n", cmp.Or(est.Reason, "unknown"))
		return nil
	}
	procs := spec.CPUs
	if spec.Nodes > 0 {
		procs *= spec.Nodes
	}
	part := cmp.Or(spec.Partition, "(any)")
	fmt.Fprintf(stderr, "sbatch: Job 0 to start at %s using %d processors on nodes %s in partition %s\n",
		slurm.FormatTime(when, time.Local, "Unknown"), max(procs, 1), hostlist.Compress(est.Nodes), part)
	return nil
}

// slurmStates reads squeue's and scancel's -t: compact codes or names,
// comma-separated, into usine's states; "all" is every state.
func slurmStates(v string) ([]string, error) {
	byName := map[string]model.JobState{
		"PD": model.JobPending, "PENDING": model.JobPending, "R": model.JobRunning, "RUNNING": model.JobRunning,
		"CD": model.JobCompleted, "COMPLETED": model.JobCompleted, "F": model.JobFailed, "FAILED": model.JobFailed,
		"CA": model.JobCancelled, "CANCELLED": model.JobCancelled, "TO": model.JobTimeout, "TIMEOUT": model.JobTimeout,
	}
	var out []string
	for _, s := range splitComma(v) {
		if strings.EqualFold(s, "all") {
			return nil, nil
		}
		st, ok := byName[strings.ToUpper(s)]
		if !ok {
			return nil, fmt.Errorf("Invalid job state specified: %s", s)
		}
		if !slices.Contains(out, string(st)) {
			out = append(out, string(st))
		}
	}
	return out, nil
}

// sbatchAccount is the project of a job that names none: the user's only
// project, else the project named "default" when the user is a member of
// it (what Slurm's DefaultAccount is to sbatch).
func sbatchAccount(ctx context.Context, c *api.Client) (string, error) {
	p, err := defaultProject(ctx, c)
	if err == nil {
		return p, nil
	}
	who, werr := c.Whoami(ctx)
	if werr != nil {
		return "", err
	}
	for _, m := range who.Roles {
		if m.Project == "default" && (m.Role == store.RoleMember || m.Role == store.RoleManager) {
			return "default", nil
		}
	}
	return "", err
}

// nodeVars are variables that describe one node or one run of a job: a
// job submitted from inside another must not inherit them (the node and
// launch set them afresh), nor its steps' key.
var nodeVars = []string{"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
	"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "NNODES",
	"JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURMD_NODENAME"}

// submitEnv is what --export may pass of the submitter's environment:
// all of it but the variables of the node and job it is submitted from
// (usine's own, but for how to reach the server).
func submitEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if slices.Contains(nodeVars, k) || (strings.HasPrefix(k, "USINE_") && k != "USINE_SERVER" && k != "USINE_TOKEN") {
			continue
		}
		out[k] = v
	}
	return out
}
