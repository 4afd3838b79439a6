package api

import (
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// The agent protocol. An agent registers its node, then holds one
// long-lived GET /agents/{node}/orders whose answer is a stream of JSON
// lines, one Orders each: the full set of runs the server wants on that
// node, sent at connection and whenever it changes. The agent makes the
// node match (launch what is missing, kill what is not wanted) and reports
// ends and a heartbeat with POST /agents/{node}/report. Level-triggered
// orders make reconnecting after a server restart trivial: the first
// Orders of the new stream says everything.

// Registration is the body of POST /agents/{node}/register.
type Registration struct {
	Node model.Node `json:"node"` // as discovered: accelerators, CPUs, memory, topology labels
	// Address is how ranks of a gang on other nodes reach this one
	// (MASTER_ADDR when it holds rank 0).
	Address string `json:"address"`
	// AgentURL is where the agent serves the logs of its runs
	// (GET AgentURL/logs/{job}); "" when it serves none.
	AgentURL string `json:"agent_url,omitempty"`
	// Running lists what the agent runs right now (after a restart, what
	// it adopted), so that the server can reconcile at once.
	Running []RunState `json:"running,omitempty"`
	// Limits says whether the agent bounds its jobs' CPUs and memory with
	// cgroup v2, and why not; nil from agents that do not say.
	Limits *store.NodeLimits `json:"limits,omitempty"`
	// Power is how the agent reads its accelerators' power for the energy
	// of runs (store.Node.Power); "" when it cannot.
	Power string `json:"power,omitempty"`
}

// Orders is what the server wants on one node.
type Orders struct {
	Node string `json:"node"`
	Runs []Run  `json:"runs"` // every (job, epoch) that should run here now
	// Signals asks for signals to running jobs (cancel --signal).
	Signals []SignalOrder `json:"signals,omitempty"`
	// HeartbeatS is how often the agent should report, seconds.
	HeartbeatS int `json:"heartbeat_s"`
	// HeartbeatMS says the same in milliseconds, for intervals under a
	// second (tests); agents prefer it when set.
	HeartbeatMS int `json:"heartbeat_ms,omitempty"`
	// Rev is the store revision the server's view had reached. An agent
	// ignores orders older than some it already followed: a lagging
	// replica must not make it kill a run that a newer view started.
	Rev int64 `json:"rev,omitempty"`
	// LogKey is this node's key for log tickets (LogTicket): the agent
	// serves a run's output to whoever shows a ticket signed with it.
	LogKey string `json:"log_key,omitempty"`
}

// Run is one rank of one job, as the node must run it.
type Run struct {
	Job   store.Job `json:"job"`
	Epoch int64     `json:"epoch"`
	Rank  int       `json:"rank"` // this node's rank in Job.Alloc
	// Nodes and Addresses are every rank's node and address, in rank order.
	Nodes     []string `json:"nodes"`
	Addresses []string `json:"addresses"`
	// Accelerators, CPUs and MemoryMiB are this rank's share of the node.
	Accelerators int   `json:"accelerators"`
	CPUs         int   `json:"cpus,omitempty"`
	MemoryMiB    int64 `json:"memory_mib,omitempty"`
	// Deadline is when the time limit runs out, Unix seconds.
	Deadline int64 `json:"deadline"`
	// AgentURLs are every rank's agent URL, in rank order ("" for an agent
	// that serves none), and StepKey the secret of this run of the job:
	// srun, inside the job, presents it to the agents to start tasks on the
	// job's nodes (POST AgentURL/steps/{job}).
	AgentURLs []string `json:"agent_urls,omitempty"`
	StepKey   string   `json:"step_key,omitempty"`
}

// SignalOrder asks for a signal to a running job.
type SignalOrder struct {
	Job    string `json:"job"`
	Epoch  int64  `json:"epoch"`
	Signal string `json:"signal"`
	To     string `json:"to,omitempty"` // store.SignalRequest.To
	Seq    int64  `json:"seq"`          // each order is carried out once
}

// RunState is one rank the agent runs or ran.
type RunState struct {
	Job   string `json:"job"`
	Epoch int64  `json:"epoch"`
	Rank  int    `json:"rank"`
	// Set when the rank has ended.
	Ended    bool   `json:"ended,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`    // the signal that ended it
	TimedOut bool   `json:"timed_out,omitempty"` // the time limit killed it
	Killed   bool   `json:"killed,omitempty"`    // stopped because the server asked
	Start    int64  `json:"start,omitempty"`
	End      int64  `json:"end,omitempty"`
	Error    string `json:"error,omitempty"` // it could not start: why
	// EnergyJ is the energy the rank's accelerators used over its run, in
	// joules, summed over the devices it held, as the agent measured it
	// (sampled power, integrated); 0 when it was not measured. Set with
	// Ended only.
	EnergyJ float64 `json:"energy_j,omitempty"`
}

// Report is the body of POST /agents/{node}/report: a heartbeat, with the
// ranks that ended since the last report and those still running.
type Report struct {
	Running []RunState `json:"running,omitempty"`
	Ended   []RunState `json:"ended,omitempty"`
	// Health is "" when the node is fine, else why it should be drained
	// (disk full, accelerator lost).
	Health string `json:"health,omitempty"`
	// Watts is the measured power draw of the node's accelerators, when the
	// agent can read it.
	Watts []float64 `json:"watts,omitempty"`
	// Steps are srun steps whose tasks on this node ended.
	Steps []StepEnd `json:"steps,omitempty"`
}

// StepEnd is how the tasks of one srun step ended on one node.
type StepEnd struct {
	Job      string `json:"job"`
	Epoch    int64  `json:"epoch"`
	Step     string `json:"step"`
	Name     string `json:"name"` // the command
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
	ExitCode int    `json:"exit_code"` // the worst of its tasks here
	Signal   string `json:"signal,omitempty"`
	Tasks    int    `json:"tasks"`
}
