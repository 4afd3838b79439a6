package sim

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/trace"
)

// Input is what to replay: a cluster and a trace.
type Input struct {
	Cluster *model.Cluster
	// Topology is Cluster compiled by sched.Compile; nil compiles it.
	Topology *sched.Topology
	// Records in submit order (as the trace readers return them), each with
	// a time limit: apply trace.ApplyDefaultLimit to records that have none.
	Records []trace.Record
}

// ErrCannotFit is wrapped by the *RecordError of a record whose job could
// never run on the cluster, even were it idle: more accelerators than any
// partition has, more per node than any node has, or a model it lacks.
var ErrCannotFit = errors.New("can never run on this cluster")

// RecordError is a trace record the simulator cannot replay.
type RecordError struct {
	Line  int // line in the trace file; 0 when the record did not come from a file
	Index int // position in Input.Records
	ID    string
	Msg   string // what is wrong and how to fix it
	Err   error  // ErrCannotFit, or nil
}

func (e *RecordError) Error() string {
	where := fmt.Sprintf("record %d", e.Index)
	if e.Line > 0 {
		where = fmt.Sprintf("trace line %d", e.Line)
	}
	return fmt.Sprintf("%s: job %s: %s", where, e.ID, e.Msg)
}

func (e *RecordError) Unwrap() error { return e.Err }

// job states kept per job by a run.
const (
	stWaiting uint8 = iota // not submitted yet
	stPending
	stRunning
	stDone
	stDropped // found impossible during the run and skipped
)

// prep is the input compiled for replay: one compact, pointer-free column
// per job field, in submit order, shared read-only by every policy's run.
// A million jobs take about 70 MB, and the garbage collector need not scan
// them.
type prep struct {
	cluster  *model.Cluster
	topo     *sched.Topology
	capacity int // accelerators of the cluster

	n      int
	ids    string   // every ID, concatenated
	idOff  []uint32 // ID i is ids[idOff[i]:idOff[i+1]]
	line   []int32
	index  []int32 // position in Input.Records
	submit []int64
	run    []int64 // seconds the job holds its accelerators: min(runtime, limit)
	limit  []int64
	final  []uint8 // index into finalStates
	nodes  []int32 // 0: packed
	acc    []int32 // per node for gangs, in total for packed jobs
	proj   []int32 // index into projects
	user   []int32 // index into users
	model  []int16 // index into models; models[0] is "" (any)
	qos    []int16 // index into qoses; qoses[0] is ""
	pre    []bool  // preemptible
	rank   []int32 // position in job-ID order

	projects []string // sorted
	shares   []int64  // per project
	users    []string
	models   []string
	qoses    []string

	skipped    int      // impossible records skipped
	skipErrors []string // the first few of their messages
}

var finalStates = []model.JobState{model.JobCompleted, model.JobFailed, model.JobCancelled, model.JobTimeout}

func stateCode(s string) (uint8, bool) {
	for i, st := range finalStates {
		if string(st) == s {
			return uint8(i), true
		}
	}
	return 0, false
}

func (p *prep) id(i int32) string { return p.ids[p.idOff[i]:p.idOff[i+1]] }

func (p *prep) shape(i int32) shape {
	return shape{model: p.model[i], nodes: p.nodes[i], acc: p.acc[i]}
}

func (p *prep) total(i int32) int {
	if p.nodes[i] > 0 {
		return int(p.nodes[i]) * int(p.acc[i])
	}
	return int(p.acc[i])
}

// job builds job i as the scheduler sees it. The ID is a substring of the
// shared ID buffer: no allocation.
func (p *prep) job(i int32) model.Job {
	j := model.Job{
		ID:          p.id(i),
		Project:     p.projects[p.proj[i]],
		User:        p.users[p.user[i]],
		Model:       p.models[p.model[i]],
		Limit:       p.limit[i],
		Submit:      p.submit[i],
		QoS:         p.qoses[p.qos[i]],
		Preemptible: p.pre[i],
	}
	if p.nodes[i] > 0 {
		j.Nodes, j.AcceleratorsPerNode = int(p.nodes[i]), int(p.acc[i])
	} else {
		j.Accelerators = int(p.acc[i])
	}
	return j
}

// maxSkipErrors is how many messages of skipped records a Result keeps.
const maxSkipErrors = 10

// compile checks and compiles the input.
func compile(in Input, opt *Options) (*prep, error) {
	if in.Cluster == nil {
		return nil, errors.New("simulate: no cluster given")
	}
	topo := in.Topology
	if topo == nil {
		var err error
		if topo, err = sched.Compile(in.Cluster); err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
	}
	if len(topo.Nodes()) != len(in.Cluster.Nodes) {
		return nil, fmt.Errorf("simulate: the topology has %d nodes but cluster %s has %d; compile the cluster given", len(topo.Nodes()), in.Cluster.Name, len(in.Cluster.Nodes))
	}
	recs := in.Records
	if len(recs) == 0 {
		return nil, errors.New("simulate: the trace has no jobs")
	}
	if len(recs) > 1<<31-1 {
		return nil, fmt.Errorf("simulate: %d jobs are more than the simulator handles (2^31-1)", len(recs))
	}
	// Replay in submit order; readers already sort, so this is usually a
	// check.
	order := make([]int32, len(recs))
	for i := range order {
		order[i] = int32(i)
	}
	if !slices.IsSortedFunc(recs, func(a, b trace.Record) int { return cmp.Compare(a.Submit, b.Submit) }) {
		slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(recs[a].Submit, recs[b].Submit) })
	}

	p := &prep{cluster: in.Cluster, topo: topo, capacity: in.Cluster.TotalAccelerators()}
	fit := newFitter(in.Cluster)
	projIdx := map[string]int32{}
	userIdx := map[string]int32{}
	modelIdx := map[string]int16{"": 0}
	p.models = []string{""}
	qosIdx := map[string]int16{"": 0}
	p.qoses = []string{""}
	var ids strings.Builder
	n := len(recs)
	p.idOff = make([]uint32, 1, n+1)
	p.line = make([]int32, 0, n)
	p.index = make([]int32, 0, n)
	p.submit = make([]int64, 0, n)
	p.run = make([]int64, 0, n)
	p.limit = make([]int64, 0, n)
	p.final = make([]uint8, 0, n)
	p.nodes = make([]int32, 0, n)
	p.acc = make([]int32, 0, n)
	p.proj = make([]int32, 0, n)
	p.user = make([]int32, 0, n)
	p.model = make([]int16, 0, n)
	p.qos = make([]int16, 0, n)
	p.pre = make([]bool, 0, n)
	for _, k := range order {
		r := &recs[k]
		bad := func(err error, format string, args ...any) error {
			return &RecordError{Line: r.Line, Index: int(k), ID: r.ID, Msg: fmt.Sprintf(format, args...), Err: err}
		}
		switch {
		case r.ID == "":
			return nil, bad(nil, "has no ID; give every job an ID")
		case r.Project == "":
			return nil, bad(nil, "has no project; give every job a project")
		case r.Submit < 0:
			return nil, bad(nil, "submit time %d is negative; give seconds from the trace start", r.Submit)
		case r.Runtime <= 0:
			return nil, bad(nil, "run time %d is not positive; a job runs at least 1 second", r.Runtime)
		case r.Limit == 0:
			return nil, bad(nil, "has no time limit; apply trace.ApplyDefaultLimit to the records first")
		case r.Limit < 0:
			return nil, bad(nil, "time limit %d is negative", r.Limit)
		case r.Accelerators < 0 || r.Nodes < 0:
			return nil, bad(nil, "%d accelerators on %d nodes; give counts of 0 or more", r.Accelerators, r.Nodes)
		case r.Nodes > 0 && r.Accelerators%r.Nodes != 0:
			return nil, bad(nil, "%d nodes do not divide %d accelerators; give a node count that divides it, or 0 to pack", r.Nodes, r.Accelerators)
		case r.Accelerators > 1<<30 || r.Nodes > 1<<30:
			return nil, bad(nil, "%d accelerators on %d nodes is beyond any cluster", r.Accelerators, r.Nodes)
		}
		st, ok := stateCode(r.State)
		if !ok {
			return nil, bad(nil, "state %q is not one of %s", r.State, strings.Join(trace.States(), ", "))
		}
		per := r.Accelerators
		if r.Nodes > 0 {
			per = r.Accelerators / r.Nodes
		}
		if why := fit.check(r.Model, r.Nodes, per); why != "" {
			err := bad(ErrCannotFit, "%s %s; fix the trace, simulate a larger cluster, or skip such jobs (usine sim --skip-bad)", ErrCannotFit, why)
			if !opt.SkipImpossible {
				return nil, err
			}
			p.skipped++
			if len(p.skipErrors) < maxSkipErrors {
				p.skipErrors = append(p.skipErrors, err.Error())
			}
			continue
		}
		ids.WriteString(r.ID)
		if ids.Len() > 1<<32-1 {
			return nil, errors.New("simulate: the job IDs take more than 4 GiB")
		}
		p.idOff = append(p.idOff, uint32(ids.Len()))
		p.line = append(p.line, int32(min(r.Line, 1<<31-1)))
		p.index = append(p.index, k)
		p.submit = append(p.submit, r.Submit)
		run, _ := r.Outcome()
		if r.Runtime > r.Limit {
			st, _ = stateCode(trace.StateTimeout)
		}
		p.run = append(p.run, run)
		p.limit = append(p.limit, r.Limit)
		p.final = append(p.final, st)
		p.nodes = append(p.nodes, int32(r.Nodes))
		p.acc = append(p.acc, int32(per))
		pi, ok := projIdx[r.Project]
		if !ok {
			pi = int32(len(projIdx))
			projIdx[r.Project] = pi
		}
		p.proj = append(p.proj, pi)
		ui, ok := userIdx[r.User]
		if !ok {
			ui = int32(len(p.users))
			userIdx[r.User] = ui
			p.users = append(p.users, r.User)
		}
		p.user = append(p.user, ui)
		mi, ok := modelIdx[r.Model]
		if !ok {
			if len(p.models) >= 1<<15 {
				return nil, bad(nil, "more than 32,767 accelerator models")
			}
			mi = int16(len(p.models))
			modelIdx[r.Model] = mi
			p.models = append(p.models, r.Model)
		}
		p.model = append(p.model, mi)
		q, pre := "", false
		if opt.Classify != nil {
			q, pre = opt.Classify(r)
		}
		qi, ok := qosIdx[q]
		if !ok {
			if len(p.qoses) >= 1<<15 {
				return nil, bad(nil, "more than 32,767 QoS classes")
			}
			qi = int16(len(p.qoses))
			qosIdx[q] = qi
			p.qoses = append(p.qoses, q)
		}
		p.qos = append(p.qos, qi)
		p.pre = append(p.pre, pre)
	}
	p.ids = ids.String()
	p.n = len(p.submit)
	if p.n == 0 {
		return nil, fmt.Errorf("simulate: none of the %d jobs can run on cluster %s (%d skipped); first: %s", len(recs), in.Cluster.Name, p.skipped, p.skipErrors[0])
	}

	// Projects sorted by name, so that everything downstream is in a stable
	// order; job columns are renumbered to match.
	p.projects = make([]string, 0, len(projIdx))
	for name := range projIdx {
		p.projects = append(p.projects, name)
	}
	slices.Sort(p.projects)
	renum := make([]int32, len(p.projects))
	for k, name := range p.projects {
		renum[projIdx[name]] = int32(k)
	}
	for i := range p.proj {
		p.proj[i] = renum[p.proj[i]]
	}
	p.shares = make([]int64, len(p.projects))
	for k, name := range p.projects {
		p.shares[k] = 1
		if s, ok := opt.Shares[name]; ok {
			if s <= 0 {
				return nil, fmt.Errorf("simulate: project %s has %d shares; give a positive number", name, s)
			}
			p.shares[k] = s
		}
	}

	// Rank every job by ID: the scheduler's snapshot keeps its jobs sorted
	// by ID, and integer ranks make keeping them so cheap. Duplicates show
	// up as neighbours.
	byID := make([]int32, p.n)
	for i := range byID {
		byID[i] = int32(i)
	}
	slices.SortFunc(byID, func(a, b int32) int { return strings.Compare(p.id(a), p.id(b)) })
	p.rank = make([]int32, p.n)
	for k, i := range byID {
		p.rank[i] = int32(k)
		if k > 0 && p.id(byID[k-1]) == p.id(i) {
			a, b := min(byID[k-1], i), max(byID[k-1], i)
			return nil, &RecordError{Line: int(p.line[b]), Index: int(p.index[b]), ID: p.id(b),
				Msg: fmt.Sprintf("the ID is used twice (also %s); give every job its own ID", where(int(p.line[a]), int(p.index[a])))}
		}
	}
	return p, nil
}

func where(line, index int) string {
	if line > 0 {
		return fmt.Sprintf("trace line %d", line)
	}
	return fmt.Sprintf("record %d", index)
}

// fitter says whether a job shape could ever run on the cluster, were it
// idle. It mirrors how the scheduler places: a gang needs Nodes nodes with
// the accelerators it asks per node; a packed job fits on one node, or
// takes whole nodes of the partition's largest kind and puts the rest on
// one more.
type fitter struct {
	cluster string
	parts   []partFit
}

type partFit struct {
	name   string
	model  string
	accs   []int // accelerators of each node, descending
	maxAcc int
}

func newFitter(c *model.Cluster) *fitter {
	f := &fitter{cluster: c.Name}
	idx := map[string]int{}
	for _, p := range c.Partitions {
		idx[p.Name] = len(f.parts)
		f.parts = append(f.parts, partFit{name: p.Name, model: p.Model})
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		k, ok := idx[n.Partition]
		if !ok {
			continue
		}
		f.parts[k].accs = append(f.parts[k].accs, n.Accelerators)
	}
	for k := range f.parts {
		slices.SortFunc(f.parts[k].accs, func(a, b int) int { return cmp.Compare(b, a) })
		if len(f.parts[k].accs) > 0 {
			f.parts[k].maxAcc = f.parts[k].accs[0]
		}
	}
	return f
}

// atLeast counts the nodes of p with at least a accelerators.
func (p *partFit) atLeast(a int) int {
	n, _ := slices.BinarySearchFunc(p.accs, a, func(x, a int) int {
		if x >= a {
			return -1
		}
		return 1
	})
	return n
}

// check returns "" when a job of this shape fits some partition, or why it
// never can.
func (f *fitter) check(mdl string, nodes, per int) string {
	eligible := 0
	best := 0 // the most nodes (gang) or accelerators (packed) a partition offers
	for k := range f.parts {
		p := &f.parts[k]
		if mdl != "" && p.model != mdl {
			continue
		}
		if per > 0 && p.model == "" {
			continue
		}
		eligible++
		switch {
		case nodes > 0:
			n := p.atLeast(per)
			if n >= nodes {
				return ""
			}
			best = max(best, n)
		case per <= p.maxAcc:
			return ""
		default:
			full, rest := per/p.maxAcc, per%p.maxAcc
			if p.atLeast(p.maxAcc) >= full && (rest == 0 || p.atLeast(rest) > full) {
				return ""
			}
			sum := 0
			for _, a := range p.accs {
				if a == p.maxAcc {
					sum += a
				}
			}
			best = max(best, sum)
		}
	}
	in := ""
	if mdl != "" {
		in = " of model " + mdl
	}
	switch {
	case eligible == 0 && mdl != "":
		return fmt.Sprintf("(it asks for accelerator model %s, which no partition of cluster %s has)", mdl, f.cluster)
	case eligible == 0:
		return fmt.Sprintf("(cluster %s has no accelerators)", f.cluster)
	case nodes > 0:
		return fmt.Sprintf("(it asks for %d nodes with %d accelerators each; no partition%s of cluster %s has more than %d such nodes)", nodes, per, in, f.cluster, best)
	}
	return fmt.Sprintf("(it asks for %d accelerators; no partition%s of cluster %s holds more than %d)", per, in, f.cluster, best)
}
