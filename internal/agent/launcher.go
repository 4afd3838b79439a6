package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/slurm"
)

// Launcher starts runs and finds them again after the agent restarts.
type Launcher interface {
	Start(ctx context.Context, s Spec) (Process, error)
	// Recover finds the process a handle (Process.Handle) names. It fails
	// when the process is gone; the error says what is known of its end.
	Recover(ctx context.Context, handle json.RawMessage) (Process, error)
}

// Process is one launched rank: a process group.
type Process interface {
	// Handle is what Recover needs to find the process again.
	Handle() json.RawMessage
	// Signal sends a signal ("TERM", "USR1", "KILL", …) to the process group.
	Signal(sig string) error
	// Wait blocks until the process group's leader ends.
	Wait() ExitStatus
}

// ExitStatus is how a run ended.
type ExitStatus struct {
	ExitCode int    // -1 when a signal ended it or it never started
	Signal   string // the signal that ended it, "TERM", "KILL", …
	TimedOut bool   // the time limit stopped it
	Killed   bool   // the agent stopped it because the server asked
	Err      string // it could not start, or was lost: why
	End      time.Time
}

// exitStatus is the agent's name for it.
type exitStatus = ExitStatus

// Spec is one rank to start, everything resolved.
type Spec struct {
	Key     string // job.epoch.rank, for logs and file names
	Script  string // a batch script, with Args, or
	Args    []string
	Command []string // an argv
	WorkDir string
	Env     map[string]string // the whole environment
	Stdout  string            // absolute path
	Stderr  string            // absolute path; == Stdout to merge
	// Deadline is the time limit: Signal is sent SignalBefore ahead of it
	// (when > 0), SIGTERM at it, and SIGKILL Grace later.
	Deadline     time.Time
	Signal       string
	SignalBefore time.Duration
	Grace        time.Duration
	// CPUs and MemoryMiB bound the run where the host allows (cgroup v2).
	CPUs      int
	MemoryMiB int64
	StateDir  string // where the launcher may keep files of its own
}

// spec resolves what the orders ask into a Spec: files, directory and
// the environment (usine's, rendezvous, accelerator visibility, Slurm's).
func (a *Agent) spec(o api.Run, devs []int) Spec {
	j := &o.Job
	t := &j.Task
	k := runKey{j.ID, o.Epoch, o.Rank}
	work := t.WorkDir
	if work == "" {
		work, _ = os.UserHomeDir()
	}
	if work == "" {
		work = a.state.logDir()
	}
	out := t.Stdout
	if out == "" {
		out = "usine-" + j.ID + ".out"
		if o.Rank > 0 {
			out = fmt.Sprintf("usine-%s.%d.out", j.ID, o.Rank)
		}
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(work, out)
	}
	errf := out
	if t.Stderr != "" {
		errf = t.Stderr
		if !filepath.IsAbs(errf) {
			errf = filepath.Join(work, errf)
		}
	}
	var deadline time.Time
	if o.Deadline > 0 {
		deadline = time.Unix(o.Deadline, 0)
	}
	return Spec{
		Key: k.String(), Script: t.Script, Args: t.Args, Command: t.Command, WorkDir: work,
		Env: a.env(o, devs), Stdout: out, Stderr: errf,
		Deadline: deadline, Signal: t.Signal, SignalBefore: time.Duration(t.SignalBefore) * time.Second, Grace: a.cfg.Grace,
		CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, StateDir: a.cfg.StateDir,
	}
}

// env is a run's whole environment: a clean base, Slurm's variables for
// unmodified batch scripts, usine's, the rendezvous variables PyTorch and
// JAX launchers read, the vendor's visibility variables, then the job's.
func (a *Agent) env(o api.Run, devs []int) map[string]string {
	j := &o.Job
	env := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	nodes := len(o.Nodes)
	if nodes == 0 {
		nodes = 1
	}
	for k, v := range slurm.TaskEnv(slurm.Alloc{
		JobID: j.ID, Name: j.Name, User: j.User, Account: j.Project, Partition: j.Partition, QoS: j.QoS,
		ArrayJobID: j.ArrayID, ArrayTaskID: j.ArrayIndex, Nodes: o.Nodes, GPUsPerNode: o.Accelerators, GPUs: devs,
		CPUsPerNode: o.CPUs, Start: j.Start, End: o.Deadline, SubmitDir: j.Task.WorkDir,
	}, o.Rank, 0, o.Rank) {
		env[k] = v
	}
	master := a.cfg.Address
	if len(o.Addresses) > 0 && o.Addresses[0] != "" {
		master = o.Addresses[0]
	}
	port := strconv.Itoa(masterPort(j.ID, o.Epoch))
	ids := joinInts(devs)
	set := map[string]string{
		"USINE_JOB_ID": j.ID, "USINE_JOB_NAME": j.Name, "USINE_PROJECT": j.Project, "USINE_EPOCH": strconv.FormatInt(o.Epoch, 10),
		"USINE_NODE": a.cfg.Node.Name, "USINE_NODES": strings.Join(o.Nodes, ","), "USINE_NUM_NODES": strconv.Itoa(nodes),
		"USINE_NODE_RANK": strconv.Itoa(o.Rank), "USINE_ACCELERATORS": ids,
		"USINE_SERVER": a.cfg.Server,
		// torchrun and torch.distributed (env://): one process per node
		// here, the script; torchrun --nnodes=$NNODES spreads further.
		"MASTER_ADDR": master, "MASTER_PORT": port,
		"WORLD_SIZE": strconv.Itoa(nodes), "NNODES": strconv.Itoa(nodes),
		"NODE_RANK": strconv.Itoa(o.Rank), "RANK": strconv.Itoa(o.Rank), "GROUP_RANK": strconv.Itoa(o.Rank), "LOCAL_RANK": "0",
		// jax.distributed.initialize() reads these.
		"JAX_COORDINATOR_ADDRESS": master + ":" + port, "JAX_NUM_PROCESSES": strconv.Itoa(nodes), "JAX_PROCESS_ID": strconv.Itoa(o.Rank),
	}
	if j.ArrayID != "" {
		set["USINE_ARRAY_ID"], set["USINE_ARRAY_INDEX"] = j.ArrayID, strconv.Itoa(j.ArrayIndex)
	}
	for k, v := range set {
		env[k] = v
	}
	// Visibility: a run sees only its own accelerators, numbered from 0.
	switch a.cfg.Vendor {
	case "amd":
		env["ROCR_VISIBLE_DEVICES"], env["HIP_VISIBLE_DEVICES"] = ids, ids
	case "nvidia", "":
		if a.cfg.Node.Accelerators > 0 {
			env["CUDA_VISIBLE_DEVICES"] = ids
		}
	default:
		env[strings.ToUpper(a.cfg.Vendor)+"_VISIBLE_DEVICES"] = ids
	}
	if a.cfg.Node.Accelerators > 0 && len(devs) == 0 {
		// Asked for none on a node that has some: hide them all.
		env["CUDA_VISIBLE_DEVICES"], env["ROCR_VISIBLE_DEVICES"], env["HIP_VISIBLE_DEVICES"] = "", "", ""
		if a.cfg.Vendor == "amd" {
			delete(env, "CUDA_VISIBLE_DEVICES")
		} else {
			delete(env, "ROCR_VISIBLE_DEVICES")
			delete(env, "HIP_VISIBLE_DEVICES")
		}
	}
	for k, v := range j.Task.Env {
		env[k] = v
	}
	return env
}

// masterPort picks the rendezvous port of a run from its job and epoch,
// in 20000–39999, so that runs sharing a node rarely collide.
func masterPort(job string, epoch int64) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", job, epoch)
	return 20000 + int(h.Sum32()%20000)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
