package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/store"
)

// Loop is the scheduler loop. Every replica runs one and follows the
// store's change feed, so that any replica can answer "when would this
// start"; only the replica holding the scheduler lease plans and commits.
//
// A pass: follow the changes since the last revision seen, build a
// snapshot from the in-memory view, call sched.Planner.Plan, commit the
// starts and preemptions with store.Apply under the lease (a conflict means
// the state moved on: follow again and plan again), record the waiting
// jobs' reasons, and tell the watchers (the agents' dispatch) what changed.
// Passes run when woken (a submit, a cancel, a node change; bursts
// coalesce into one pass) and every BackfillInterval as a full pass that
// also reloads the cluster. Every pass backfills. Estimating every waiting
// job's start takes longer than deciding, so the full pass's estimates are
// made apart, on a copy of the snapshot and without the loop's lock: a
// start is never held up behind them.
type Loop struct {
	s      *Server
	holder string
	wake   chan struct{}
	nodes  atomic.Bool // the node list changed: reload it
	parts  atomic.Pointer[[]model.Partition]

	mu       sync.Mutex // guards everything below against readers
	v        view
	planner  *sched.Planner
	leader   bool
	lease    store.Lease
	renewed  time.Time
	lastFull time.Time
	// lastWaits is when quick passes last wrote waiting jobs' reasons.
	lastWaits time.Time
	state     LoopState
	watchers  []func(store.Job)
	loaders   []func(rev int64, running []store.Job)

	// estMu serialises estimates; estimator is their own planner.
	estMu      sync.Mutex
	estimator  *sched.Planner
	estimating atomic.Bool
	bg         sync.WaitGroup
}

// view is the loop's in-memory copy of what the scheduler looks at.
type view struct {
	loaded   bool
	rev      int64
	topo     *sched.Topology
	nodes    []store.Node // sorted by name, as compiled
	parts    []model.Partition
	index    map[string]int32
	projects []model.Project
	jobs     map[string]*entry // pending and running
	order    []*entry          // the same jobs, sorted by ID, as sched.Snapshot wants them
	finals   map[string]model.JobState
	waits    map[string]store.WaitInfo // as last written
	usage    map[string]float64        // decayed accelerator-seconds per project
	decayed  int64                     // when usage was last decayed
	// pending and running are the last snapshot's slices, reused.
	pending []model.Job
	running []sched.Running
}

// entry is a job in the view. Its slots are those of its allocation,
// kept from pass to pass while the allocation stays the same: the planner
// recognises an unchanged allocation by its slice and skips it.
type entry struct {
	store.Job
	slots []sched.Slot // nil until a snapshot needs them
}

// insert adds a job to the view's sorted order.
func (v *view) insert(e *entry) {
	i, _ := slices.BinarySearchFunc(v.order, e.ID, func(o *entry, id string) int { return strings.Compare(o.ID, id) })
	v.order = slices.Insert(v.order, i, e)
}

// remove takes a job out of the view.
func (v *view) remove(id string) {
	delete(v.jobs, id)
	if i, ok := slices.BinarySearchFunc(v.order, id, func(o *entry, id string) int { return strings.Compare(o.ID, id) }); ok {
		v.order = slices.Delete(v.order, i, i+1)
	}
}

// LoopState is what GET /scheduler shows.
type LoopState struct {
	Leader      bool          `json:"leader"`
	Holder      string        `json:"holder"`
	Term        int64         `json:"term"`
	Rev         int64         `json:"rev"`
	Pending     int           `json:"pending"`
	Running     int           `json:"running"`
	Passes      int64         `json:"passes"`
	LastPass    time.Duration `json:"last_pass_ns"`
	LastStats   sched.Stats   `json:"last_stats"`
	Conflicts   int64         `json:"conflicts"`
	TopologyErr string        `json:"topology_error,omitempty"`
}

// halfLife of fair-share usage.
const halfLife = 7 * 24 * 3600

func newLoop(s *Server) *Loop {
	holder := s.cfg.Name
	if holder == "" {
		h, _ := os.Hostname()
		// The random part tells apart replicas that share a host name and
		// a process ID (containers, where every server is PID 1; or servers
		// in one process, as in tests): each must hold the lease alone.
		var b [3]byte
		_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
		holder = fmt.Sprintf("%s:%d:%x", h, os.Getpid(), b)
	}
	return &Loop{s: s, holder: holder, wake: make(chan struct{}, 1)}
}

// Wake asks for a pass soon. It never blocks.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// NodesChanged asks the next pass to reload nodes and partitions.
func (l *Loop) NodesChanged() {
	l.nodes.Store(true)
	l.Wake()
}

// Watch registers fn to hear of every job change the loop sees, in
// revision order, from the loop's goroutine: fn must not block.
func (l *Loop) Watch(fn func(store.Job)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watchers = append(l.watchers, fn)
}

// OnLoad registers fn to hear, when the loop loads its view, the jobs that
// ran at revision rev; the changes after rev then come to the watchers. A
// watcher that starts from what fn hears misses nothing the loop sees,
// which one that read the store itself at another moment could.
func (l *Loop) OnLoad(fn func(rev int64, running []store.Job)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loaders = append(l.loaders, fn)
}

// Partitions are the partitions as the loop last read them (nil before
// its first pass). The caller must not modify them.
func (l *Loop) Partitions() []model.Partition {
	if p := l.parts.Load(); p != nil {
		return *p
	}
	return nil
}

// IsLeader reports whether this replica holds the scheduler lease.
func (l *Loop) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader
}

// State reports the loop's state.
func (l *Loop) State() LoopState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state
	st.Leader, st.Holder, st.Term, st.Rev = l.leader, l.holder, l.lease.Term, l.v.rev
	st.Pending, st.Running = 0, 0
	for _, j := range l.v.jobs {
		if j.State == model.JobRunning {
			st.Running++
		} else {
			st.Pending++
		}
	}
	return st
}

// Run runs passes until ctx ends. Errors from the store are logged and
// retried with back-off; Run returns only when ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	defer l.bg.Wait()
	backoff := 100 * time.Millisecond
	for {
		full := l.s.now().Sub(l.fullAt()) >= l.s.cfg.BackfillInterval
		err := l.contained(func() error { return l.decide(ctx, full) })
		ended := time.Now()
		if ctx.Err() != nil {
			l.release()
			return nil
		}
		if err == nil && full {
			l.setFull()
			if l.IsLeader() && l.estimating.CompareAndSwap(false, true) {
				l.bg.Add(1)
				go func() {
					defer l.bg.Done()
					defer l.estimating.Store(false)
					if err := l.contained(func() error { return l.estimate(ctx) }); err != nil && ctx.Err() == nil {
						l.s.log.Error("estimate waiting jobs' starts", "err", err)
					}
				}()
			}
		}
		wait := l.s.cfg.LeaseTTL / 3
		if err != nil {
			l.s.log.Error("scheduler pass failed", "err", err)
			wait, backoff = backoff, min(2*backoff, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
			if l.IsLeader() {
				wait = min(wait, time.Until(l.fullAt().Add(l.s.cfg.BackfillInterval)))
			} else {
				wait = min(wait, time.Second) // followers keep up with the feed
			}
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			l.release()
			return nil
		case <-l.wake:
			t.Stop()
			// Let a burst gather: rest until as long as the last pass
			// took has gone by since it ended, so the loop keeps at most
			// half a core busy under a storm of submits and each pass
			// takes in more of them, while a wake after a quiet spell
			// gets a pass at once.
			rest := time.NewTimer(max(l.lastPass()-time.Since(ended), 0))
			select {
			case <-ctx.Done():
				rest.Stop()
				l.release()
				return nil
			case <-rest.C:
			}
		case <-t.C:
		}
	}
}

func (l *Loop) lastPass() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state.LastPass
}

// release gives the lease up on a clean stop, so another replica takes
// over at once instead of after the TTL.
func (l *Loop) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leader {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := l.s.store.AcquireLease(ctx, l.holder, l.s.now().UnixMilli(), 0); err != nil {
		l.s.log.Warn("give up the scheduler lease", "err", err)
	}
	l.leader = false
	l.s.metrics.leader.Set(0)
}

// contained runs a pass, turning a panic (a scheduler bug) into an error
// with its stack: the pass fails and is retried with back-off from a view
// and planners built afresh, while the API goes on serving, so that jobs
// can still be listed and cancelled.
func (l *Loop) contained(pass func() error) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err = fmt.Errorf("scheduler pass panicked: %v\n%s", r, debug.Stack())
		l.mu.Lock()
		l.v, l.planner = view{}, nil
		l.mu.Unlock()
		l.estMu.Lock()
		l.estimator = nil
		l.estMu.Unlock()
	}()
	return pass()
}

// Pass runs one pass now; a full pass also reloads the cluster and
// estimates every waiting job's start before it returns.
func (l *Loop) Pass(ctx context.Context, full bool) error {
	if err := l.decide(ctx, full); err != nil {
		return err
	}
	if full {
		l.setFull()
		return l.estimate(ctx)
	}
	return nil
}

// fullAt is when the last full pass began.
func (l *Loop) fullAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastFull
}

func (l *Loop) setFull() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastFull = l.s.now()
}

// decide runs one pass that starts and preempts jobs and records why the
// others wait; full reloads the cluster first.
func (l *Loop) decide(ctx context.Context, full bool) error {
	start := time.Now()
	if err := l.renew(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := l.sync(ctx, full); err != nil {
			return err
		}
		if !l.leader || l.v.topo == nil {
			return nil
		}
		err := l.plan(ctx)
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			l.state.Conflicts++
			l.s.metrics.conflicts.Inc()
			continue
		}
		if errors.Is(err, store.ErrNotLeader) {
			l.leader = false
			l.s.metrics.leader.Set(0)
			l.s.log.Warn("lost the scheduler lease during a pass", "holder", l.holder)
			return nil
		}
		if err != nil {
			return err
		}
		break
	}
	d := time.Since(start)
	l.state.Passes++
	l.state.LastPass = d
	l.s.metrics.pass.WithLabelValues("quick").Observe(d.Seconds())
	return nil
}

// estimate runs a full pass with estimates on a copy of the view, without
// the loop's lock, and records every waiting job's priority and estimated
// start. Its decisions are not committed: the next pass makes them.
func (l *Loop) estimate(ctx context.Context) error {
	l.estMu.Lock()
	defer l.estMu.Unlock()
	start := time.Now()
	l.mu.Lock()
	if !l.leader || l.v.topo == nil {
		l.mu.Unlock()
		return nil
	}
	snap := l.detachedSnapshot()
	if l.estimator == nil {
		l.estimator = sched.NewPlanner(snap.Topology)
	}
	now := l.s.now()
	l.mu.Unlock()

	d := l.estimator.Plan(snap, now.Unix())

	l.mu.Lock()
	changed := l.changedWaits(d.Waiting, true)
	l.mu.Unlock()
	if len(changed) > 0 {
		if err := l.s.store.SetWaiting(ctx, changed); err != nil {
			l.mu.Lock()
			for _, w := range changed {
				delete(l.v.waits, w.ID) // write it next time
			}
			l.mu.Unlock()
			return fmt.Errorf("record %d waiting jobs: %w", len(changed), err)
		}
	}
	l.s.metrics.pass.WithLabelValues("full").Observe(time.Since(start).Seconds())
	return nil
}

// renew takes or renews the lease every third of its TTL.
func (l *Loop) renew(ctx context.Context) error {
	now := l.s.now()
	l.mu.Lock()
	due := now.Sub(l.renewed) >= l.s.cfg.LeaseTTL/3
	l.mu.Unlock()
	if !due {
		return nil
	}
	lease, ok, err := l.s.store.AcquireLease(ctx, l.holder, now.UnixMilli(), l.s.cfg.LeaseTTL.Milliseconds())
	if err != nil {
		return fmt.Errorf("scheduler lease: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewed = now
	if ok && (!l.leader || lease.Term != l.lease.Term) {
		l.s.log.Info("this replica now schedules", "holder", l.holder, "term", lease.Term)
		l.planner = nil
	}
	if !ok && l.leader {
		l.s.log.Warn("another replica took the scheduler lease", "holder", lease.Holder, "term", lease.Term)
	}
	l.leader, l.lease = ok, lease
	l.s.metrics.leader.Set(map[bool]float64{true: 1}[ok])
	return nil
}

// sync brings the view up to date with the store.
func (l *Loop) sync(ctx context.Context, full bool) error {
	st := l.s.store
	if !l.v.loaded {
		rev, err := st.Rev(ctx)
		if err != nil {
			return fmt.Errorf("read store revision: %w", err)
		}
		v := view{rev: rev, jobs: map[string]*entry{}, finals: map[string]model.JobState{},
			waits: map[string]store.WaitInfo{}, usage: map[string]float64{}, decayed: l.s.now().Unix()}
		for after := ""; ; {
			page, err := st.Jobs(ctx, store.JobFilter{States: []model.JobState{model.JobPending, model.JobRunning}, After: after, Limit: 5000})
			if err != nil {
				return fmt.Errorf("load jobs: %w", err)
			}
			for _, j := range page {
				e := &entry{Job: j}
				v.jobs[j.ID] = e
				v.order = append(v.order, e)
				if j.State == model.JobPending {
					v.waits[j.ID] = store.WaitInfo{ID: j.ID, Reason: j.Reason, Priority: j.Priority, EstStart: j.EstStart}
				}
			}
			if len(page) < 5000 {
				break
			}
			after = page[len(page)-1].ID
		}
		slices.SortFunc(v.order, func(a, b *entry) int { return strings.Compare(a.ID, b.ID) })
		l.v = v
		l.nodes.Store(true)
		l.v.loaded = true
		var running []store.Job
		for _, e := range v.order {
			if e.State == model.JobRunning {
				running = append(running, e.Job)
			}
		}
		for _, fn := range l.loaders {
			fn(rev, running)
		}
	}
	if l.nodes.Swap(false) || full || l.v.topo == nil {
		if err := l.loadCluster(ctx); err != nil {
			return err
		}
	}
	if full {
		l.pruneFinals()
	}
	for {
		page, err := st.ChangedJobs(ctx, l.v.rev, 5000)
		if err != nil {
			return fmt.Errorf("follow job changes after revision %d: %w", l.v.rev, err)
		}
		for i := range page {
			l.v.rev = max(l.v.rev, page[i].Rev)
			l.apply(page[i])
		}
		if len(page) < 5000 {
			break
		}
	}
	return l.loadFinals(ctx)
}

// apply takes one changed job into the view. It leaves the feed's cursor
// alone: a job changed by our own Apply may carry a revision beyond others
// not read yet.
func (l *Loop) apply(j store.Job) {
	v := &l.v
	old := v.jobs[j.ID]
	if old != nil && old.Rev > j.Rev {
		return // the view already has a newer change (from Apply)
	}
	switch {
	case j.State.Final():
		if old != nil {
			v.remove(j.ID)
		}
		delete(v.waits, j.ID)
		v.finals[j.ID] = j.State
		if j.Start > 0 && j.End > j.Start {
			l.decay(j.End)
			v.usage[j.Project] += float64(j.TotalAccelerators()) * float64(j.End-j.Start)
		}
	case old == nil:
		e := &entry{Job: j}
		v.jobs[j.ID] = e
		v.insert(e)
		delete(v.finals, j.ID)
	default:
		if !slices.Equal(old.Alloc, j.Alloc) {
			old.slots = nil
		}
		old.Job = j
		delete(v.finals, j.ID)
	}
	for _, fn := range l.watchers {
		fn(j)
	}
}

// decay brings fair-share usage to time t.
func (l *Loop) decay(t int64) {
	v := &l.v
	if t <= v.decayed {
		return
	}
	f := math.Exp2(-float64(t-v.decayed) / halfLife)
	for p := range v.usage {
		v.usage[p] *= f
	}
	v.decayed = t
}

// loadCluster reloads nodes, partitions, sites and projects, and
// recompiles the topology when they changed.
func (l *Loop) loadCluster(ctx context.Context) error {
	st := l.s.store
	nodes, err := st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("load nodes: %w", err)
	}
	parts, err := st.Partitions(ctx)
	if err != nil {
		return fmt.Errorf("load partitions: %w", err)
	}
	sites, err := st.Sites(ctx)
	if err != nil {
		return fmt.Errorf("load sites: %w", err)
	}
	if l.v.projects, err = st.Projects(ctx); err != nil {
		return fmt.Errorf("load projects: %w", err)
	}
	if len(nodes) == 0 {
		// A new factory, before its first agent registers: nothing to
		// schedule on, and nothing wrong.
		if l.state.TopologyErr == "" {
			l.s.log.Info("no nodes yet: jobs wait until agents register theirs")
		}
		l.state.TopologyErr = "no nodes yet: start agents (usine agent) or declare nodes"
		return nil
	}
	slices.SortFunc(nodes, func(a, b store.Node) int { return strings.Compare(a.Name, b.Name) })
	same := l.v.topo != nil && len(nodes) == len(l.v.nodes)
	for i := 0; same && i < len(nodes); i++ {
		same = nodes[i].Node == l.v.nodes[i].Node
	}
	if same && slices.Equal(parts, l.v.parts) {
		l.v.nodes = nodes
		return nil
	}
	c := &model.Cluster{Name: "factory", Sites: sites, Partitions: parts, Accelerators: map[string]model.Accelerator{}}
	for _, p := range parts {
		c.Accelerators[p.Model] = model.Accelerator{Model: p.Model} // the scheduler needs only the name
	}
	for _, n := range nodes {
		c.Nodes = append(c.Nodes, n.Node)
	}
	topo, err := sched.Compile(c)
	if err != nil {
		l.state.TopologyErr = err.Error()
		l.s.log.Error("the cluster as declared does not compile; scheduling keeps the last good one", "err", err)
		return nil
	}
	l.state.TopologyErr = ""
	l.v.topo, l.v.nodes, l.planner = topo, nodes, nil
	l.v.parts = parts
	l.parts.Store(&parts)
	l.v.index = make(map[string]int32, len(nodes))
	for i, n := range nodes {
		l.v.index[n.Name] = int32(i)
	}
	for _, e := range l.v.order {
		e.slots = nil // node indexes changed
	}
	return nil
}

// pruneFinals forgets the final states no waiting job depends on, so the
// view does not grow with every job that ever ended; loadFinals reads back
// any that a later job names.
func (l *Loop) pruneFinals() {
	named := map[string]bool{}
	for _, e := range l.v.order {
		for _, d := range e.Deps {
			named[d.JobID] = true
		}
	}
	for id := range l.v.finals {
		if !named[id] {
			delete(l.v.finals, id)
		}
	}
}

// loadFinals makes sure the final state of every job a pending job depends
// on is known, reading the store for those the view has not seen end.
func (l *Loop) loadFinals(ctx context.Context) error {
	var missing []string
	for _, j := range l.v.order {
		for _, d := range j.Deps {
			if _, ok := l.v.jobs[d.JobID]; ok {
				continue
			}
			if _, ok := l.v.finals[d.JobID]; !ok && !slices.Contains(missing, d.JobID) {
				missing = append(missing, d.JobID)
			}
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), 500)
		js, err := l.s.store.Jobs(ctx, store.JobFilter{IDs: missing[:n], Limit: n})
		if err != nil {
			return fmt.Errorf("load dependencies: %w", err)
		}
		for _, j := range js {
			if j.State.Final() {
				l.v.finals[j.ID] = j.State
			}
		}
		missing = missing[n:]
	}
	return nil
}

// snapshot builds what sched.Plan reads from the view.
func (l *Loop) snapshot(full bool) *sched.Snapshot {
	v := &l.v
	cfg := l.s.cfg.Policy
	cfg.Estimates = full
	s := &sched.Snapshot{Topology: v.topo, Finished: v.finals, Projects: v.projects, QoS: l.s.cfg.QoS, Config: cfg}
	l.s.grantFeed(s) // balances and fair-share entitlements from grants (grants.go)
	l.decay(l.s.now().Unix())
	s.Usage = v.usage
	pending, running := v.pending[:0], v.running[:0]
	for _, e := range v.order {
		if e.State == model.JobPending {
			pending = append(pending, e.Job.Job)
			continue
		}
		if e.slots == nil {
			e.slots = make([]sched.Slot, 0, len(e.Alloc))
			for _, a := range e.Alloc {
				if i, ok := v.index[a.Node]; ok {
					e.slots = append(e.slots, sched.Slot{Node: i, Accelerators: a.Accelerators, CPUs: a.CPUs, MemoryMiB: a.MemoryMiB})
				}
			}
		}
		running = append(running, sched.Running{Job: e.Job.Job, Start: e.Start, Alloc: e.slots})
	}
	v.pending, v.running = pending, running
	s.Pending, s.Running = pending, running
	return s
}

// detachedSnapshot is a snapshot with estimates that owns its slices and
// maps, for a pass that runs without the loop's lock. The caller holds it.
func (l *Loop) detachedSnapshot() *sched.Snapshot {
	snap := l.snapshot(true)
	snap.Pending, snap.Running = slices.Clone(snap.Pending), slices.Clone(snap.Running)
	snap.Finished, snap.Usage = maps.Clone(snap.Finished), maps.Clone(snap.Usage)
	return snap
}

// plan runs one pass over the view and commits its decisions.
func (l *Loop) plan(ctx context.Context) error {
	snap := l.snapshot(false)
	if l.planner == nil {
		l.planner = sched.NewPlanner(l.v.topo)
	}
	now := l.s.now()
	d := l.planner.Plan(snap, now.Unix())
	l.state.LastStats = d.Stats
	l.s.metrics.examined.Observe(float64(d.Stats.Examined))
	l.s.metrics.started.Observe(float64(d.Stats.Started))
	if len(d.Starts) > 0 || len(d.Preempts) > 0 {
		dec := store.Decisions{Time: now.Unix()}
		for _, p := range d.Preempts {
			j := l.v.jobs[p.JobID]
			dec.Requeues = append(dec.Requeues, store.Requeue{ID: p.JobID, Epoch: j.Epoch, Reason: "preempted by job " + p.For})
		}
		for _, st := range d.Starts {
			j := l.v.jobs[st.JobID]
			sj := store.StartJob{ID: st.JobID, Rev: j.Rev, Start: now.Unix(), Alloc: make([]store.Alloc, len(st.Alloc))}
			for i, sl := range st.Alloc {
				sj.Alloc[i] = store.Alloc{Node: l.v.nodes[sl.Node].Name, Accelerators: sl.Accelerators, CPUs: sl.CPUs, MemoryMiB: sl.MemoryMiB}
			}
			dec.Starts = append(dec.Starts, sj)
		}
		dec.Events = decisionEvents(dec)
		changed, err := l.s.applyGranted(ctx, l.lease, &dec, d) // refused starts wait GrantExhausted
		if err != nil {
			return fmt.Errorf("commit %d starts and %d preemptions: %w", len(dec.Starts), len(dec.Requeues), err)
		}
		for _, j := range changed {
			l.apply(j)
		}
		l.s.metrics.decisions.WithLabelValues("start").Add(float64(len(dec.Starts)))
		l.s.metrics.decisions.WithLabelValues("preempt").Add(float64(len(dec.Requeues)))
	}
	return l.recordWaits(ctx, d.Waiting)
}

// decisionEvents gives a started or preempted event for each decision.
func decisionEvents(dec store.Decisions) []store.Event {
	ev := make([]store.Event, 0, len(dec.Starts)+len(dec.Requeues))
	for _, r := range dec.Requeues {
		ev = append(ev, store.Event{Job: r.ID, Time: dec.Time, Kind: "preempted", Detail: r.Reason})
	}
	for _, s := range dec.Starts {
		names := make([]string, len(s.Alloc))
		for i, a := range s.Alloc {
			names[i] = a.Node
		}
		ev = append(ev, store.Event{Job: s.ID, Time: dec.Time, Kind: "started", Detail: "on " + strings.Join(names, ",")})
	}
	return ev
}

// recordWaits writes the waiting jobs whose reason changed, at most once
// a second: a storm of submits must not cost one transaction per pass.
func (l *Loop) recordWaits(ctx context.Context, waits []sched.Wait) error {
	now := l.s.now()
	if now.Sub(l.lastWaits) < time.Second {
		return nil
	}
	changed := l.changedWaits(waits, false)
	if len(changed) == 0 {
		return nil
	}
	l.lastWaits = now
	if err := l.s.store.SetWaiting(ctx, changed); err != nil {
		for _, w := range changed {
			delete(l.v.waits, w.ID) // write it next time
		}
		return fmt.Errorf("record %d waiting jobs: %w", len(changed), err)
	}
	return nil
}

// changedWaits lists the waits that differ from what was last written
// and notes them as written; estimates (from a full pass) also bring new
// priorities and estimated starts. Jobs that no longer wait are skipped.
func (l *Loop) changedWaits(waits []sched.Wait, estimates bool) []store.WaitInfo {
	var changed []store.WaitInfo
	for _, w := range waits {
		if e := l.v.jobs[w.JobID]; e == nil || e.State != model.JobPending {
			continue
		}
		old := l.v.waits[w.JobID]
		nw := store.WaitInfo{ID: w.JobID, Reason: string(w.Reason), Priority: old.Priority, EstStart: old.EstStart}
		if estimates {
			nw.Priority, nw.EstStart = w.Priority, max(w.EstStart, 0)
		}
		if nw != old {
			changed = append(changed, nw)
			l.v.waits[w.JobID] = nw
		}
	}
	return changed
}

// nodeUse is what runs on one node.
type nodeUse struct {
	jobs         []string
	accelerators int
}

// NodeUse reports the running jobs and allocated accelerators per node.
func (l *Loop) NodeUse() map[string]nodeUse {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := map[string]nodeUse{}
	for _, j := range l.v.jobs {
		if j.State != model.JobRunning {
			continue
		}
		for _, a := range j.Alloc {
			u := m[a.Node]
			u.jobs = append(u.jobs, j.ID)
			u.accelerators += a.Accelerators
			m[a.Node] = u
		}
	}
	for _, u := range m {
		slices.Sort(u.jobs)
	}
	return m
}

// estimateID names the hypothetical job of a dry run; it sorts after
// every real ID, so it ties last.
const estimateID = "~estimate"

// Estimate says when job would start if it were submitted now, from a
// full pass over the view with it added. It commits nothing.
func (l *Loop) Estimate(ctx context.Context, job model.Job) (api.Estimate, error) {
	l.mu.Lock()
	if err := l.sync(ctx, false); err != nil {
		l.mu.Unlock()
		return api.Estimate{}, err
	}
	if l.v.topo == nil {
		l.mu.Unlock()
		return api.Estimate{}, fail(503, api.CodeUnavailable, "", "the scheduler has no cluster yet: declare nodes first")
	}
	snap, nodes := l.detachedSnapshot(), l.v.nodes
	l.mu.Unlock()
	// The pass runs off the lock, as estimate's: a dry run never holds
	// up a start.
	job.ID = estimateID
	snap.Pending = append(snap.Pending, job)
	d := sched.Plan(snap, l.s.now().Unix())
	names := func(slots []sched.Slot) []string {
		var out []string
		for _, s := range slots {
			out = append(out, nodes[s.Node].Name)
		}
		return out
	}
	for _, st := range d.Starts {
		if st.JobID == estimateID {
			return api.Estimate{Start: true, EstStart: l.s.now().Unix(), Nodes: names(st.Alloc)}, nil
		}
	}
	for _, w := range d.Waiting {
		if w.JobID == estimateID {
			return api.Estimate{EstStart: max(w.EstStart, 0), Reason: string(w.Reason), Nodes: names(w.Reservation)}, nil
		}
	}
	return api.Estimate{}, fmt.Errorf("estimate: the pass said nothing of the job")
}
