package agent

import (
	"strconv"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/slurm"
)

// spec resolves what the orders ask into what internal/launch runs: the
// output files' %-patterns expanded for this rank, the time left to the
// deadline, the rendezvous, and the variables launch does not know of
// (the node's, the job's name and array, Slurm's for unmodified batch
// scripts). launch adds usine's own, the rendezvous and the visibility
// variables, and the job's environment over all of them.
func (a *Agent) spec(o api.Run, devs []int, now time.Time) launch.Spec {
	j := &o.Job
	t := j.Task // a copy: the outputs are this rank's
	vars := slurm.PatternVars{JobID: j.ID, ArrayJobID: j.ArrayID, ArrayTaskID: j.ArrayIndex, JobName: j.Name, User: j.User,
		Node: a.cfg.Node.Name, NodeID: o.Rank, TaskID: o.Rank}
	if t.Stdout != "" {
		t.Stdout = slurm.ExpandPattern(t.Stdout, vars)
	}
	if t.Stderr != "" {
		t.Stderr = slurm.ExpandPattern(t.Stderr, vars)
	}
	if t.StreamOutput {
		t.Stdout, t.Stderr = a.state.logFile("stream", runKey{j.ID, o.Epoch, o.Rank}), ""
	}
	var limit time.Duration
	if o.Deadline > 0 {
		limit = time.Unix(o.Deadline, 0).Sub(now)
	}
	master := a.cfg.Address
	if len(o.Addresses) > 0 && o.Addresses[0] != "" {
		master = o.Addresses[0]
	}
	extra := slurm.TaskEnv(slurm.Alloc{
		JobID: j.ID, Name: j.Name, User: j.User, Account: j.Project, Partition: j.Partition, QoS: j.QoS,
		ArrayJobID: j.ArrayID, ArrayTaskID: j.ArrayIndex, Nodes: o.Nodes, GPUsPerNode: o.Accelerators, GPUs: devs,
		CPUsPerNode: o.CPUs, Start: j.Start, End: o.Deadline, SubmitDir: j.Task.WorkDir,
	}, o.Rank, 0, o.Rank)
	extra["USINE_NODE"] = a.cfg.Node.Name
	extra["USINE_SERVER"] = a.cfg.Server
	extra["USINE_JOB_NAME"] = j.Name
	extra["USINE_PROJECT"] = j.Project
	if j.ArrayID != "" {
		extra["USINE_ARRAY_ID"], extra["USINE_ARRAY_INDEX"] = j.ArrayID, strconv.Itoa(j.ArrayIndex)
	}
	return launch.Spec{
		JobID: j.ID, Epoch: o.Epoch, NodeRank: o.Rank, NumNodes: max(len(o.Nodes), 1), Task: t,
		Devices: devs, Vendor: a.vendor, CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Limit: limit, Grace: a.cfg.Grace,
		Rendezvous: launch.Rendezvous{MasterAddr: master, Nodes: o.Nodes}, Extra: extra,
	}
}

// env is the whole environment a run of o with devices devs gets: for
// work done on the run's behalf outside its launch.
func (a *Agent) env(o api.Run, devs []int) map[string]string {
	s := a.spec(o, devs, time.Now())
	return s.Environ()
}
