package slurm

import (
	"time"

	"github.com/usine-project/usine/internal/model"
)

// Request is what sbatch's options and #SBATCH directives ask for, before it
// becomes a usine job. ParseBatch fills it; the caller sets the submission
// fields (Now, SubmitDir, SubmitHost, SubmitEnv) and calls Job.
type Request struct {
	Name      string // -J; "" = the script's file name, "wrap" for --wrap, else "sbatch"
	Account   string // -A: the usine project
	Partition string // -p: the first of a comma-separated list
	QoS       string // -q

	NodesMin, NodesMax int // -N min[-max]; 0 = not given
	Ntasks             int // -n; 0 = not given
	NtasksPerNode      int // --ntasks-per-node
	CPUsPerTask        int // -c
	CPUsPerGPU         int // --cpus-per-gpu
	MinCPUs            int // --mincpus, per node

	MemMiB       int64 // --mem, per node
	MemWholeNode bool  // --mem=0: all of each node's memory
	MemPerCPUMiB int64 // --mem-per-cpu
	MemPerGPUMiB int64 // --mem-per-gpu

	GPUs        GPUs // -G/--gpus: in total
	GPUsPerNode GPUs // --gpus-per-node
	GPUsPerTask GPUs // --gpus-per-task
	GresGPUs    GPUs // --gres=gpu[:type][:N], per node
	// Model is the accelerator model the GPU options and --constraint ask
	// for, upper-cased ("H100"); "" = any.
	Model      string
	Constraint string // -C as given

	Limit        int64 // -t, seconds; 0 = not given; Unlimited for UNLIMITED or 0
	Begin        string
	Hold         bool
	Exclusive    bool
	Switches     int   // --switches=N
	SwitchesWait int64 // --switches=N@time, seconds
	Array        *Array
	Deps         []model.Dependency // -d, every type but singleton
	// Singleton is --dependency=singleton: the job waits until no other job
	// of the same user with the same name is pending or running. Job does
	// not express it; the caller looks up that user's jobs with the job's
	// name and adds an afterany dependency on each.
	Singleton bool

	Output, Error, WorkDir string // -o, -e, -D, %-patterns unexpanded
	OpenMode               string // --open-mode: model.OpenAppend, model.OpenTruncate or ""
	Export                 Export
	Signal                 string // --signal: a name without SIG ("USR1")
	SignalBefore           int64  // seconds before the time limit
	SignalBatchOnly        bool   // --signal=B:…: only the batch shell is signalled
	Requeue                bool   // --requeue; --no-requeue clears it

	Parsable, Wait, TestOnly bool
	Quiet                    bool
	Verbose                  int
	Help, Usage, Version     bool

	// Script is the batch script (for --wrap, one written around the
	// command); ScriptPath and ScriptArgs are the first argument that is
	// not an option and the ones after it.
	Script     []byte
	Wrap       string
	ScriptPath string
	ScriptArgs []string

	// Set by the caller before Job.
	Now        time.Time         // submission time; resolves --begin
	SubmitDir  string            // the working directory by default, and the base of a relative -D
	SubmitHost string            // recorded in SLURM_SUBMIT_HOST
	SubmitEnv  map[string]string // the submitter's environment, which --export reads
}

// GPUs is one GPU option's "[type:]count".
type GPUs struct {
	Type  string // as written, "" = any
	Count int    // 0 = not given
}

// Array is a parsed --array.
type Array struct {
	Spec     string // as given
	Indices  []int  // sorted, without duplicates
	Throttle int    // %N: at most N tasks run at once; 0 = no limit
}

// Bounds are the smallest and largest index and the index count, as
// SLURM_ARRAY_TASK_MIN, _MAX and _COUNT report them.
func (a *Array) Bounds() (lo, hi, count int) {
	if len(a.Indices) == 0 {
		return 0, 0, 0
	}
	return a.Indices[0], a.Indices[len(a.Indices)-1], len(a.Indices)
}

// Step is the stride between the array's indices when they are evenly
// spaced, else 1, as SLURM_ARRAY_TASK_STEP reports it.
func (a *Array) Step() int {
	if len(a.Indices) < 2 {
		return 1
	}
	step := a.Indices[1] - a.Indices[0]
	for i := 2; i < len(a.Indices); i++ {
		if a.Indices[i]-a.Indices[i-1] != step {
			return 1
		}
	}
	return step
}

// Export is a parsed --export.
type Export struct {
	// None is true for NONE, or for a list of variables without ALL: only
	// those listed are passed. False (the default, ALL) passes the whole
	// submitting environment.
	None  bool
	Names []string // variables copied from the submitting environment
	Set   []EnvVar // variables given a value, in order
}

// EnvVar is one NAME=value.
type EnvVar struct{ Name, Value string }
