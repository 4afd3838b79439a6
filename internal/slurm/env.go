package slurm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/usine-project/usine/internal/slurm/hostlist"
)

// Alloc is what a job (or an srun step) was given, as the node that builds
// its environment sees it.
type Alloc struct {
	JobID      string
	Name       string
	User       string
	Account    string
	Partition  string
	QoS        string
	Cluster    string
	SubmitDir  string
	SubmitHost string

	// ArrayJobID is the array's job id, "" when the job is not in an array.
	ArrayJobID                                                             string
	ArrayTaskID, ArrayTaskMin, ArrayTaskMax, ArrayTaskCount, ArrayTaskStep int

	Nodes        []string // host names in rank order
	TasksPerNode []int    // one count per node; nil = one task per node
	CPUsPerTask  int      // 0 = not asked
	CPUsPerNode  int      // CPUs given on each node; 0 = unknown
	GPUsPerNode  int      // accelerators on each node
	// GPUs are the indices of the accelerators on the node whose
	// environment is built (SLURM_JOB_GPUS).
	GPUs   []int
	StepID string // the srun step; "" in the batch script

	Start, End int64 // Unix seconds, 0 = unknown: SLURM_JOB_START_TIME, SLURM_JOB_END_TIME
}

// tasks is the per-node task count, one per node by default.
func (a *Alloc) tasks() []int {
	if len(a.TasksPerNode) == len(a.Nodes) {
		return a.TasksPerNode
	}
	t := make([]int, len(a.Nodes))
	for i := range t {
		t[i] = 1
	}
	return t
}

// Env is the environment Slurm gives a batch script: the job's variables,
// with the batch step's ranks (SLURM_PROCID, SLURM_LOCALID and
// SLURM_NODEID 0, on the first node).
func Env(a Alloc) map[string]string {
	tasks := a.tasks()
	total := 0
	for _, n := range tasks {
		total += n
	}
	nodelist := hostlist.Compress(a.Nodes)
	itoa := strconv.Itoa
	env := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			env[k] = v
		}
	}
	set("SLURM_JOB_ID", a.JobID)
	set("SLURM_JOBID", a.JobID)
	set("SLURM_JOB_NAME", a.Name)
	set("SLURM_JOB_USER", a.User)
	set("SLURM_JOB_ACCOUNT", a.Account)
	set("SLURM_JOB_PARTITION", a.Partition)
	set("SLURM_JOB_QOS", a.QoS)
	set("SLURM_CLUSTER_NAME", a.Cluster)
	set("SLURM_SUBMIT_DIR", a.SubmitDir)
	set("SLURM_SUBMIT_HOST", a.SubmitHost)
	set("SLURM_JOB_NODELIST", nodelist)
	set("SLURM_NODELIST", nodelist)
	set("SLURM_NNODES", itoa(len(a.Nodes)))
	set("SLURM_JOB_NUM_NODES", itoa(len(a.Nodes)))
	set("SLURM_NTASKS", itoa(total))
	set("SLURM_NPROCS", itoa(total))
	set("SLURM_TASKS_PER_NODE", FormatCounts(tasks))
	if len(tasks) > 0 && uniform(tasks) {
		set("SLURM_NTASKS_PER_NODE", itoa(tasks[0]))
	}
	set("SLURM_PROCID", "0")
	set("SLURM_LOCALID", "0")
	set("SLURM_NODEID", "0")
	set("SLURM_GTIDS", gtids(tasks, 0))
	if len(a.Nodes) > 0 {
		set("SLURMD_NODENAME", a.Nodes[0])
	}
	if a.CPUsPerTask > 0 {
		set("SLURM_CPUS_PER_TASK", itoa(a.CPUsPerTask))
	}
	if a.CPUsPerNode > 0 {
		set("SLURM_CPUS_ON_NODE", itoa(a.CPUsPerNode))
		set("SLURM_JOB_CPUS_PER_NODE", FormatCounts(repeat(a.CPUsPerNode, len(a.Nodes))))
	}
	if a.GPUsPerNode > 0 {
		set("SLURM_GPUS_ON_NODE", itoa(a.GPUsPerNode))
	}
	set("SLURM_JOB_GPUS", joinInts(a.GPUs))
	if a.ArrayJobID != "" {
		set("SLURM_ARRAY_JOB_ID", a.ArrayJobID)
		set("SLURM_ARRAY_TASK_ID", itoa(a.ArrayTaskID))
		set("SLURM_ARRAY_TASK_MIN", itoa(a.ArrayTaskMin))
		set("SLURM_ARRAY_TASK_MAX", itoa(a.ArrayTaskMax))
		set("SLURM_ARRAY_TASK_COUNT", itoa(a.ArrayTaskCount))
		set("SLURM_ARRAY_TASK_STEP", itoa(max(a.ArrayTaskStep, 1)))
	}
	if a.Start > 0 {
		set("SLURM_JOB_START_TIME", strconv.FormatInt(a.Start, 10))
	}
	if a.End > 0 {
		set("SLURM_JOB_END_TIME", strconv.FormatInt(a.End, 10))
	}
	return env
}

// TaskEnv is the environment of one task that srun starts: Env's, with the
// task's global rank (procID), its rank on its node (localID) and its
// node's rank (nodeID), and the step's variables. For a step that uses
// part of the allocation, pass the step's nodes and task counts in a. A
// nodeID outside a.Nodes leaves the node name unset.
func TaskEnv(a Alloc, procID, localID, nodeID int) map[string]string {
	env := Env(a)
	env["SLURM_PROCID"] = strconv.Itoa(procID)
	env["SLURM_LOCALID"] = strconv.Itoa(localID)
	env["SLURM_NODEID"] = strconv.Itoa(nodeID)
	delete(env, "SLURMD_NODENAME")
	tasks := a.tasks()
	if nodeID >= 0 && nodeID < len(a.Nodes) {
		env["SLURMD_NODENAME"] = a.Nodes[nodeID]
		env["SLURM_GTIDS"] = gtids(tasks, nodeID)
	}
	env["SLURM_STEP_NODELIST"] = env["SLURM_JOB_NODELIST"]
	env["SLURM_STEP_NUM_NODES"] = env["SLURM_NNODES"]
	env["SLURM_STEP_NUM_TASKS"] = env["SLURM_NTASKS"]
	env["SLURM_STEP_TASKS_PER_NODE"] = env["SLURM_TASKS_PER_NODE"]
	if a.StepID != "" {
		env["SLURM_STEP_ID"] = a.StepID
		env["SLURM_STEPID"] = a.StepID
	}
	if gpus := joinInts(a.GPUs); gpus != "" {
		env["SLURM_STEP_GPUS"] = gpus
	}
	return env
}

// gtids lists the global ranks of the tasks on node n, as SLURM_GTIDS does.
func gtids(tasks []int, n int) string {
	first := 0
	for i := 0; i < n && i < len(tasks); i++ {
		first += tasks[i]
	}
	if n >= len(tasks) {
		return ""
	}
	ids := make([]int, tasks[n])
	for i := range ids {
		ids[i] = first + i
	}
	return joinInts(ids)
}

// FormatCounts writes per-node counts as Slurm does in SLURM_TASKS_PER_NODE
// and SLURM_JOB_CPUS_PER_NODE: runs of a value as value(xN), "4(x2),3".
func FormatCounts(counts []int) string {
	var b strings.Builder
	for i := 0; i < len(counts); {
		j := i
		for j < len(counts) && counts[j] == counts[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(counts[i]))
		if j-i > 1 {
			fmt.Fprintf(&b, "(x%d)", j-i)
		}
		i = j
	}
	return b.String()
}

// Distribute lays ntasks out over nodes as Slurm's block distribution does:
// evenly, the first nodes taking one more when they do not divide.
// ntasks <= 0 means one task per node.
func Distribute(ntasks, nodes int) []int {
	if nodes <= 0 {
		return nil
	}
	out := make([]int, nodes)
	if ntasks <= 0 {
		ntasks = nodes
	}
	for i := range out {
		out[i] = ntasks / nodes
		if i < ntasks%nodes {
			out[i]++
		}
	}
	return out
}

// TaskLayout reads back, from the environment Job gave a task, how many
// tasks run on each of nodes nodes and how many CPUs each task has (0 =
// not asked): SLURM_NTASKS spread by Distribute, else SLURM_NTASKS_PER_NODE
// on every node, else one task per node.
func TaskLayout(env map[string]string, nodes int) (tasksPerNode []int, cpusPerTask int) {
	atoi := func(k string) int {
		n, err := strconv.Atoi(env[k])
		if err != nil || n < 0 {
			return 0
		}
		return n
	}
	cpusPerTask = atoi("SLURM_CPUS_PER_TASK")
	if n := atoi("SLURM_NTASKS"); n > 0 {
		return Distribute(n, nodes), cpusPerTask
	}
	if per := atoi("SLURM_NTASKS_PER_NODE"); per > 0 {
		return repeat(per, nodes), cpusPerTask
	}
	return Distribute(0, nodes), cpusPerTask
}

func repeat(v, n int) []int {
	out := make([]int, max(n, 0))
	for i := range out {
		out[i] = v
	}
	return out
}

func uniform(xs []int) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}
