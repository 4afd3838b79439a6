package model

// JobState is where a job is in its life.
type JobState string

// Job states. The last four are final.
const (
	JobPending   JobState = "pending"
	JobRunning   JobState = "running"
	JobCompleted JobState = "completed"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
	JobTimeout   JobState = "timeout"
)

// Final reports whether a job in state s will never run again.
func (s JobState) Final() bool {
	switch s {
	case JobCompleted, JobFailed, JobCancelled, JobTimeout:
		return true
	}
	return false
}

// DepType is how a job depends on another, as Slurm's --dependency says it.
type DepType string

// Dependency types.
const (
	AfterStart DepType = "after"      // the other job has started
	AfterAny   DepType = "afterany"   // the other job has ended, however
	AfterOK    DepType = "afterok"    // the other job completed successfully
	AfterNotOK DepType = "afternotok" // the other job failed, timed out or was cancelled
)

// Dependency names another job this one waits for.
type Dependency struct {
	Type  DepType `json:"type"`
	JobID string  `json:"job_id"`
}

// Job is a request for accelerators and the work to run on them.
//
// Shapes:
//   - Nodes > 0: a gang of Nodes nodes with AcceleratorsPerNode each; all
//     start together or none do.
//   - Nodes == 0: Accelerators accelerators anywhere; the scheduler packs
//     them onto as few nodes as it can.
//
// CPUs and MemoryMiB are per node for gangs and in total for packed jobs.
type Job struct {
	ID                  string       `json:"id"`
	Name                string       `json:"name,omitempty"`
	Project             string       `json:"project"`
	User                string       `json:"user"`
	Partition           string       `json:"partition,omitempty"` // "" = any partition that fits
	Model               string       `json:"model,omitempty"`     // accelerator model constraint; "" = any
	Nodes               int          `json:"nodes,omitempty"`
	AcceleratorsPerNode int          `json:"accelerators_per_node,omitempty"`
	Accelerators        int          `json:"accelerators,omitempty"` // when Nodes == 0
	CPUs                int          `json:"cpus,omitempty"`
	MemoryMiB           int64        `json:"memory_mib,omitempty"`
	Limit               int64        `json:"limit_s"` // time limit, seconds
	QoS                 string       `json:"qos,omitempty"`
	Priority            int64        `json:"priority_adjust,omitempty"` // administrator's adjustment, added to the computed priority
	ArrayID             string       `json:"array_id,omitempty"`
	ArrayIndex          int          `json:"array_index,omitempty"`
	ArrayThrottle       int          `json:"array_throttle,omitempty"` // at most this many elements of the array run at once (--array=…%N); 0 = no limit
	Deps                []Dependency `json:"deps,omitempty"`
	Preemptible         bool         `json:"preemptible,omitempty"`
	OneBlock            bool         `json:"one_block,omitempty"` // refuse to span blocks
	Exclusive           bool         `json:"exclusive,omitempty"` // whole nodes, even for a small request
	Held                bool         `json:"held,omitempty"`
	Begin               int64        `json:"begin,omitempty"` // not before this time
	Submit              int64        `json:"submit"`
}

// TotalAccelerators is how many accelerators the job occupies when it runs.
func (j *Job) TotalAccelerators() int {
	if j.Nodes > 0 {
		return j.Nodes * j.AcceleratorsPerNode
	}
	return j.Accelerators
}

// The open modes of a job's output files (Task.OpenMode).
const (
	OpenAppend   = "append"
	OpenTruncate = "truncate"
)

// Task is what a job runs and how: the part of a job that the scheduler never
// looks at and the node agent needs.
type Task struct {
	// Script is a batch script, run by the interpreter on its #! line, else
	// /bin/sh. Command is an argv run directly when there is no script.
	Script  string            `json:"script,omitempty"`
	Args    []string          `json:"args,omitempty"` // the script's arguments ($1 …), as sbatch takes them
	Command []string          `json:"command,omitempty"`
	WorkDir string            `json:"workdir,omitempty"` // "" = the submitter's home on the node
	Env     map[string]string `json:"env,omitempty"`     // added to a clean environment
	// Stdout and Stderr are file paths (absolute, or relative to WorkDir);
	// "" = usine-<job id>.out in WorkDir, and stderr goes with stdout.
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// OpenMode is how a run opens those files: OpenAppend or OpenTruncate;
	// "" truncates them on the job's first run and appends on a later one
	// (a requeue), as Slurm does.
	OpenMode string `json:"open_mode,omitempty"`
	// StreamOutput keeps the output for the submitter to stream (srun
	// outside a job) rather than in a file of the job's: the node's agent
	// writes it in its own log directory and deletes it when it forgets
	// the run, an hour after its end. Stdout and Stderr are then empty.
	StreamOutput bool `json:"stream_output,omitempty"`
	// Signal is sent SignalBefore seconds before the time limit and on
	// preemption, so training code can checkpoint ("" = TERM).
	Signal       string `json:"signal,omitempty"`
	SignalBefore int64  `json:"signal_before_s,omitempty"`
	// Requeue asks for the job to go back to the queue, rather than fail,
	// when its node is lost or it is preempted.
	Requeue bool `json:"requeue,omitempty"`
	// BatchHost runs the script as Slurm runs a batch script: once, on the
	// job's first node. The other nodes hold their share of the allocation
	// for the job's srun steps, and the job ends when the script ends.
	// sbatch sets it; without it every node runs the script.
	BatchHost bool `json:"batch_host,omitempty"`
	// SignalBatchOnly sends a batch job's Signal to its script alone
	// (sbatch --signal=B:…). Without it the signal goes, as Slurm sends
	// it, to the tasks of the job's steps (srun) and not to the script,
	// which a signal it does not trap would kill.
	SignalBatchOnly bool `json:"signal_batch_only,omitempty"`
}
