package slurm

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/model"
)

// shape is the resources a request comes to in usine's terms.
type shape struct {
	nodes        int   // > 0: a gang; 0: packed anywhere
	perNode      int   // accelerators on each node of a gang
	total        int   // accelerators of a packed job
	cpus         int   // per node of a gang, in total when packed; 0 = not asked
	memMiB       int64 // likewise
	ntasks       int   // tasks in the job
	tasksPerNode int   // the most tasks on one node
}

// accelerators is how many accelerators each unit (a gang's node, or the
// whole packed job) holds.
func (sh *shape) accelerators() int {
	if sh.nodes > 0 {
		return sh.perNode
	}
	return sh.total
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// shape works out nodes, tasks, accelerators, CPUs and memory, and says
// where options contradict each other.
func (r *Request) shape() (shape, error) {
	var sh shape
	nodes := r.NodesMin
	if nodes == 0 && r.Ntasks > 0 && r.NtasksPerNode > 0 {
		// Slurm derives the node count from the tasks.
		nodes = ceilDiv(r.Ntasks, r.NtasksPerNode)
	}
	sh.nodes = nodes
	if nodes > 0 {
		sh.tasksPerNode = max(r.NtasksPerNode, 1)
		sh.ntasks = nodes * sh.tasksPerNode
		if r.Ntasks > 0 {
			if r.NtasksPerNode > 0 && r.Ntasks > nodes*r.NtasksPerNode {
				return sh, fmt.Errorf("--ntasks=%d does not fit on %d nodes with --ntasks-per-node=%d; raise --nodes or --ntasks-per-node", r.Ntasks, nodes, r.NtasksPerNode)
			}
			sh.ntasks, sh.tasksPerNode = r.Ntasks, ceilDiv(r.Ntasks, nodes)
		}
	} else {
		sh.ntasks = 1
		if r.Ntasks > 0 {
			sh.ntasks = r.Ntasks
		} else if r.NtasksPerNode > 0 {
			sh.ntasks = r.NtasksPerNode
		}
		sh.tasksPerNode = sh.ntasks
	}

	// Every GPU option given must come to the same count.
	type claim struct {
		what string
		n    int
	}
	var claims []claim
	add := func(what string, n int) { claims = append(claims, claim{what, n}) }
	if nodes > 0 {
		if g := r.GPUsPerNode.Count; g > 0 {
			add(fmt.Sprintf("--gpus-per-node=%d", g), g)
		}
		if g := r.GresGPUs.Count; g > 0 {
			add(fmt.Sprintf("--gres=gpu:%d", g), g)
		}
		if g := r.GPUs.Count; g > 0 {
			if g%nodes != 0 {
				return sh, fmt.Errorf("--gpus=%d cannot be spread evenly over %d nodes; usine gives each node of a job the same count: give --gpus-per-node", g, nodes)
			}
			add(fmt.Sprintf("--gpus=%d over %d nodes", g, nodes), g/nodes)
		}
		if g := r.GPUsPerTask.Count; g > 0 {
			add(fmt.Sprintf("--gpus-per-task=%d with %d tasks per node", g, sh.tasksPerNode), g*sh.tasksPerNode)
		}
	} else {
		if g := r.GPUs.Count; g > 0 {
			add(fmt.Sprintf("--gpus=%d", g), g)
		}
		if g := r.GPUsPerNode.Count; g > 0 {
			add(fmt.Sprintf("--gpus-per-node=%d", g), g)
		}
		if g := r.GresGPUs.Count; g > 0 {
			add(fmt.Sprintf("--gres=gpu:%d", g), g)
		}
		if g := r.GPUsPerTask.Count; g > 0 {
			add(fmt.Sprintf("--gpus-per-task=%d with %d tasks", g, sh.ntasks), g*sh.ntasks)
		}
	}
	gpus := 0
	for i, c := range claims {
		if i > 0 && c.n != gpus {
			unit := "per node"
			if nodes == 0 {
				unit = "in total"
			}
			return sh, fmt.Errorf("conflicting GPU requests: %s means %d accelerators %s but %s means %d; give one", claims[0].what, gpus, unit, c.what, c.n)
		}
		gpus = c.n
	}
	if gpus > maxCount {
		return sh, fmt.Errorf("%d accelerators is more than usine accepts (%d)", gpus, maxCount)
	}
	if nodes > 0 {
		sh.perNode = gpus
	} else {
		sh.total = gpus
	}

	tasks := sh.ntasks
	if nodes > 0 {
		tasks = sh.tasksPerNode
	}
	cpus := max(r.CPUsPerTask, 1) * tasks
	if r.CPUsPerGPU > 0 {
		cpus = max(cpus, r.CPUsPerGPU*gpus)
	}
	cpus = max(cpus, r.MinCPUs)
	if r.CPUsPerTask > 0 || r.Ntasks > 0 || r.NtasksPerNode > 0 || r.CPUsPerGPU > 0 || r.MinCPUs > 0 {
		sh.cpus = cpus
	}

	mul := func(a int64, b int) (int64, error) {
		if b > 0 && a > math.MaxInt64/int64(b)/2 {
			return 0, errors.New("the memory asked for is too large")
		}
		return a * int64(b), nil
	}
	var err error
	switch {
	case r.MemMiB > 0:
		sh.memMiB = r.MemMiB
	case r.MemPerCPUMiB > 0:
		sh.memMiB, err = mul(r.MemPerCPUMiB, cpus)
	case r.MemPerGPUMiB > 0:
		if gpus == 0 {
			return sh, errors.New("--mem-per-gpu is given but no GPUs are; give --gpus, --gpus-per-node or --gres=gpu:N")
		}
		sh.memMiB, err = mul(r.MemPerGPUMiB, gpus)
	}
	return sh, err
}

// Job maps the request onto usine's job shape:
//
//   - -N n (or -n with --ntasks-per-node, from which Slurm derives n) makes
//     a gang of n nodes with the GPUs per node that --gpus-per-node,
//     --gres=gpu:N, --gpus spread evenly, or --gpus-per-task × tasks per
//     node say; GPUs without a node count are packed (Accelerators);
//   - the model comes from a GPU type (--gres=gpu:h100:4 → "H100") or a
//     model feature in --constraint;
//   - CPUs and memory are per node for gangs and in total when packed, and
//     stay 0 unless an option asks for them;
//   - --switches=1 sets OneBlock; -t sets Limit (0 when absent or
//     UNLIMITED: the server applies the partition's limit);
//   - the task gets the script, its arguments (Args), the working directory, the
//     environment --export passes plus Slurm's submission variables
//     (SLURM_SUBMIT_DIR, SLURM_SUBMIT_HOST and the SLURM_NTASKS,
//     SLURM_CPUS_PER_TASK… of the options given, which TaskLayout reads
//     back), -o and -e with their %-patterns unexpanded (stdout defaults to
//     slurm-%j.out, or slurm-%A_%a.out for arrays), the signal and requeue.
//
// ID, User, ArrayID and ArrayIndex are the caller's: it creates one job per
// array index (Array.Indices), and expresses Singleton as dependencies.
func (r *Request) Job() (model.Job, model.Task, error) {
	sh, err := r.shape()
	if err != nil {
		return model.Job{}, model.Task{}, fmt.Errorf("map sbatch request to a job: %w", err)
	}
	job := model.Job{
		Name:      r.Name,
		Project:   r.Account,
		Partition: r.Partition,
		Model:     r.Model,
		CPUs:      sh.cpus,
		MemoryMiB: sh.memMiB,
		QoS:       r.QoS,
		OneBlock:  r.Switches == 1,
		Exclusive: r.Exclusive,
		Held:      r.Hold,
		Deps:      append([]model.Dependency(nil), r.Deps...),
	}
	if sh.nodes > 0 {
		job.Nodes, job.AcceleratorsPerNode = sh.nodes, sh.perNode
	} else {
		job.Accelerators = sh.total
	}
	if r.Limit > 0 {
		job.Limit = r.Limit
	}
	if !r.Now.IsZero() {
		job.Submit = r.Now.Unix()
	}
	if r.Begin != "" {
		if r.Now.IsZero() {
			return model.Job{}, model.Task{}, errors.New("map sbatch request to a job: --begin is relative to the submission time, but Request.Now is not set")
		}
		t, err := ParseBegin(r.Begin, r.Now)
		if err != nil {
			return model.Job{}, model.Task{}, fmt.Errorf("map sbatch request to a job: %w", err)
		}
		job.Begin = t.Unix()
	}

	task := model.Task{
		Script:          string(r.Script),
		Args:            append([]string(nil), r.ScriptArgs...),
		WorkDir:         r.SubmitDir,
		Env:             r.taskEnv(sh),
		Stdout:          r.Output,
		Stderr:          r.Error,
		OpenMode:        r.OpenMode,
		Signal:          r.Signal,
		SignalBefore:    r.SignalBefore,
		SignalBatchOnly: r.SignalBatchOnly,
		Requeue:         r.Requeue,
	}
	if r.WorkDir != "" {
		task.WorkDir = r.WorkDir
		if !path.IsAbs(r.WorkDir) && r.SubmitDir != "" {
			task.WorkDir = path.Join(r.SubmitDir, r.WorkDir)
		}
	}
	if task.Stdout == "" {
		task.Stdout = "slurm-%j.out"
		if r.Array != nil {
			task.Stdout = "slurm-%A_%a.out"
		}
	}
	return job, task, nil
}

// taskEnv is the environment the job starts with: what --export passes of
// the submitter's, then the SLURM_ variables the submission fixes. The
// submitter's own SLURM_ variables (from an enclosing job) are dropped.
func (r *Request) taskEnv(sh shape) map[string]string {
	env := map[string]string{}
	if !r.Export.None {
		for k, v := range r.SubmitEnv {
			if !strings.HasPrefix(k, "SLURM_") {
				env[k] = v
			}
		}
	}
	for _, n := range r.Export.Names {
		if v, ok := r.SubmitEnv[n]; ok {
			env[n] = v
		}
	}
	for _, kv := range r.Export.Set {
		env[kv.Name] = kv.Value
	}
	set := func(k string, v string, ok bool) {
		if ok && v != "" {
			env[k] = v
		}
	}
	itoa := strconv.Itoa
	set("SLURM_SUBMIT_DIR", r.SubmitDir, true)
	set("SLURM_SUBMIT_HOST", r.SubmitHost, true)
	set("SLURM_NTASKS", itoa(sh.ntasks), r.Ntasks > 0 || r.NtasksPerNode > 0)
	set("SLURM_NTASKS_PER_NODE", itoa(r.NtasksPerNode), r.NtasksPerNode > 0)
	set("SLURM_CPUS_PER_TASK", itoa(r.CPUsPerTask), r.CPUsPerTask > 0)
	set("SLURM_CPUS_PER_GPU", itoa(r.CPUsPerGPU), r.CPUsPerGPU > 0)
	set("SLURM_GPUS", itoa(r.GPUs.Count), r.GPUs.Count > 0)
	set("SLURM_GPUS_PER_NODE", itoa(sh.perNode), sh.nodes > 0 && sh.perNode > 0)
	set("SLURM_GPUS_PER_TASK", itoa(r.GPUsPerTask.Count), r.GPUsPerTask.Count > 0)
	set("SLURM_MEM_PER_NODE", strconv.FormatInt(r.MemMiB, 10), r.MemMiB > 0)
	set("SLURM_MEM_PER_CPU", strconv.FormatInt(r.MemPerCPUMiB, 10), r.MemPerCPUMiB > 0)
	set("SLURM_MEM_PER_GPU", strconv.FormatInt(r.MemPerGPUMiB, 10), r.MemPerGPUMiB > 0)
	return env
}
