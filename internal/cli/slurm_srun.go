package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/slurm"
	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// srunIgnored are srun options that mean nothing here: accepted, with a
// one-line warning saying why.
var srunIgnored = map[string]string{
	"cpu-bind": "the node agent binds CPUs per job", "gpu-bind": "each task sees the accelerators of its node's share of the job",
	"mem-bind": "the node agent binds memory per job", "hint": "the node agent binds CPUs per job",
	"distribution": "tasks are laid out in block order", "mpi": "usine starts the tasks itself; MPI libraries find each other through the Slurm variables",
	"accel-bind": "each task sees the accelerators of its node's share of the job", "network": "usine does not configure the network per step",
	"cpu-freq": "usine does not set CPU frequencies", "gpu-freq": "usine does not set accelerator frequencies",
	"gres": "a step uses the job's accelerators", "gpus": "a step uses the job's accelerators", "gpus-per-node": "a step uses the job's accelerators",
	"mem": "a step uses the job's memory", "mem-per-cpu": "a step uses the job's memory",
	"mem-per-gpu": "a step uses the job's memory", "cpus-per-gpu": "a step uses the job's CPUs", "time": "a step lives as long as the job",
	"job-name": "a step has no name of its own", "output": "task output goes to srun's standard output", "error": "task errors go to srun's standard error",
	"input": "tasks read no standard input", "partition": "a step runs in its job's allocation", "account": "a step runs in its job's allocation",
	"qos": "a step runs in its job's allocation", "constraint": "a step runs in its job's allocation", "jobid": "srun runs in the job it is called from",
	"wait": "the step ends when its last task does",
}

// srunBoolIgnored are ignored srun options that take no value.
var srunBoolIgnored = map[string]string{
	"unbuffered": "output is passed on as it comes", "exclusive": "steps share their job's allocation",
	"overlap": "steps share their job's allocation", "exact": "steps share their job's allocation",
	"quiet": "", "verbose": "", "no-kill": "a step ends with its job",
}

func runSrun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := slurmFlags("srun")
	fs.SetInterspersed(false)
	// Older scripts spell some options with '_' (--cpu_bind).
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
	nodes := fs.StringP("nodes", "N", "", "nodes of the step")
	ntasks := fs.IntP("ntasks", "n", 0, "tasks of the step")
	perNode := fs.Int("ntasks-per-node", 0, "tasks on each node")
	cpt := fs.IntP("cpus-per-task", "c", 0, "CPUs of each task")
	gpt := fs.Int("gpus-per-task", 0, "accelerators of each task, of its node's share of the job: the LOCALID-th N")
	label := fs.BoolP("label", "l", false, "prefix each line with its task's rank")
	chdir := fs.StringP("chdir", "D", "", "the tasks' working directory")
	export := fs.String("export", "ALL", "variables passed to the tasks")
	killBad := fs.StringP("kill-on-bad-exit", "K", "", "end the step when a task fails")
	fs.Lookup("kill-on-bad-exit").NoOptDefVal = "1"
	nodelist := fs.StringP("nodelist", "w", "", "the step's nodes")
	version := fs.BoolP("version", "V", false, "version")
	help := fs.Bool("help", false, "help")
	pty := fs.Bool("pty", false, "refused")
	for name := range srunIgnored {
		short := ""
		switch name {
		case "job-name":
			short = "J"
		case "output":
			short = "o"
		case "error":
			short = "e"
		case "input":
			short = "i"
		case "distribution":
			short = "m"
		case "gpus":
			short = "G"
		case "time":
			short = "t"
		case "partition":
			short = "p"
		case "account":
			short = "A"
		case "qos":
			short = "q"
		case "constraint":
			short = "C"
		case "wait":
			short = "W"
		}
		fs.StringP(name, short, "", srunIgnored[name])
	}
	for name := range srunBoolIgnored {
		short := map[string]string{"unbuffered": "u", "quiet": "Q", "verbose": "v", "no-kill": "k"}[name]
		fs.BoolP(name, short, false, srunBoolIgnored[name])
	}
	if err := parseSlurmFlags(fs, "srun", args, stderr); err != nil {
		return err
	}
	switch {
	case *version:
		fmt.Fprintln(stdout, slurmVersion)
		return nil
	case *help:
		fmt.Fprintln(stdout, "Usage: srun [-N nodes] [-n ntasks] [--ntasks-per-node=N] [-c cpus] [-l] [--export=...] executable [args...]")
		fmt.Fprintln(stdout, "Inside a batch job it starts a step in the job's allocation; outside any job it runs the step in a job of its own,")
		fmt.Fprintln(stdout, "taking -A, -p, -q, -t, -J, -G, --gpus-per-node, --gres, --mem, -C and --exclusive as sbatch does.")
		return nil
	case *pty:
		return slurmFail(stderr, "srun", 1, "--pty is not supported by usine: there are no interactive steps")
	case len(fs.Args()) == 0:
		return slurmFail(stderr, "srun", 1, "No executable given; usage: srun [options] executable [args...]")
	}
	env := environMap()
	outside := env["SLURM_JOB_ID"] == ""
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range srunIgnored {
			if !yield(k) {
				return
			}
		}
		for k := range srunBoolIgnored {
			if !yield(k) {
				return
			}
		}
	}) {
		if fs.Changed(name) && !(outside && slices.Contains(srunJobOptions, name)) {
			if why := cmp.Or(srunIgnored[name], srunBoolIgnored[name]); why != "" {
				fmt.Fprintf(stderr, "srun: warning: --%s is ignored: %s\n", name, why)
			}
		}
	}

	if outside {
		return srunJob(ctx, fs, fs.Args(), env, stdout, stderr)
	}
	key, urls := env[agent.EnvStepKey], splitComma(env[agent.EnvStepURLs])
	all := splitComma(env[agent.EnvStepNodes])
	epoch, epochErr := strconv.ParseInt(env[agent.EnvStepEpoch], 10, 64)
	job := env["SLURM_JOB_ID"]
	if key == "" || job == "" || len(all) == 0 || len(urls) != len(all) || epochErr != nil {
		return slurmFail(stderr, "srun", 1, "job %s was not submitted by sbatch (%s is not set): srun starts steps only in batch jobs, or runs its own job when called outside any job", job, agent.EnvStepKey)
	}

	// The step's nodes: -w names them, else the first -N of the job's.
	idx := make([]int, len(all))
	for i := range idx {
		idx[i] = i
	}
	if *nodelist != "" {
		names, err := hostlist.Expand(*nodelist)
		if err != nil {
			return slurmFail(stderr, "srun", 1, "Invalid node list %s: %v", *nodelist, err)
		}
		idx = idx[:0]
		for _, n := range names {
			i := slices.Index(all, n)
			if i < 0 {
				return slurmFail(stderr, "srun", 1, "Requested node configuration is not available: %s is not in the job's allocation %s", n, hostlist.Compress(all))
			}
			idx = append(idx, i)
		}
		slices.Sort(idx)
	}
	nn := len(idx)
	if *nodes != "" {
		lo, _, _ := strings.Cut(*nodes, "-")
		n, err := strconv.Atoi(lo)
		if err != nil || n <= 0 {
			return slurmFail(stderr, "srun", 1, "Invalid node count specification: %s", *nodes)
		}
		if n > len(idx) {
			return slurmFail(stderr, "srun", 1, "Only allocated %d nodes asked for %d", len(idx), n)
		}
		nn = n
	} else if *ntasks > 0 && *ntasks < nn && *perNode == 0 {
		nn = *ntasks
	}
	idx = idx[:nn]
	n := *ntasks
	switch {
	case n > 0:
	case *perNode > 0:
		n = *perNode * nn
	case *nodes != "" || *nodelist != "":
		n = nn * max(atoiOr(env["SLURM_NTASKS_PER_NODE"], 1), 1)
	default:
		n = max(atoiOr(env["SLURM_NTASKS"], nn), nn)
	}
	var layout []int
	if *perNode > 0 {
		if n > *perNode*nn {
			return slurmFail(stderr, "srun", 1, "Requested node configuration is not available: %d tasks do not fit on %d nodes with --ntasks-per-node=%d", n, nn, *perNode)
		}
		left := n
		for range nn {
			k := min(*perNode, left)
			layout = append(layout, k)
			left -= k
		}
	} else {
		layout = slurm.Distribute(n, nn)
	}
	cpus := *cpt
	if cpus == 0 {
		cpus = atoiOr(env["SLURM_CPUS_PER_TASK"], 0)
	}

	exp, err := slurm.ParseExport(*export)
	if err != nil {
		return slurmFail(stderr, "srun", 1, "--export: %v", err)
	}
	base := map[string]string{}
	for k, v := range env {
		if !exp.None || strings.HasPrefix(k, "SLURM_") || strings.HasPrefix(k, "USINE_") || slices.Contains(exp.Names, k) {
			base[k] = v
		}
	}
	for _, kv := range exp.Set {
		base[kv.Name] = kv.Value
	}
	stepNodes := make([]string, nn)
	for i, j := range idx {
		stepNodes[i] = all[j]
	}
	alloc := slurm.Alloc{JobID: job, Name: env["SLURM_JOB_NAME"], Nodes: stepNodes, TasksPerNode: layout, CPUsPerTask: cpus}
	dir := *chdir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	argv := fs.Args()

	out := &srunOutput{w: stdout, label: *label, partial: map[int][]byte{}}
	errOut := &srunOutput{w: stderr, label: *label, partial: map[int][]byte{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second}}
	type result struct {
		node   string
		task   int
		exit   int
		signal string
		err    string
	}
	var (
		mu      sync.Mutex
		results []result
		failure string
	)
	killOnBad := *killBad != "" && *killBad != "0"
	post := func(i int, step string, assign bool, onStep func(string)) {
		j := idx[i]
		var tasks []agent.StepTask
		first := 0
		for k := range i {
			first += layout[k]
		}
		for local := range layout[i] {
			procID := first + local
			te := slurm.TaskEnv(alloc, procID, local, i)
			e := make(map[string]string, len(base)+len(te)+16)
			for k, v := range base {
				e[k] = v
			}
			for _, k := range []string{"SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_GTIDS", "SLURM_STEP_NODELIST",
				"SLURM_STEP_NUM_NODES", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS", "SLURM_NPROCS",
				"SLURM_NNODES", "SLURM_NODELIST", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_CPUS_PER_TASK"} {
				if v, ok := te[k]; ok {
					e[k] = v
				} else {
					delete(e, k)
				}
			}
			if *gpt > 0 { // the agent binds each task to its own (agent.taskDevices)
				e["SLURM_GPUS_PER_TASK"] = strconv.Itoa(*gpt)
			}
			rank, lr := strconv.Itoa(procID), strconv.Itoa(local)
			e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"] = rank, lr, strconv.Itoa(n), strconv.Itoa(layout[i])
			e["NODE_RANK"], e["GROUP_RANK"], e["USINE_NODE_RANK"] = strconv.Itoa(j), strconv.Itoa(j), strconv.Itoa(j)
			e["JAX_PROCESS_ID"], e["JAX_NUM_PROCESSES"] = rank, strconv.Itoa(n)
			tasks = append(tasks, agent.StepTask{ProcID: procID, Env: e})
		}
		req := agent.StepRequest{Epoch: epoch, Step: step, AssignStep: assign, Argv: argv, Dir: dir, Tasks: tasks}
		ended := map[int]bool{}
		err := agent.PostStep(ctx, hc, urls[j], job, key, req, func(ev agent.StepEvent) {
			switch {
			case ev.Step != "":
				onStep(ev.Step)
			case len(ev.Out) > 0:
				out.write(ev.Task, ev.Out)
			case len(ev.Err) > 0:
				errOut.write(ev.Task, ev.Err)
			case ev.End:
				out.flush(ev.Task)
				errOut.flush(ev.Task)
				ended[ev.Task] = true
				mu.Lock()
				results = append(results, result{node: all[j], task: ev.Task, exit: ev.Exit, signal: ev.Signal, err: ev.Error})
				mu.Unlock()
				if killOnBad && (ev.Exit != 0 || ev.Signal != "" || ev.Error != "") {
					cancel()
				}
			}
		})
		if err != nil && ctx.Err() == nil {
			mu.Lock()
			failure = cmp.Or(failure, fmt.Sprintf("%s: cannot run the step's tasks: %v", all[j], err))
			mu.Unlock()
			cancel()
		}
		for _, t := range tasks {
			if !ended[t.ProcID] {
				mu.Lock()
				results = append(results, result{node: all[j], task: t.ProcID, exit: -1, signal: "KILL"})
				mu.Unlock()
			}
		}
	}
	// The first node assigns the step's id; the others start once it has.
	stepID := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		once := sync.Once{}
		post(0, "", true, func(s string) { once.Do(func() { stepID <- s }) })
		once.Do(func() { stepID <- "" })
	}()
	step := ""
	select {
	case step = <-stepID:
	case <-ctx.Done():
	}
	for i := 1; i < nn && ctx.Err() == nil; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); post(i, step, false, func(string) {}) }()
	}
	wg.Wait()
	out.flushAll()
	errOut.flushAll()

	if failure != "" {
		fmt.Fprintf(stderr, "srun: error: %s\n", failure)
	}
	worst := 0
	slices.SortFunc(results, func(a, b result) int { return a.task - b.task })
	for _, r := range results {
		code := r.exit
		switch {
		case r.err != "":
			fmt.Fprintf(stderr, "srun: error: %s: task %d: %s\n", r.node, r.task, r.err)
			code = max(code, 2)
		case r.signal != "":
			sig, _ := slurm.SignalName(r.signal)
			num := slurm.SignalNumber(sig)
			fmt.Fprintf(stderr, "srun: error: %s: task %d: %s\n", r.node, r.task, signalWords(num))
			code = 128 + num
		case r.exit != 0:
			fmt.Fprintf(stderr, "srun: error: %s: task %d: Exited with exit code %d\n", r.node, r.task, r.exit)
		}
		worst = max(worst, code)
	}
	if failure != "" {
		worst = max(worst, 1)
	}
	if worst != 0 {
		return &reported{code: worst}
	}
	return nil
}

// signalWords is how srun says a task died of a signal.
func signalWords(n int) string {
	switch syscall.Signal(n) {
	case syscall.SIGKILL:
		return "Killed"
	case syscall.SIGTERM:
		return "Terminated"
	case syscall.SIGSEGV:
		return "Segmentation fault"
	case syscall.SIGABRT:
		return "Aborted"
	}
	return "Killed by signal " + strconv.Itoa(n)
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// srunOutput writes the tasks' output; with label, whole lines prefixed
// by the task's rank ("3: ").
type srunOutput struct {
	mu      sync.Mutex
	w       io.Writer
	label   bool
	partial map[int][]byte
}

func (o *srunOutput) write(task int, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.label {
		_, _ = o.w.Write(p)
		return
	}
	buf := append(o.partial[task], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(o.w, "%d: %s\n", task, buf[:i])
		buf = buf[i+1:]
	}
	o.partial[task] = slices.Clone(buf)
}

func (o *srunOutput) flush(task int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.partial[task]; len(b) > 0 {
		fmt.Fprintf(o.w, "%d: %s\n", task, b)
	}
	delete(o.partial, task)
}

func (o *srunOutput) flushAll() {
	o.mu.Lock()
	tasks := make([]int, 0, len(o.partial))
	for t := range o.partial {
		tasks = append(tasks, t)
	}
	o.mu.Unlock()
	for _, t := range tasks {
		o.flush(t)
	}
}
