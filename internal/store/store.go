// Package store is usine's durable truth: jobs, nodes, projects, users,
// tokens, events and the audit log, behind one interface that two real
// engines implement (SQLite embedded, PostgreSQL in production; see
// internal/store/sqlstore). A write returns only once it is durable.
//
// Every change to a job takes the next store revision (Rev). Revisions are
// handed out in commit order, so a reader that asks for the jobs changed
// after revision R never misses one: that is how the scheduler loop of a
// leader keeps its in-memory view in step with writes made by any replica.
package store

import (
	"context"
	"errors"

	"github.com/usine-project/usine/internal/model"
)

// Errors returned by Store methods; wrap-checked with errors.Is.
var (
	// ErrNotFound: the named job, node, project, user or token does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the thing changed under the caller (an optimistic check
	// failed, or a name is already taken). Re-read and try again.
	ErrConflict = errors.New("conflict")
	// ErrNotLeader: the caller's scheduler lease is no longer the current one.
	ErrNotLeader = errors.New("not the scheduler leader")
)

// Job is a job as the store keeps it: what was asked and where it stands.
type Job struct {
	model.Job
	Task  model.Task     `json:"task"`
	State model.JobState `json:"state"`
	// Reason is why a pending job waits (a sched.Reason) or why a job ended
	// as it did ("NodeFail", "TimeLimit", "cancelled by alice", …).
	Reason   string `json:"reason,omitempty"`
	Priority int64  `json:"priority,omitempty"`  // computed by the last pass
	EstStart int64  `json:"est_start,omitempty"` // 0 = unknown
	Start    int64  `json:"start,omitempty"`
	End      int64  `json:"end,omitempty"`
	// Alloc is what the job holds while it runs, node by node in rank order.
	Alloc []Alloc `json:"alloc,omitempty"`
	// Epoch grows by one at every start. An agent's launch carries it, and a
	// report or a process with an older epoch belongs to a past run: that is
	// what keeps a job from running twice.
	Epoch    int64  `json:"epoch,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"` // the signal that ended it, if any
	Requeues int    `json:"requeues,omitempty"`
	// Ranks records how the ranks of the current run ended, as their
	// agents reported; entries of an older Epoch belong to a past run.
	Ranks []RankEnd `json:"ranks,omitempty"`
	// Signals asked for the current run (usine cancel --signal). They are
	// part of the job so that every replica's agents hear of them.
	Signals []SignalRequest `json:"signals,omitempty"`
	// Steps are the srun steps of the current run that ended, as their
	// nodes' agents reported them (sacct shows them under the job).
	Steps []Step `json:"steps,omitempty"`
	Rev   int64  `json:"rev"` // store revision of the last change
}

// SignalRequest is a signal asked for one run of a job. Agents carry out
// each Seq of a run once.
type SignalRequest struct {
	Seq    int64  `json:"seq"`
	Epoch  int64  `json:"epoch"`
	Signal string `json:"signal"`
	To     string `json:"to,omitempty"` // "", SignalBatch or SignalFull (api.CancelRequest)
	Time   int64  `json:"time"`         // Unix seconds; orders are repeated for a while after
}

// Whom a batch job's signal goes to besides its steps' tasks.
const (
	SignalBatch = "batch" // the batch script alone
	SignalFull  = "full"  // the batch script and the steps' tasks
)

// Step is one srun step of a run of a batch job, merged from what each of
// its nodes reported: the earliest start, the latest end, the worst exit.
type Step struct {
	ID       string   `json:"id"`
	Epoch    int64    `json:"epoch"`
	Name     string   `json:"name"`
	Start    int64    `json:"start"` // Unix seconds
	End      int64    `json:"end"`
	ExitCode int      `json:"exit_code"`
	Signal   string   `json:"signal,omitempty"`
	Nodes    []string `json:"nodes"`
	Tasks    int      `json:"tasks"`
}

// MaxSteps is how many steps a job keeps (the last ones).
const MaxSteps = 64

// MaxSignals is how many signal requests a job keeps.
const MaxSignals = 16

// RankEnd is how one rank of one run of a job ended.
type RankEnd struct {
	Epoch    int64  `json:"epoch"`
	Rank     int    `json:"rank"`
	Node     string `json:"node"`
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	End      int64  `json:"end"`
	// EnergyJ is the energy of the rank's accelerators over its run,
	// joules, as its agent measured it; 0 = not measured.
	EnergyJ float64 `json:"energy_j,omitempty"`
}

// MeasuredEnergy is the accelerators' energy of run epoch of a job that
// held alloc, in kWh, from the rank ends its agents reported. ok only when
// every rank that holds accelerators reported a measurement: a gang that
// one failing rank ended before the others reported is left to the
// estimate rather than counted short.
func MeasuredEnergy(ranks []RankEnd, epoch int64, alloc []Alloc) (kwh float64, ok bool) {
	var joules float64
	measured := 0
	for i, a := range alloc {
		if a.Accelerators == 0 {
			continue
		}
		found := false
		for _, e := range ranks {
			if e.Epoch == epoch && e.Rank == i && e.EnergyJ > 0 {
				joules += e.EnergyJ
				found = true
				break
			}
		}
		if !found {
			return 0, false
		}
		measured++
	}
	if measured == 0 {
		return 0, false
	}
	return joules / 3.6e6, true
}

// Alloc is what a running job holds on one node.
type Alloc struct {
	Node         string `json:"node"`
	Accelerators int    `json:"accelerators"`
	CPUs         int    `json:"cpus,omitempty"`
	MemoryMiB    int64  `json:"memory_mib,omitempty"`
}

// JobFilter selects jobs. Empty fields select everything; results come in
// ascending ID order, at most Limit of them, starting after the ID After.
type JobFilter struct {
	IDs       []string
	States    []model.JobState
	Projects  []string
	User      string
	Partition string
	ArrayID   string
	Name      string
	After     string
	Limit     int
}

// Node is a node with what the server knows of its agent.
type Node struct {
	model.Node
	Heartbeat int64 `json:"heartbeat,omitempty"` // last time its agent spoke
	// Address is how other nodes reach this one (a gang's MASTER_ADDR);
	// AgentURL is where its agent serves job logs. Both come from the
	// agent's registration.
	Address  string `json:"address,omitempty"`
	AgentURL string `json:"agent_url,omitempty"`
	// Limits says whether the agent bounds its jobs' CPUs and memory, and
	// Power how it reads its accelerators' power ("nvidia-smi", "sysfs",
	// "emulated" for a synthetic draw, "" = it cannot: energy is
	// estimated), both as it registered; Limits is nil when it did not say.
	Limits *NodeLimits `json:"limits,omitempty"`
	Power  string      `json:"power,omitempty"`
	Rev    int64       `json:"rev"`
}

// NodeLimits says whether a node's agent enforces its jobs' CPU and
// memory limits (cgroup v2), and why not: without them a job can use more
// than it was given.
type NodeLimits struct {
	Enforced bool   `json:"enforced"`
	Reason   string `json:"reason,omitempty"` // why not, when not enforced
}

// Role is what a user may do, in one project or (Project "") everywhere.
type Role string

// Roles, from least to most powerful.
const (
	RoleMember   Role = "member"   // submits and manages their own jobs in the project
	RoleManager  Role = "manager"  // manages the project's members and all its jobs
	RoleOfficer  Role = "officer"  // funding body: calls, proposals, grants, reports
	RoleOperator Role = "operator" // runs the site: nodes, partitions, every job
	RoleAdmin    Role = "admin"    // everything
)

// Member gives a user a role in a project; Project "" means site-wide.
type Member struct {
	Project string `json:"project"`
	User    string `json:"user"`
	Role    Role   `json:"role"`
}

// Token is an API token. Only its hash is stored: the secret is shown once.
type Token struct {
	ID      string `json:"id"`
	User    string `json:"user"`
	Name    string `json:"name,omitempty"`
	Hash    []byte `json:"-"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"` // 0 = never
	// Node binds the token to one node's agent: it may register that
	// node, follow its orders and report for it, and hold no role.
	Node string `json:"node,omitempty"`
}

// Event is one thing that happened to a job.
type Event struct {
	ID     int64  `json:"id"`
	Job    string `json:"job"`
	Time   int64  `json:"time"`
	Kind   string `json:"kind"` // submitted, started, preempted, requeued, held, released, cancelled, ended, …
	Detail string `json:"detail,omitempty"`
}

// AuditEntry records one state-changing request: who, what, when, from where.
type AuditEntry struct {
	ID     int64  `json:"id"`
	Time   int64  `json:"time"`
	Actor  string `json:"actor"`
	Action string `json:"action"` // e.g. "POST /api/v1/jobs"
	Target string `json:"target,omitempty"`
	Remote string `json:"remote,omitempty"`
	Status int    `json:"status"`
}

// Lease is a term of scheduler leadership.
type Lease struct {
	Holder  string `json:"holder"`
	Term    int64  `json:"term"`
	Expires int64  `json:"expires"` // Unix milliseconds
}

// StartJob is one start decision to commit: the job was pending at revision
// Rev and now runs on Alloc from Start.
type StartJob struct {
	ID    string
	Rev   int64
	Start int64
	Alloc []Alloc
}

// Requeue is one running job to put back in the queue (preemption, node
// loss): it was running with epoch Epoch.
type Requeue struct {
	ID     string
	Epoch  int64
	Reason string
}

// WaitInfo is what a pass says of one waiting job.
type WaitInfo struct {
	ID       string
	Reason   string
	Priority int64
	EstStart int64
}

// Decisions is what the scheduler loop commits after one pass, all at once.
type Decisions struct {
	Time     int64
	Starts   []StartJob
	Requeues []Requeue
	// Events (started, preempted) of the jobs decided for commit with
	// the decisions, so a job is never seen started without its event.
	Events []Event
}

// Store is the durable state of a factory. Implementations are safe for
// concurrent use.
type Store interface {
	Close() error
	Grants // calls, proposals, grants and their ledger (grants.go)

	// SubmitJobs assigns IDs, sets every job pending and commits them in one
	// transaction; it returns once the commit is durable. Jobs of one call
	// that share a non-empty ArrayID "new" get the first job's ID as ArrayID.
	// Audit entries given are committed in the same transaction, so that
	// the request that submitted the jobs is on record exactly when they are.
	SubmitJobs(ctx context.Context, jobs []Job, audit ...AuditEntry) ([]Job, error)
	Job(ctx context.Context, id string) (Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	// UpdateJob reads a job, lets fn change it and writes it back with a new
	// revision, in one transaction; an error from fn aborts and is returned.
	UpdateJob(ctx context.Context, id string, fn func(*Job) error) (Job, error)
	// ChangedJobs lists up to limit jobs changed after revision rev, in
	// revision order.
	ChangedJobs(ctx context.Context, rev int64, limit int) ([]Job, error)
	// Rev is the latest revision handed out. A reader that loads the
	// pending and running jobs after calling Rev, then follows ChangedJobs
	// from it, misses nothing.
	Rev(ctx context.Context) (int64, error)
	// Apply commits a pass's starts and requeues atomically, under lease.
	// ErrNotLeader when the lease is stale; ErrConflict when a job moved on
	// since the pass saw it (nothing is written then).
	Apply(ctx context.Context, lease Lease, d Decisions) ([]Job, error)
	// SetWaiting records reasons, priorities and estimates of waiting jobs.
	// It does not take a revision: it changes nothing the scheduler reads.
	SetWaiting(ctx context.Context, w []WaitInfo) error

	// Secret is the named secret every replica shares: 32 random bytes,
	// made by the first replica that asks for it.
	Secret(ctx context.Context, name string) ([]byte, error)

	AddEvents(ctx context.Context, ev []Event) error
	Events(ctx context.Context, job string, after int64, limit int) ([]Event, error)

	PutSite(ctx context.Context, s model.Site) error
	Sites(ctx context.Context) ([]model.Site, error)
	PutPartition(ctx context.Context, p model.Partition) error
	Partitions(ctx context.Context) ([]model.Partition, error)
	// PutNode creates or replaces a node.
	PutNode(ctx context.Context, n Node) (Node, error)
	Node(ctx context.Context, name string) (Node, error)
	Nodes(ctx context.Context) ([]Node, error)
	UpdateNode(ctx context.Context, name string, fn func(*Node) error) (Node, error)
	// Heartbeats records that the agents of these nodes spoke at time t
	// (Unix seconds), in one transaction, without taking a revision:
	// thousands of agents report every few seconds.
	Heartbeats(ctx context.Context, names []string, t int64) error

	PutProject(ctx context.Context, p model.Project) error
	Projects(ctx context.Context) ([]model.Project, error)
	PutMember(ctx context.Context, m Member) error
	DeleteMember(ctx context.Context, project, user string) error
	// Members lists members of a project, or of every project when project
	// is "*", or a user's memberships when user is not "".
	Members(ctx context.Context, project, user string) ([]Member, error)

	PutToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	Tokens(ctx context.Context, user string) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error

	Audit(ctx context.Context, e AuditEntry) error
	AuditLog(ctx context.Context, after int64, limit int) ([]AuditEntry, error)

	// AcquireLease takes or renews the scheduler lease for holder, valid
	// ttlMillis from nowMillis; ok is false while another holder's lease runs.
	AcquireLease(ctx context.Context, holder string, nowMillis, ttlMillis int64) (l Lease, ok bool, err error)
}
