package sched

import "github.com/usine-project/usine/internal/model"

// Snapshot is everything one scheduling pass looks at. Plan never modifies it.
type Snapshot struct {
	// Topology is the compiled form of the cluster (Compile); build it once
	// and reuse it across passes while the node list keeps the same names.
	Topology *Topology
	// Nodes is the cluster's node list, in the order Compile saw it, with
	// their current states (up, drain, down). Nil means "as compiled".
	Nodes []model.Node
	// Partitions with their current down flag. Nil means "as compiled".
	Partitions []model.Partition

	Running []Running   // sorted by job ID
	Pending []model.Job // sorted by job ID

	// Finished holds the final state of ended jobs that pending jobs depend
	// on. A dependency on a job that is neither pending, running nor here
	// is never satisfied.
	Finished map[string]model.JobState

	Projects []model.Project    // the project tree, for fair share
	Usage    map[string]float64 // decayed accelerator-seconds used by each project's own jobs
	QoS      []QoS              // QoS classes; a job naming an unknown one waits with InvalidQOS

	// Grants are the spendable balances. Nil means grants are not enforced
	// (a simulation of a cluster without accounting).
	Grants []Balance

	Config Config
}

// Running is a job that holds accelerators.
type Running struct {
	Job   model.Job
	Start int64
	Alloc []Slot
}

// End is when the job's time limit runs out: the latest it can hold its slots.
func (r *Running) End() int64 { return r.Start + r.Job.Limit }

// Slot is what a job holds on one node. Node indexes Snapshot.Nodes.
type Slot struct {
	Node         int32 `json:"node"`
	Accelerators int   `json:"accelerators"`
	CPUs         int   `json:"cpus,omitempty"`
	MemoryMiB    int64 `json:"memory_mib,omitempty"`
}

// Balance is what a project may still spend of one accelerator class
// (Model "" = any class) at one site (Site "" = any site), in
// accelerator-seconds, holds already deducted.
type Balance struct {
	Project   string
	Model     string
	Site      string
	Remaining int64
}

// Pays says whether b pays for accelerators of class model at site.
func (b *Balance) Pays(model, site string) bool {
	return (b.Model == "" || b.Model == model) && (b.Site == "" || b.Site == site)
}

// QoS is a quality-of-service class.
type QoS struct {
	Name     string
	Priority int // higher runs first; feeds the QoS priority factor
	// MayPreempt lets jobs of this class preempt running jobs of a class with
	// a lower Priority when those jobs are preemptible.
	MayPreempt bool
	// Preemptible makes every job of this class preemptible, whatever the
	// job's own flag says.
	Preemptible bool
	// MaxAcceleratorsPerProject caps what one project may run at once in
	// this class; 0 = no cap.
	MaxAcceleratorsPerProject int
	// MaxLimit caps a job's time limit in this class; 0 = no cap.
	MaxLimit int64
}

// Order is how waiting jobs are ranked.
type Order string

// Orders.
const (
	OrderFIFO        Order = "fifo"        // submit time, then ID
	OrderMultifactor Order = "multifactor" // weighted age, fair share, QoS and size
)

// BackfillMode says whether lower-priority jobs may start ahead of blocked ones.
type BackfillMode string

// Backfill modes.
const (
	BackfillNone BackfillMode = "none" // stop at the first job that cannot start (strict order)
	BackfillEASY BackfillMode = "easy" // reserve for the top blocked job only
	// BackfillConservative reserves for the first Reservations blocked jobs.
	BackfillConservative BackfillMode = "conservative"
)

// Weights of the multifactor priority. Each factor is in [0, 1]; the
// priority is the weighted sum plus the job's own Priority adjustment.
type Weights struct {
	Age       int64 `json:"age"`
	FairShare int64 `json:"fair_share"`
	QoS       int64 `json:"qos"`
	Size      int64 `json:"size"`
}

// Config is the scheduling policy.
type Config struct {
	Name         string       `json:"name"`
	Order        Order        `json:"order"`
	Backfill     BackfillMode `json:"backfill"`
	Reservations int          `json:"reservations"` // conservative mode: how many blocked jobs get one
	Weights      Weights      `json:"weights"`
	MaxAge       int64        `json:"max_age_s"` // age at which the age factor reaches 1
	// FavorSmall inverts the size factor: small jobs rank higher.
	FavorSmall bool `json:"favor_small"`
	Preemption bool `json:"preemption"`
	// Estimates asks for an estimated start time for every waiting job. A
	// simulator's quick passes may turn it off.
	Estimates bool `json:"estimates"`
}

// Reason says why a job waits, with Slurm's names where Slurm has one.
type Reason string

// Pending reasons.
const (
	ReasonNone                     Reason = "None"
	ReasonPriority                 Reason = "Priority"  // higher-priority jobs come first
	ReasonResources                Reason = "Resources" // next in line; waits for accelerators to free
	ReasonTopology                 Reason = "Topology"  // enough accelerators, not inside one block as asked
	ReasonDependency               Reason = "Dependency"
	ReasonDependencyNeverSatisfied Reason = "DependencyNeverSatisfied"
	ReasonBeginTime                Reason = "BeginTime"
	ReasonHeld                     Reason = "JobHeldUser"
	ReasonQoSLimit                 Reason = "QOSMaxGRESPerProject"
	ReasonArrayTaskLimit           Reason = "JobArrayTaskLimit" // its array's %N throttle: N elements run
	ReasonInvalidQoS               Reason = "InvalidQOS"
	ReasonQoSMaxWall               Reason = "QOSMaxWallDurationPerJobLimit"
	ReasonGrantExhausted           Reason = "GrantExhausted"
	ReasonPartitionDown            Reason = "PartitionDown"
	ReasonNodesDown                Reason = "ReqNodeNotAvail" // enough nodes exist, but some are down or drained
	ReasonBadConstraints           Reason = "BadConstraints"  // can never fit on this cluster as described
)

// Start says: start this job now on these slots.
type Start struct {
	JobID string `json:"job"`
	Alloc []Slot `json:"alloc"`
	// Backfilled is true when a higher-priority job was still waiting.
	Backfilled bool `json:"backfilled,omitempty"`
	// Preempts lists the running jobs that must stop first.
	Preempts []string `json:"preempts,omitempty"`
}

// Preempt says: stop this running job and requeue it, to make room for For.
type Preempt struct {
	JobID string `json:"job"`
	For   string `json:"for"`
}

// Wait describes one job that stays pending.
type Wait struct {
	JobID    string `json:"job"`
	Reason   Reason `json:"reason"`
	Priority int64  `json:"priority"`
	// EstStart is when the job is expected to start, or -1 when unknown (it
	// waits on something other than resources, or lies past the horizon).
	EstStart int64 `json:"est_start"`
	// Reserved is set when the job holds a backfill reservation: its
	// accelerators are set aside from EstStart on.
	Reserved    bool   `json:"reserved,omitempty"`
	Reservation []Slot `json:"reservation,omitempty"`
}

// Decisions is what one pass says.
type Decisions struct {
	Starts   []Start   `json:"starts"`   // in the order they were decided
	Preempts []Preempt `json:"preempts"` // victims, in the order they were chosen
	Waiting  []Wait    `json:"waiting"`  // every job not started, in priority order
	Stats    Stats     `json:"stats"`
}

// Stats counts the work of one pass.
type Stats struct {
	Examined   int `json:"examined"`
	Started    int `json:"started"`
	Backfilled int `json:"backfilled"`
	Preempted  int `json:"preempted"`
	Reserved   int `json:"reserved"`
}
