package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// Run replays the input under one policy.
func Run(ctx context.Context, in Input, cfg sched.Config, opt Options) (*Result, error) {
	rs, err := RunAll(ctx, in, []sched.Config{cfg}, opt)
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// RunAll replays the same input under each policy, one goroutine per
// policy, and returns the results in the order of cfgs. The first policy to
// fail stops the others.
func RunAll(ctx context.Context, in Input, cfgs []sched.Config, opt Options) ([]*Result, error) {
	return runAll(ctx, in, cfgs, opt, nil)
}

// planFunc is sched.Plan's signature; tests swap in faulty planners to
// prove the simulator's own checks. Nil gives each policy its own
// sched.Planner, which keeps its memory between passes.
type planFunc func(*sched.Snapshot, int64) *sched.Decisions

func runAll(ctx context.Context, in Input, cfgs []sched.Config, opt Options, plan planFunc) ([]*Result, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("simulate: no policy given")
	}
	seen := map[string]bool{}
	for _, c := range cfgs {
		if seen[c.Name] {
			return nil, fmt.Errorf("simulate: policy %q is given twice; name each policy once", c.Name)
		}
		seen[c.Name] = true
	}
	set, err := resolve(&opt)
	if err != nil {
		return nil, err
	}
	p, err := compile(in, &opt)
	if err != nil {
		return nil, err
	}
	events, err := nodeEvents(p.topo, opt.NodeEvents)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]*Result, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for k := range cfgs {
		wg.Go(func() {
			plan := plan
			if plan == nil {
				plan = sched.NewPlanner(p.topo).Plan
			}
			r := newRunner(p, cfgs[k], &opt, set, k, events, plan)
			res, err := r.run(ctx)
			if err != nil {
				errs[k] = fmt.Errorf("simulate policy %s: %w", cfgs[k].Name, err)
				cancel()
				return
			}
			results[k] = res
		})
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	// Report the error that stopped the others, not their cancellations.
	var first error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return results, nil
}

// nodeEvents checks the scripted node events and resolves their nodes.
func nodeEvents(t *sched.Topology, evs []NodeEvent) ([]nodeEvent, error) {
	out := make([]nodeEvent, 0, len(evs))
	for k, e := range evs {
		i := t.NodeIndex(e.Node)
		if i < 0 {
			return nil, fmt.Errorf("simulate: node event %d names node %q, which the cluster does not have", k, e.Node)
		}
		if e.At < 0 {
			return nil, fmt.Errorf("simulate: node event %d for %s is at %d; give seconds from the trace start", k, e.Node, e.At)
		}
		out = append(out, nodeEvent{at: e.At, node: i, up: e.Up, seq: int64(k)})
	}
	return out, nil
}

const never = math.MaxInt64

// Kinds of change that make a pass worth running.
const (
	chSubmit  uint8 = 1 << iota // fresh jobs arrived
	chEnd                       // jobs ended and freed accelerators
	chRequeue                   // jobs went back to the queue
	chNodeUp                    // nodes came back
)

// runner replays one policy.
type runner struct {
	p     *prep
	set   settings
	opt   *Options
	index int
	plan  planFunc

	// The policy, as full passes and quick passes run it. Quick passes
	// start jobs in strict priority order, as Slurm's main scheduler does;
	// full passes are the policy itself. Neither asks for estimated start
	// times, which never change what a pass decides.
	full, quick sched.Config
	quickIsFull bool // the policy has no backfill: both kinds are the same
	// fifo: the order is time-invariant (submit time, then ID), so a pass
	// over an unchanged state decides nothing new.
	fifo bool
	// elidable: a strict pass after fresh submits alone, while a job is
	// blocked for resources, cannot start anything (see pass).
	elidable bool
	// preemptive: passes may stop running jobs to start others, so a job
	// may start without free room.
	preemptive bool
	room       *room
	forceReal  bool // the next pass asks the scheduler, whatever room says
	askedStuck bool // a forced pass found nothing to do since the last event

	now int64

	// Per job, in submit order.
	status     []uint8
	epoch      []uint32 // bumped at every start and stop: stale events and entries are ignored
	firstStart []int64
	end        []int64
	startAt    []int64 // start of the current (or last) run
	starts     []int32
	done       []int64                // seconds of run time saved by checkpoints
	alloc      map[int32][]sched.Slot // slots of running jobs

	next                          int32 // next job to submit
	nPending, nRunning, nDone     int
	dropped                       int
	dropErrors                    []string
	preemptions, failRequeues     int
	lostAccSeconds                int64
	passes, fullPasses, planCalls int

	// The scheduler's view, sorted by job ID (rank). Jobs that joined the
	// queue since the last pass wait in added; jobs started by the last
	// pass in newRun; both are merged in at the next pass.
	pending []model.Job
	pendIdx []int32
	added   []int32
	running []sched.Running
	runIdx  []int32
	runEp   []uint32
	newRun  []sched.Running
	newIdx  []int32
	newEp   []uint32
	// Spare buffers the merges write into, swapped each pass.
	pendBuf    []model.Job
	pendIdxBuf []int32
	runBuf     []sched.Running
	runIdxBuf  []int32
	runEpBuf   []uint32
	perm       []int32
	runDirty   bool

	finishes minHeap[finish]
	nodeEv   minHeap[nodeEvent]
	rng      *rand.Rand
	nextFail int64

	nodes   []model.Node // current states
	altered int          // nodes whose state differs from the compiled one
	free    []res        // what is free on each node, for the checks

	lastPass, lastFull int64
	changed            bool // since the last pass
	changedSinceFull   bool
	kinds              uint8 // what changed since the last pass
	quickAt            int64
	blocked            bool // the last pass left a job blocked for resources
	firstWait          sched.Wait

	busy     int64     // accelerators held now
	projUse  []float64 // decayed usage, as of projT
	projAcc  []int64   // accelerators held now
	projT    []int64
	projAccS []int64 // accelerator-seconds held, all told
	// decayD is the usage decay over decayDT seconds, the last one computed.
	decayDT int64
	decayD  float64
	// contended counts the seconds during which jobs waited; projects
	// account what they held then against it, lazily (projContT).
	contended    int64
	projContAccS []int64
	projContT    []int64
	usage        map[string]float64
	projects     []model.Project
	tl           timeline
	progressN    int // report progress when nDone reaches it

	snap sched.Snapshot
}

// res is what a node offers or a slot takes. A node declaring 0 CPUs or
// 0 memory does not limit them, as in the scheduler.
type res struct {
	acc, cpu int64
	mem      int64
}

func newRunner(p *prep, cfg sched.Config, opt *Options, set settings, index int, events []nodeEvent, plan planFunc) *runner {
	r := &runner{p: p, set: set, opt: opt, index: index, plan: plan}
	r.full = cfg
	r.full.Estimates = false
	r.quick = r.full
	r.quick.Backfill = sched.BackfillNone
	r.quickIsFull = cfg.Backfill == sched.BackfillNone
	r.fifo = cfg.Order != sched.OrderMultifactor
	r.preemptive = cfg.Preemption && anyMayPreempt(opt.QoS)
	r.elidable = r.fifo && !r.preemptive

	n := p.n
	r.status = make([]uint8, n)
	r.epoch = make([]uint32, n)
	r.firstStart = make([]int64, n)
	r.end = make([]int64, n)
	r.startAt = make([]int64, n)
	r.starts = make([]int32, n)
	r.done = make([]int64, n)
	for i := range r.firstStart {
		r.firstStart[i] = -1
	}
	r.alloc = map[int32][]sched.Slot{}

	nodes := p.topo.Nodes()
	r.nodes = slices.Clone(nodes)
	r.free = make([]res, len(nodes))
	for i := range nodes {
		r.free[i] = res{int64(nodes[i].Accelerators), int64(nodes[i].CPUs), nodes[i].MemoryMiB}
	}
	r.nodeEv = minHeap[nodeEvent](slices.Clone(events))
	r.nodeEv.init()
	r.room = newRoom(p.topo, r.nodes)
	r.nextFail = never
	if set.failPerSecond > 0 && len(nodes) > 0 {
		r.rng = rand.New(rand.NewPCG(opt.Seed, 0x7573696e652d6661)) // "usine-fa"
		r.nextFail = p.submit[0] + r.failGap()
	}

	np := len(p.projects)
	r.projUse = make([]float64, np)
	r.projAcc = make([]int64, np)
	r.projT = make([]int64, np)
	r.projAccS = make([]int64, np)
	r.projContAccS = make([]int64, np)
	r.projContT = make([]int64, np)
	r.usage = make(map[string]float64, np)
	r.projects = make([]model.Project, np)
	for k, name := range p.projects {
		r.projects[k] = model.Project{Name: name, Shares: p.shares[k]}
		r.projT[k] = p.submit[0]
	}

	r.lastPass = math.MinInt64 / 4
	r.lastFull = math.MinInt64 / 4
	r.quickAt = never
	r.tl = newTimeline(p.submit[0])
	r.progressN = progressStep(n)
	r.snap = sched.Snapshot{
		Topology: p.topo,
		Projects: r.projects,
		Usage:    r.usage,
		QoS:      opt.QoS,
	}
	return r
}

func anyMayPreempt(qs []sched.QoS) bool {
	for _, q := range qs {
		if q.MayPreempt {
			return true
		}
	}
	return false
}

func progressStep(n int) int { return max(1, min(n/200, 4096)) }

// failGap draws the time to the next random node failure anywhere.
func (r *runner) failGap() int64 {
	rate := r.set.failPerSecond * float64(len(r.nodes))
	return max(1, int64(math.Ceil(r.rng.ExpFloat64()/rate)))
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	for loops := 0; ; loops++ {
		if loops%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		t := r.nextTime()
		if t == never && r.nPending > 0 && !r.askedStuck {
			// Before calling the replay stuck, ask the scheduler itself:
			// it may drop jobs that can never run.
			r.askedStuck, r.forceReal = true, true
			if err := r.pass(true); err != nil {
				return nil, fmt.Errorf("pass at %ds: %w", r.now, err)
			}
			continue
		}
		if t == never {
			break
		}
		r.askedStuck = false
		if t < r.now {
			return nil, fmt.Errorf("internal error: the clock would go back from %ds to %ds", r.now, t)
		}
		r.advance(t)
		if err := r.endsAt(t); err != nil {
			return nil, err
		}
		if err := r.nodesAt(t); err != nil {
			return nil, err
		}
		r.submitsAt(t)
		if at, full := r.passAt(); at == t {
			if err := r.pass(full); err != nil {
				return nil, fmt.Errorf("pass at %ds: %w", t, err)
			}
		}
		if r.opt.Progress != nil && r.nDone >= r.progressN {
			r.progressN = r.nDone + progressStep(r.p.n)
			r.opt.Progress(Progress{Policy: r.full.Name, Index: r.index, Done: r.nDone, Total: r.p.n - r.dropped, Now: r.now})
		}
	}
	if left := r.p.n - r.dropped - r.nDone; left > 0 {
		w := r.firstWait
		line := ""
		if i := r.jobIndex(w.JobID); i >= 0 {
			line = " (" + where(int(r.p.line[i]), int(r.p.index[i])) + ")"
		}
		return nil, fmt.Errorf("stuck at %ds: %d jobs wait, none runs and nothing is due to change; the first, job %s%s, waits with reason %s: are nodes down for good, or a partition closed?",
			r.now, left, w.JobID, line, w.Reason)
	}
	if r.opt.Progress != nil {
		r.opt.Progress(Progress{Policy: r.full.Name, Index: r.index, Done: r.nDone, Total: r.p.n - r.dropped, Now: r.now})
	}
	return r.result(), nil
}

// jobIndex finds a job by ID among the waiting ones, or returns -1.
func (r *runner) jobIndex(id string) int32 {
	if k, ok := r.findPending(id); ok {
		return r.pendIdx[k]
	}
	return -1
}

// nextTime is when the next thing happens.
func (r *runner) nextTime() int64 {
	t := int64(never)
	if int(r.next) < r.p.n {
		t = r.p.submit[r.next]
	}
	t = min(t, r.nextEnd())
	if r.workLeft() {
		if len(r.nodeEv) > 0 {
			t = min(t, r.nodeEv[0].at)
		}
		t = min(t, r.nextFail)
	}
	at, _ := r.passAt()
	return min(t, at)
}

func (r *runner) workLeft() bool { return int(r.next) < r.p.n || r.nRunning > 0 || r.nPending > 0 }

// nextEnd is when the next running job ends, dropping stale entries.
func (r *runner) nextEnd() int64 {
	for len(r.finishes) > 0 {
		f := r.finishes[0]
		if r.status[f.job] == stRunning && r.epoch[f.job] == f.epoch {
			return f.at
		}
		r.finishes.pop()
	}
	return never
}

// passAt says when the next pass is due, and whether it is a full one.
//
// A quick pass follows a batch of changes, at most one per pass interval.
// A full pass runs every backfill interval while jobs wait and something
// changed since the last one: over an unchanged state, a FIFO pass decides
// nothing new, and a multifactor pass could only reorder waiting jobs as
// their age and fair share drift — it frees nothing. Slurm would run it;
// the simulator waits for the next event, which keeps long quiet stretches
// cheap.
func (r *runner) passAt() (int64, bool) {
	if r.nPending == 0 {
		return never, false
	}
	q := int64(never)
	if r.changed {
		q = max(r.quickAt, r.now)
	}
	if r.quickIsFull {
		return q, true
	}
	f := int64(never)
	if r.changedSinceFull {
		f = max(r.lastFull+r.set.backfillInterval, r.now)
	}
	if f <= q {
		return f, true
	}
	return q, false
}

func (r *runner) markChanged(kind uint8) {
	if !r.changed {
		r.changed = true
		r.quickAt = max(r.now, r.lastPass+r.set.passInterval)
	}
	r.kinds |= kind
	r.changedSinceFull = true
}

// advance moves the clock to t, accounting the time in between.
func (r *runner) advance(t int64) {
	r.tl.advance(t, r.busy, int64(r.nPending))
	if r.nPending > 0 {
		r.contended += t - r.now
	}
	r.now = t
}

// endsAt ends the jobs due at t.
func (r *runner) endsAt(t int64) error {
	for r.nextEnd() == t {
		f := r.finishes.pop()
		i := f.job
		r.release(i)
		r.status[i] = stDone
		r.end[i] = t
		r.nDone++
		r.markChanged(chEnd)
	}
	return nil
}

// release frees what running job i holds.
func (r *runner) release(i int32) {
	slots := r.alloc[i]
	delete(r.alloc, i)
	for _, sl := range slots {
		f := &r.free[sl.Node]
		up := r.nodes[sl.Node].State == model.NodeUp
		r.room.move(sl.Node, f.acc, f.acc+int64(sl.Accelerators), up, up)
		f.acc += int64(sl.Accelerators)
		f.cpu += int64(sl.CPUs)
		f.mem += sl.MemoryMiB
	}
	acc := int64(r.p.total(i))
	held := acc * (r.now - r.startAt[i])
	pj := r.p.proj[i]
	r.accrue(pj)
	r.projAcc[pj] -= acc
	r.projAccS[pj] += held
	r.busy -= acc
	r.nRunning--
	r.runDirty = true
}

// requeue stops running job i and puts it back in the queue with its
// original submit time; the work it did since its last checkpoint is lost.
func (r *runner) requeue(i int32) {
	ran := r.now - r.startAt[i]
	saved := int64(0)
	if c := r.set.checkpoint; c > 0 {
		saved = ran / c * c
	}
	r.done[i] += saved
	r.lostAccSeconds += int64(r.p.total(i)) * (ran - saved)
	r.release(i)
	r.status[i] = stPending
	r.epoch[i]++
	r.added = append(r.added, i)
	r.nPending++
	r.room.add(r.p.shape(i), 1)
}

// nodesAt applies node failures and repairs due at t.
func (r *runner) nodesAt(t int64) error {
	if !r.workLeft() {
		return nil
	}
	for len(r.nodeEv) > 0 && r.nodeEv[0].at == t {
		e := r.nodeEv.pop()
		if e.up {
			r.repair(e.node)
		} else if err := r.fail(e.node); err != nil {
			return err
		}
	}
	for r.nextFail == t {
		i := int32(r.rng.IntN(len(r.nodes)))
		if r.nodes[i].State == model.NodeUp {
			if err := r.fail(i); err != nil {
				return err
			}
			r.nodeEv.push(nodeEvent{at: t + r.set.repair, node: i, up: true, seq: math.MaxInt64})
		}
		r.nextFail = t + r.failGap()
	}
	return nil
}

// MaxStarts bounds how often node failures may stop one job: a large gang
// on failure-prone nodes without checkpoints may never finish, and the
// replay would never end.
const MaxStarts = 100

func (r *runner) fail(node int32) error {
	if r.nodes[node].State == model.NodeDown {
		return nil
	}
	r.setState(node, model.NodeDown)
	var victims []int32
	visit := func(idx []int32, ep []uint32) {
		for k, i := range idx {
			if r.status[i] != stRunning || r.epoch[i] != ep[k] {
				continue
			}
			for _, sl := range r.alloc[i] {
				if sl.Node == node {
					victims = append(victims, i)
					break
				}
			}
		}
	}
	visit(r.runIdx, r.runEp)
	visit(r.newIdx, r.newEp)
	for _, i := range victims {
		if r.starts[i] >= MaxStarts {
			return fmt.Errorf("at %ds node %s fails under job %s (%s), which has started %d times: failures stop it faster than it can finish; lower the failure rate or set a checkpoint interval",
				r.now, r.nodes[node].Name, r.p.id(i), where(int(r.p.line[i]), int(r.p.index[i])), r.starts[i])
		}
		r.requeue(i)
		r.failRequeues++
	}
	if len(victims) > 0 {
		r.markChanged(chRequeue)
	}
	return nil
}

// setState changes a node's state, counting the nodes that differ from the
// compiled cluster.
func (r *runner) setState(node int32, st model.NodeState) {
	compiled := r.p.topo.Nodes()[node].State
	was := r.nodes[node].State
	if was != compiled {
		r.altered--
	}
	f := r.free[node].acc
	r.room.move(node, f, f, was == model.NodeUp, st == model.NodeUp)
	r.nodes[node].State = st
	if st != compiled {
		r.altered++
	}
}

func (r *runner) repair(node int32) {
	if r.nodes[node].State == model.NodeUp {
		return
	}
	r.setState(node, model.NodeUp)
	r.markChanged(chNodeUp)
}

// submitsAt queues the jobs submitted at t.
func (r *runner) submitsAt(t int64) {
	for int(r.next) < r.p.n && r.p.submit[r.next] == t {
		i := r.next
		r.next++
		r.status[i] = stPending
		r.added = append(r.added, i)
		r.nPending++
		r.room.add(r.p.shape(i), 1)
		r.markChanged(chSubmit)
	}
}

// pass runs one scheduling pass and applies its decisions.
//
// Some passes are known to decide nothing, and the scheduler is not asked:
//   - no waiting job has room to start, even alone (see room), and no
//     policy may preempt;
//   - a strict-order pass (quick, or fifo's) follows fresh submits alone,
//     the order is FIFO and the last pass left a job blocked for
//     resources: that job still blocks (nothing was freed), every fresh
//     job ranks behind it, and the pass stops at it.
//
// Such a pass still counts and still sets the clock of the next ones, so
// the replay is exactly the one asking would give (Options.everyPass
// checks it).
func (r *runner) pass(full bool) error {
	strict := !full || r.quickIsFull
	submitsOnly := r.elidable && r.blocked && r.kinds == chSubmit && strict
	r.passes++
	r.lastPass = r.now
	r.changed, r.kinds, r.quickAt = false, 0, never
	if full {
		r.fullPasses++
		r.lastFull = r.now
		r.changedSinceFull = false
	}
	if !r.opt.everyPass && !r.forceReal {
		if submitsOnly {
			return nil // blocked, firstWait: as they were
		}
		if !r.preemptive && !r.room.mayFit(r.p.models) {
			r.blocked = false // unknown; false only ever costs a pass
			return nil
		}
	}
	r.forceReal = false
	r.planCalls++
	r.mergePending()
	r.mergeRunning()
	if !r.fifo {
		r.refreshUsage() // only the multifactor order reads usage
	}
	s := &r.snap
	s.Running, s.Pending = r.running, r.pending
	// While every node is as compiled, say so: the planner then skips
	// reading every node's state.
	s.Nodes = nil
	if r.altered > 0 {
		s.Nodes = r.nodes
	}
	s.Config = r.quick
	if full {
		s.Config = r.full
	}
	dec := r.plan(s, r.now)
	if dec == nil {
		return errors.New("the scheduler returned no decisions")
	}
	for _, pe := range dec.Preempts {
		k, ok := r.findRunning(pe.JobID)
		if !ok {
			return fmt.Errorf("the scheduler preempts job %s, which is not running", pe.JobID)
		}
		r.requeue(r.runIdx[k])
		r.preemptions++
	}
	for k := range dec.Starts {
		if err := r.start(&dec.Starts[k]); err != nil {
			return err
		}
	}
	r.blocked = false
	r.firstWait = sched.Wait{}
	if len(dec.Waiting) > 0 {
		r.firstWait = dec.Waiting[0]
	}
	for _, w := range dec.Waiting {
		switch w.Reason {
		case sched.ReasonResources, sched.ReasonTopology, sched.ReasonNodesDown:
			r.blocked = true
		case sched.ReasonBadConstraints:
			if err := r.drop(w.JobID); err != nil {
				return err
			}
		}
	}
	r.compactPending()
	return nil
}

// drop removes a waiting job the scheduler finds can never run.
func (r *runner) drop(id string) error {
	k, ok := r.findPending(id)
	if !ok || r.status[r.pendIdx[k]] != stPending {
		return nil // started or dropped already; Start checks catch the rest
	}
	i := r.pendIdx[k]
	err := &RecordError{Line: int(r.p.line[i]), Index: int(r.p.index[i]), ID: id, Err: ErrCannotFit,
		Msg: fmt.Sprintf("%s: the scheduler says %s; fix the trace or skip such jobs (usine sim --skip-bad)", ErrCannotFit, sched.ReasonBadConstraints)}
	if !r.opt.SkipImpossible {
		return err
	}
	r.status[i] = stDropped
	r.nPending--
	r.room.add(r.p.shape(i), -1)
	r.dropped++
	if len(r.dropErrors) < maxSkipErrors {
		r.dropErrors = append(r.dropErrors, err.Error())
	}
	return nil
}

func (r *runner) findPending(id string) (int, bool) {
	return slices.BinarySearchFunc(r.pending, id, func(j model.Job, id string) int { return strings.Compare(j.ID, id) })
}

func (r *runner) findRunning(id string) (int, bool) {
	k, ok := slices.BinarySearchFunc(r.running, id, func(x sched.Running, id string) int { return strings.Compare(x.Job.ID, id) })
	if !ok {
		return k, false
	}
	i := r.runIdx[k]
	return k, r.status[i] == stRunning && r.epoch[i] == r.runEp[k]
}

// start checks one start decision against the cluster and applies it.
func (r *runner) start(st *sched.Start) error {
	k, ok := r.findPending(st.JobID)
	if !ok {
		return fmt.Errorf("the scheduler starts job %s, which is not waiting", st.JobID)
	}
	i := r.pendIdx[k]
	if r.status[i] != stPending {
		return fmt.Errorf("the scheduler starts job %s, which is not waiting (started twice in one pass?)", st.JobID)
	}
	if err := r.checkAlloc(i, st.Alloc); err != nil {
		return fmt.Errorf("start of job %s: %w", st.JobID, err)
	}
	for _, sl := range st.Alloc {
		f := &r.free[sl.Node]
		r.room.move(sl.Node, f.acc, f.acc-int64(sl.Accelerators), true, true) // checked up
		f.acc -= int64(sl.Accelerators)
		f.cpu -= int64(sl.CPUs)
		f.mem -= sl.MemoryMiB
	}
	r.room.add(r.p.shape(i), -1)
	acc := int64(r.p.total(i))
	pj := r.p.proj[i]
	r.accrue(pj)
	r.projAcc[pj] += acc
	r.busy += acc
	r.status[i] = stRunning
	r.epoch[i]++
	r.startAt[i] = r.now
	if r.firstStart[i] < 0 {
		r.firstStart[i] = r.now
	}
	r.starts[i]++
	r.alloc[i] = st.Alloc
	r.finishes.push(finish{at: r.now + r.p.run[i] - r.done[i], job: i, epoch: r.epoch[i]})
	r.newRun = append(r.newRun, sched.Running{Job: r.pending[k], Start: r.now, Alloc: st.Alloc})
	r.newIdx = append(r.newIdx, i)
	r.newEp = append(r.newEp, r.epoch[i])
	r.runDirty = true
	r.nPending--
	r.nRunning++
	return nil
}

// checkAlloc proves that slots are a valid home for job i now: nodes that
// exist, are up and in an open partition of the right model, one slot a
// node, the job's shape, and no accelerator (or CPU, or memory) that is
// already taken.
func (r *runner) checkAlloc(i int32, slots []sched.Slot) error {
	p := r.p
	parts := p.topo.Partitions()
	total := 0
	for k, sl := range slots {
		if sl.Node < 0 || int(sl.Node) >= len(r.nodes) {
			return fmt.Errorf("slot on node index %d, outside the cluster's %d nodes", sl.Node, len(r.nodes))
		}
		n := &r.nodes[sl.Node]
		if n.State != model.NodeUp {
			return fmt.Errorf("slot on node %s, which is %s", n.Name, n.State)
		}
		for _, pt := range parts {
			if pt.Name == n.Partition && pt.Down {
				return fmt.Errorf("slot on node %s in partition %s, which is closed", n.Name, pt.Name)
			}
		}
		if m := p.models[p.model[i]]; m != "" && n.Model != m {
			return fmt.Errorf("slot on node %s of model %s; the job asks for %s", n.Name, n.Model, m)
		}
		for _, prev := range slots[:k] {
			if prev.Node == sl.Node {
				return fmt.Errorf("two slots on node %s", n.Name)
			}
		}
		if sl.Accelerators < 0 || sl.CPUs < 0 || sl.MemoryMiB < 0 {
			return fmt.Errorf("negative slot on node %s", n.Name)
		}
		f := r.free[sl.Node]
		if int64(sl.Accelerators) > f.acc {
			return fmt.Errorf("%d accelerators on node %s, which has %d of %d free: accelerators given twice",
				sl.Accelerators, n.Name, f.acc, n.Accelerators)
		}
		if n.CPUs > 0 && int64(sl.CPUs) > f.cpu {
			return fmt.Errorf("%d CPUs on node %s, which has %d free: CPUs given twice", sl.CPUs, n.Name, f.cpu)
		}
		if n.MemoryMiB > 0 && sl.MemoryMiB > f.mem {
			return fmt.Errorf("%d MiB on node %s, which has %d MiB free: memory given twice", sl.MemoryMiB, n.Name, f.mem)
		}
		if p.nodes[i] > 0 && sl.Accelerators != int(p.acc[i]) {
			return fmt.Errorf("%d accelerators on node %s; the gang asks for %d on each node", sl.Accelerators, n.Name, p.acc[i])
		}
		total += sl.Accelerators
	}
	if p.nodes[i] > 0 && len(slots) != int(p.nodes[i]) {
		return fmt.Errorf("%d nodes; the gang asks for %d", len(slots), p.nodes[i])
	}
	if total != p.total(i) {
		return fmt.Errorf("%d accelerators; the job asks for %d", total, p.total(i))
	}
	if len(slots) == 0 {
		return errors.New("no slots")
	}
	return nil
}

// mergePending merges the jobs that joined the queue since the last pass
// into the ID-sorted pending list.
func (r *runner) mergePending() {
	if len(r.added) == 0 {
		return
	}
	rank := r.p.rank
	slices.SortFunc(r.added, func(a, b int32) int { return cmp.Compare(rank[a], rank[b]) })
	out, outIdx := r.pendBuf[:0], r.pendIdxBuf[:0]
	a := r.added
	k := 0
	for n, i := range r.pendIdx {
		for k < len(a) && rank[a[k]] < rank[i] {
			out, outIdx = append(out, r.p.job(a[k])), append(outIdx, a[k])
			k++
		}
		out, outIdx = append(out, r.pending[n]), append(outIdx, i)
	}
	for ; k < len(a); k++ {
		out, outIdx = append(out, r.p.job(a[k])), append(outIdx, a[k])
	}
	r.pendBuf, r.pendIdxBuf = r.pending, r.pendIdx
	r.pending, r.pendIdx = out, outIdx
	r.added = r.added[:0]
}

// compactPending drops the jobs that left the queue in this pass.
func (r *runner) compactPending() {
	w := 0
	for n, i := range r.pendIdx {
		if r.status[i] != stPending {
			continue
		}
		if w != n {
			r.pending[w] = r.pending[n]
			r.pendIdx[w] = i
		}
		w++
	}
	clear(r.pending[w:])
	r.pending, r.pendIdx = r.pending[:w], r.pendIdx[:w]
}

// mergeRunning drops ended jobs from the ID-sorted running list and merges
// in the jobs the last pass started.
func (r *runner) mergeRunning() {
	if !r.runDirty {
		return
	}
	r.runDirty = false
	rank := r.p.rank
	perm := r.perm[:0]
	for k := range r.newIdx {
		perm = append(perm, int32(k))
	}
	slices.SortFunc(perm, func(a, b int32) int { return cmp.Compare(rank[r.newIdx[a]], rank[r.newIdx[b]]) })
	r.perm = perm
	live := func(i int32, ep uint32) bool { return r.status[i] == stRunning && r.epoch[i] == ep }
	out, outIdx, outEp := r.runBuf[:0], r.runIdxBuf[:0], r.runEpBuf[:0]
	k := 0
	takeNew := func() {
		x := perm[k]
		k++
		if live(r.newIdx[x], r.newEp[x]) {
			out, outIdx, outEp = append(out, r.newRun[x]), append(outIdx, r.newIdx[x]), append(outEp, r.newEp[x])
		}
	}
	for n, i := range r.runIdx {
		for k < len(perm) && rank[r.newIdx[perm[k]]] < rank[i] {
			takeNew()
		}
		if live(i, r.runEp[n]) {
			out, outIdx, outEp = append(out, r.running[n]), append(outIdx, i), append(outEp, r.runEp[n])
		}
	}
	for k < len(perm) {
		takeNew()
	}
	clear(r.running) // drop references to ended jobs' slots
	r.runBuf, r.runIdxBuf, r.runEpBuf = r.running[:0], r.runIdx[:0], r.runEp[:0]
	r.running, r.runIdx, r.runEp = out, outIdx, outEp
	clear(r.newRun)
	r.newRun, r.newIdx, r.newEp = r.newRun[:0], r.newIdx[:0], r.newEp[:0]
}

// accrue brings project pj's decayed usage up to now: between changes its
// held accelerators a are constant, and usage u obeys du/dt = a − λu.
// It also accounts what the project held while jobs waited.
func (r *runner) accrue(pj int32) {
	r.projContAccS[pj] += r.projAcc[pj] * (r.contended - r.projContT[pj])
	r.projContT[pj] = r.contended
	dt := r.now - r.projT[pj]
	if dt <= 0 {
		return
	}
	// Projects brought up to date together share their dt: one Exp for all.
	if dt != r.decayDT {
		r.decayDT, r.decayD = dt, math.Exp(-r.set.decay*float64(dt))
	}
	d := r.decayD
	r.projUse[pj] = r.projUse[pj]*d + float64(r.projAcc[pj])*(1-d)/r.set.decay
	r.projT[pj] = r.now
}

// refreshUsage brings every project's usage up to now for the snapshot.
func (r *runner) refreshUsage() {
	for pj, name := range r.p.projects {
		r.accrue(int32(pj))
		r.usage[name] = r.projUse[pj]
	}
}

// finish is a job's end, valid while the job's epoch is unchanged.
type finish struct {
	at    int64
	job   int32
	epoch uint32
}

func (f finish) before(o finish) bool {
	if f.at != o.at {
		return f.at < o.at
	}
	return f.job < o.job
}

// minHeap is a binary min-heap on a slice. Written out rather than through
// container/heap to keep a million pushes free of interface conversions.
type minHeap[T interface{ before(T) bool }] []T

func (h *minHeap[T]) push(x T) {
	*h = append(*h, x)
	s := *h
	for c := len(s) - 1; c > 0; {
		p := (c - 1) / 2
		if !s[c].before(s[p]) {
			break
		}
		s[c], s[p] = s[p], s[c]
		c = p
	}
}

func (h *minHeap[T]) pop() T {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for c := 0; ; {
		l := 2*c + 1
		if l >= len(s) {
			break
		}
		m := l
		if l+1 < len(s) && s[l+1].before(s[l]) {
			m = l + 1
		}
		if !s[m].before(s[c]) {
			break
		}
		s[c], s[m] = s[m], s[c]
		c = m
	}
	*h = s
	return top
}

// init orders h; a sorted slice is a heap.
func (h minHeap[T]) init() {
	slices.SortFunc(h, func(a, b T) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	})
}

// nodeEvent fails or repairs a node; seq keeps scripted events in their
// given order at equal times, and puts generated repairs after them.
type nodeEvent struct {
	at   int64
	node int32
	up   bool
	seq  int64
}

func (e nodeEvent) before(o nodeEvent) bool {
	if e.at != o.at {
		return e.at < o.at
	}
	if e.seq != o.seq {
		return e.seq < o.seq
	}
	return e.node < o.node
}
