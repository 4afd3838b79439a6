package sched_test

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// checkDecisions fails t with every invariant d breaks. Every scenario plan
// and every property case goes through it.
func checkDecisions(tb testing.TB, s *sched.Snapshot, now int64, d *sched.Decisions) {
	tb.Helper()
	for _, v := range violations(s, now, d) {
		tb.Error(v)
	}
}

// amount is what a node offers or a slot takes; a node declaring 0 CPUs or
// 0 memory does not limit them.
type amount struct {
	acc, cpu int
	mem      int64
}

func nodeCap(n *model.Node) amount {
	c := amount{n.Accelerators, n.CPUs, n.MemoryMiB}
	if c.cpu == 0 {
		c.cpu = math.MaxInt32
	}
	if c.mem == 0 {
		c.mem = math.MaxInt64 / 4
	}
	return c
}

func slotAmount(s sched.Slot) amount { return amount{s.Accelerators, s.CPUs, s.MemoryMiB} }
func (a amount) minus(b amount) amount {
	return amount{a.acc - b.acc, a.cpu - b.cpu, a.mem - b.mem}
}
func (a amount) covers(b amount) bool { return a.acc >= b.acc && a.cpu >= b.cpu && a.mem >= b.mem }

// view gathers what the checks need to know about a snapshot.
type view struct {
	s        *sched.Snapshot
	nodes    []model.Node
	parts    []model.Partition
	partOf   []int // node → partition index
	usable   []bool
	maxAcc   []int // per partition
	qos      map[string]sched.QoS
	pending  map[string]*model.Job
	running  map[string]*sched.Running
	preempts map[string]string // victim → for
}

func newView(s *sched.Snapshot, d *sched.Decisions) *view {
	v := &view{s: s, nodes: s.Nodes, parts: s.Partitions, qos: map[string]sched.QoS{},
		pending: map[string]*model.Job{}, running: map[string]*sched.Running{}, preempts: map[string]string{}}
	if v.nodes == nil {
		v.nodes = s.Topology.Nodes()
	}
	if v.parts == nil {
		v.parts = s.Topology.Partitions()
	}
	v.maxAcc = make([]int, len(v.parts))
	for i := range v.nodes {
		n := &v.nodes[i]
		p := slices.IndexFunc(v.parts, func(p model.Partition) bool { return p.Name == n.Partition })
		v.partOf = append(v.partOf, p)
		v.usable = append(v.usable, n.State == model.NodeUp && !v.parts[p].Down)
		v.maxAcc[p] = max(v.maxAcc[p], n.Accelerators)
	}
	for _, q := range s.QoS {
		v.qos[q.Name] = q
	}
	for i := range s.Pending {
		v.pending[s.Pending[i].ID] = &s.Pending[i]
	}
	for i := range s.Running {
		v.running[s.Running[i].Job.ID] = &s.Running[i]
	}
	if d != nil {
		for _, p := range d.Preempts {
			v.preempts[p.JobID] = p.For
		}
	}
	return v
}

// shapeErr says what is wrong with slots given to (or reserved for) j, or "".
func (v *view) shapeErr(j *model.Job, alloc []sched.Slot) string {
	if len(alloc) == 0 {
		return "no slots"
	}
	seen := map[int32]bool{}
	part := -1
	for _, sl := range alloc {
		if sl.Node < 0 || int(sl.Node) >= len(v.nodes) {
			return fmt.Sprintf("slot on node index %d", sl.Node)
		}
		if seen[sl.Node] {
			return fmt.Sprintf("node %s twice", v.nodes[sl.Node].Name)
		}
		seen[sl.Node] = true
		if !v.usable[sl.Node] {
			n := &v.nodes[sl.Node]
			return fmt.Sprintf("node %s is %s in partition %s (down=%v)", n.Name, n.State, n.Partition, v.parts[v.partOf[sl.Node]].Down)
		}
		if part >= 0 && v.partOf[sl.Node] != part {
			return "slots in two partitions"
		}
		part = v.partOf[sl.Node]
	}
	if j.Exclusive {
		for _, sl := range alloc {
			if n := &v.nodes[sl.Node]; sl.Accelerators != n.Accelerators {
				return fmt.Sprintf("exclusive job takes %d of node %s's %d accelerators; it gets whole nodes", sl.Accelerators, n.Name, n.Accelerators)
			}
		}
	}
	p := v.parts[part]
	if j.Partition != "" && p.Name != j.Partition {
		return fmt.Sprintf("partition %s, job asks for %s", p.Name, j.Partition)
	}
	if j.Model != "" && p.Model != j.Model {
		return fmt.Sprintf("model %s, job asks for %s", p.Model, j.Model)
	}
	if j.Nodes > 0 {
		if len(alloc) != j.Nodes {
			return fmt.Sprintf("gang of %d nodes got %d", j.Nodes, len(alloc))
		}
		per := j.AcceleratorsPerNode
		if j.Exclusive {
			per = v.maxAcc[part]
		}
		for _, sl := range alloc {
			if sl.Accelerators != per || sl.CPUs < j.CPUs || sl.MemoryMiB < j.MemoryMiB {
				return fmt.Sprintf("gang slot %+v, want %d accelerators, %d CPUs, %d MiB a node", sl, per, j.CPUs, j.MemoryMiB)
			}
		}
	} else if !j.Exclusive {
		acc, cpu, mem := 0, 0, int64(0)
		for _, sl := range alloc {
			acc += sl.Accelerators
			cpu += sl.CPUs
			mem += sl.MemoryMiB
		}
		if acc != j.Accelerators {
			return fmt.Sprintf("packed job of %d accelerators got %d", j.Accelerators, acc)
		}
		if cpu < j.CPUs || mem < j.MemoryMiB {
			return fmt.Sprintf("packed job of %d CPUs, %d MiB got %d, %d", j.CPUs, j.MemoryMiB, cpu, mem)
		}
		// As few nodes as possible: in a partition of equal nodes that is
		// the ceiling of accelerators over a node's.
		if m := v.maxAcc[part]; m > 0 && j.Accelerators > 0 && v.uniform(part) {
			if want := (j.Accelerators + m - 1) / m; len(alloc) != want {
				return fmt.Sprintf("packed job of %d accelerators on %d nodes, %d would do", j.Accelerators, len(alloc), want)
			}
		}
	}
	if j.OneBlock {
		b0, _ := v.s.Topology.Block(alloc[0].Node)
		for _, sl := range alloc[1:] {
			if b, _ := v.s.Topology.Block(sl.Node); b != b0 {
				return "one-block job spans blocks " + b0 + " and " + b
			}
		}
	}
	return ""
}

// fitsUsableAcc reports whether some partition j may use has as many
// usable accelerators as j needs.
func (v *view) fitsUsableAcc(j *model.Job) bool {
	acc := make([]int, len(v.parts))
	for i := range v.nodes {
		if v.usable[i] {
			acc[v.partOf[i]] += v.nodes[i].Accelerators
		}
	}
	for p, part := range v.parts {
		if (j.Partition == "" || j.Partition == part.Name) && (j.Model == "" || j.Model == part.Model) && acc[p] >= j.TotalAccelerators() {
			return true
		}
	}
	return false
}

// uniform reports whether every node of partition p is the same shape.
func (v *view) uniform(p int) bool {
	var first *model.Node
	for i := range v.nodes {
		if v.partOf[i] != p {
			continue
		}
		if first == nil {
			first = &v.nodes[i]
		} else if nodeCap(first) != nodeCap(&v.nodes[i]) {
			return false
		}
	}
	return true
}

// blockedReasons are the reasons of a job that could run on this cluster
// but waits for room.
var blockedReasons = []sched.Reason{sched.ReasonResources, sched.ReasonPriority, sched.ReasonTopology, sched.ReasonNodesDown}

// noEstimate are the reasons whose jobs wait on something other than
// room: they never get an estimated start.
var noEstimate = []sched.Reason{sched.ReasonHeld, sched.ReasonDependency, sched.ReasonDependencyNeverSatisfied,
	sched.ReasonInvalidQoS, sched.ReasonQoSMaxWall, sched.ReasonBadConstraints, sched.ReasonPartitionDown,
	sched.ReasonGrantExhausted}

// invariant is one property every plan must have. check returns what is
// wrong, one line per violation.
type invariant struct {
	name  string
	check func(v *view, now int64, d *sched.Decisions) []string
}

// invariants are checked on every plan of every scenario and property case.
var invariants = []invariant{
	{"decided_once", decidedOnce},
	{"preemptions", preemptions},
	{"capacity", capacity},
	{"shapes", shapes},
	{"estimates", estimates},
	{"strict_order_estimates", strictOrderEstimates},
	{"first_k_reserved", firstKReserved},
	{"reservations_hold", reservationsHold},
	{"could_ever_fit", couldEverFit},
	{"waiting_order", waitingOrder},
	{"backfill_flags", backfillFlags},
	{"stats", stats},
}

// violations runs every invariant on d.
func violations(s *sched.Snapshot, now int64, d *sched.Decisions) []string {
	v := newView(s, d)
	var bad []string
	for _, inv := range invariants {
		for _, e := range inv.check(v, now, d) {
			bad = append(bad, inv.name+": "+e)
		}
	}
	return bad
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// decidedOnce: every pending job is started or waits, exactly once, and
// nothing else is.
func decidedOnce(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	seen := map[string]int{}
	for _, st := range d.Starts {
		seen[st.JobID]++
	}
	for _, w := range d.Waiting {
		seen[w.JobID]++
	}
	for _, id := range slices.Sorted(maps.Keys(seen)) {
		if v.pending[id] == nil {
			bad.add("decisions name %s, which is not pending", id)
		} else if n := seen[id]; n != 1 {
			bad.add("job %s appears %d times in starts and waiting", id, n)
		}
	}
	for _, j := range v.s.Pending {
		if seen[j.ID] == 0 {
			bad.add("pending job %s is neither started nor waiting", j.ID)
		}
	}
	return bad
}

// preemptions: only when enabled, by a job whose QoS may preempt, of
// preemptible running jobs of a lower QoS, each once, listed both in
// Decisions.Preempts and in the start they make room for.
func preemptions(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	starts := map[string]*sched.Start{}
	for k := range d.Starts {
		starts[d.Starts[k].JobID] = &d.Starts[k]
	}
	seen := map[string]bool{}
	for _, p := range d.Preempts {
		r := v.running[p.JobID]
		if r == nil {
			bad.add("preempts %s, which does not run", p.JobID)
			continue
		}
		if seen[p.JobID] {
			bad.add("preempts %s twice", p.JobID)
		}
		seen[p.JobID] = true
		st, pj := starts[p.For], v.pending[p.For]
		if st == nil || pj == nil {
			bad.add("preempts %s for %s, which does not start", p.JobID, p.For)
			continue
		}
		if !slices.Contains(st.Preempts, p.JobID) {
			bad.add("preempts %s for %s, whose start does not list it", p.JobID, p.For)
		}
		q, vq := v.qos[pj.QoS], v.qos[r.Job.QoS]
		switch {
		case !v.s.Config.Preemption:
			bad.add("preempts %s though preemption is off", p.JobID)
		case !q.MayPreempt:
			bad.add("%s (QoS %q) preempts %s without MayPreempt", p.For, pj.QoS, p.JobID)
		case q.Priority <= vq.Priority:
			bad.add("%s (QoS %q) preempts %s of QoS %q, not lower", p.For, pj.QoS, p.JobID, r.Job.QoS)
		case !r.Job.Preemptible && !vq.Preemptible:
			bad.add("preempts %s, which is not preemptible", p.JobID)
		}
	}
	for _, st := range d.Starts {
		n := map[string]int{}
		for _, id := range st.Preempts {
			if n[id]++; n[id] == 2 {
				bad.add("start %s lists %s twice among its victims", st.JobID, id)
			}
			if v.preempts[id] != st.JobID {
				bad.add("start %s lists preempted %s, but Preempts says %q", st.JobID, id, v.preempts[id])
			}
		}
	}
	return bad
}

// capacity: what still runs plus what starts fits every node, in
// accelerators, CPUs and memory.
func capacity(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	used := make([]amount, len(v.nodes))
	add := func(ss []sched.Slot) {
		for _, sl := range ss {
			if sl.Node >= 0 && int(sl.Node) < len(used) {
				u := used[sl.Node]
				used[sl.Node] = amount{u.acc + sl.Accelerators, u.cpu + sl.CPUs, u.mem + sl.MemoryMiB}
			}
		}
	}
	for k := range v.s.Running {
		if _, gone := v.preempts[v.s.Running[k].Job.ID]; !gone {
			add(v.s.Running[k].Alloc)
		}
	}
	for _, st := range d.Starts {
		add(st.Alloc)
	}
	for i := range v.nodes {
		if !nodeCap(&v.nodes[i]).covers(used[i]) {
			bad.add("node %s over capacity: %d accelerators, %d CPUs, %d MiB used of %d, %d, %d", v.nodes[i].Name,
				used[i].acc, used[i].cpu, used[i].mem, v.nodes[i].Accelerators, v.nodes[i].CPUs, v.nodes[i].MemoryMiB)
		}
	}
	return bad
}

// shapes: every start gets the shape its job asked for, on usable nodes of
// one partition it may use, and only when it may start now.
func shapes(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	for _, st := range d.Starts {
		j := v.pending[st.JobID]
		if j == nil {
			continue
		}
		if e := v.shapeErr(j, st.Alloc); e != "" {
			bad.add("start %s: %s", st.JobID, e)
		}
		if j.Held || j.Begin > now {
			bad.add("start %s: held or before its begin time", st.JobID)
		}
	}
	return bad
}

// estimates: none in the past, none before a begin time; none for jobs
// that wait on something other than room; one for every job that waits
// for room the usable accelerators could give it.
func estimates(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	for _, w := range d.Waiting {
		j := v.pending[w.JobID]
		if j == nil {
			continue
		}
		if w.EstStart != -1 && w.EstStart < now {
			bad.add("wait %s: estimated start %d before now %d", w.JobID, w.EstStart, now)
		}
		if w.Reason == sched.ReasonBeginTime && w.EstStart >= 0 && w.EstStart < j.Begin {
			bad.add("wait %s: estimated start %d before its begin time %d", w.JobID, w.EstStart, j.Begin)
		}
		if slices.Contains(noEstimate, w.Reason) && w.EstStart != -1 {
			bad.add("wait %s: %s, yet estimated to start at %d", w.JobID, w.Reason, w.EstStart)
		}
		// Behind a blocked job in strict order, one that needs drained
		// nodes back still reads Priority: only jobs the usable
		// accelerators can hold must have an estimate.
		if v.s.Config.Estimates && w.EstStart < 0 && v.fitsUsableAcc(j) &&
			slices.Contains([]sched.Reason{sched.ReasonResources, sched.ReasonPriority, sched.ReasonTopology, sched.ReasonBeginTime}, w.Reason) {
			bad.add("wait %s: %s but no estimated start", w.JobID, w.Reason)
		}
		if w.Reason == sched.ReasonNone || w.Reason == "" {
			bad.add("wait %s without a reason", w.JobID)
		}
	}
	return bad
}

// strictOrderEstimates: without backfill nothing starts before a blocked
// job ahead of it, so no estimate behind one is earlier than its.
func strictOrderEstimates(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	if v.s.Config.Backfill != sched.BackfillNone {
		return nil
	}
	floor, by := int64(-1), ""
	for _, w := range d.Waiting {
		if w.EstStart >= 0 && floor >= 0 && w.EstStart < floor {
			bad.add("wait %s (%s): estimated start %d, before %d when %s, ahead of it in strict order, is estimated to start",
				w.JobID, w.Reason, w.EstStart, floor, by)
		}
		if slices.Contains(blockedReasons, w.Reason) && w.EstStart > floor {
			floor, by = w.EstStart, w.JobID
		}
	}
	return bad
}

// firstKReserved: the first k jobs blocked for room (k = 1 for EASY, the
// configured count for conservative) hold reservations, and no other
// job does; a reservation has the job's shape, on usable nodes, from now
// on.
func firstKReserved(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	cfg := v.s.Config
	k := map[sched.BackfillMode]int{sched.BackfillEASY: 1, sched.BackfillConservative: max(cfg.Reservations, 1)}[cfg.Backfill]
	n := 0
	for _, w := range d.Waiting {
		j := v.pending[w.JobID]
		if j == nil {
			continue
		}
		if w.Reserved {
			if w.EstStart < now {
				bad.add("wait %s: reserved at %d, before now %d", w.JobID, w.EstStart, now)
			}
			if e := v.shapeErr(j, w.Reservation); e != "" {
				bad.add("reservation of %s: %s", w.JobID, e)
			}
		} else if len(w.Reservation) > 0 {
			bad.add("wait %s: reservation slots but not reserved", w.JobID)
		}
		if !slices.Contains([]sched.Reason{sched.ReasonResources, sched.ReasonPriority, sched.ReasonTopology}, w.Reason) {
			if w.Reserved {
				bad.add("wait %s (%s) holds a reservation but does not wait for room", w.JobID, w.Reason)
			}
			continue
		}
		n++
		switch {
		case n <= k && !w.Reserved:
			bad.add("wait %s is blocked job %d of the %d that get reservations (%s backfill), but holds none", w.JobID, n, k, cfg.Backfill)
		case n > k && w.Reserved:
			bad.add("wait %s is blocked job %d, past the %d that get reservations (%s backfill), but holds one", w.JobID, n, k, cfg.Backfill)
		}
	}
	return bad
}

// couldEverFit: a job that waits for room could run on this cluster were
// it idle with every node up; one that waits with BadConstraints could
// not.
func couldEverFit(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	for _, w := range d.Waiting {
		j := v.pending[w.JobID]
		if j == nil {
			continue
		}
		fits, known := v.fitsIdle(j)
		switch {
		case !known:
		case !fits && slices.Contains(blockedReasons, w.Reason):
			bad.add("wait %s (%s) can never fit this cluster: BadConstraints", w.JobID, w.Reason)
		case fits && w.Reason == sched.ReasonBadConstraints:
			bad.add("wait %s (BadConstraints) would fit this cluster idle", w.JobID)
		}
	}
	return bad
}

// waitingOrder: Waiting is in priority order.
func waitingOrder(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	for k := 1; k < len(d.Waiting); k++ {
		a, b := d.Waiting[k-1], d.Waiting[k]
		ja, jb := v.pending[a.JobID], v.pending[b.JobID]
		if ja == nil || jb == nil {
			continue
		}
		if v.s.Config.Order == sched.OrderMultifactor && a.Priority < b.Priority {
			bad.add("waiting out of priority order: %s (%d) before %s (%d)", a.JobID, a.Priority, b.JobID, b.Priority)
		}
		if v.s.Config.Order == sched.OrderFIFO && fifoLess(jb, ja) {
			bad.add("waiting out of FIFO order: %s before %s", a.JobID, b.JobID)
		}
	}
	return bad
}

// backfillFlags: in FIFO order, where ranks are known, a start is marked
// backfilled exactly when a job ahead of it waits for room; without
// backfill no such start happens (except by preemption).
func backfillFlags(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	if v.s.Config.Order != sched.OrderFIFO {
		return nil
	}
	for _, st := range d.Starts {
		j := v.pending[st.JobID]
		if j == nil {
			continue
		}
		ahead := ""
		for _, w := range d.Waiting {
			if wj := v.pending[w.JobID]; wj != nil && fifoLess(wj, j) && slices.Contains(blockedReasons, w.Reason) {
				ahead = w.JobID
				break
			}
		}
		if ahead != "" && !st.Backfilled {
			bad.add("start %s passes %s, which waits for room, but is not marked backfilled", st.JobID, ahead)
		}
		if ahead == "" && st.Backfilled {
			bad.add("start %s marked backfilled with nothing ahead of it waiting for room", st.JobID)
		}
		if ahead != "" && v.s.Config.Backfill == sched.BackfillNone && len(st.Preempts) == 0 {
			bad.add("start %s passes %s without backfill", st.JobID, ahead)
		}
	}
	return bad
}

// stats: the counts match the decisions.
func stats(v *view, now int64, d *sched.Decisions) []string {
	var bad problems
	nb, nr := 0, 0
	for _, s := range d.Starts {
		if s.Backfilled {
			nb++
		}
	}
	for _, w := range d.Waiting {
		if w.Reserved {
			nr++
		}
	}
	st := d.Stats
	if st.Started != len(d.Starts) || st.Preempted != len(d.Preempts) || st.Reserved != nr || st.Backfilled != nb {
		bad.add("stats %+v, but %d starts (%d backfilled), %d preemptions, %d reservations", st, len(d.Starts), nb, len(d.Preempts), nr)
	}
	if st.Examined != len(v.s.Pending) {
		bad.add("stats examined %d of %d pending jobs", st.Examined, len(v.s.Pending))
	}
	return bad
}

func fifoLess(a, b *model.Job) bool {
	return cmp.Or(cmp.Compare(a.Submit, b.Submit), cmp.Compare(a.ID, b.ID)) < 0
}

// reservationsHold checks that every reservation can be honoured: at its
// start, its slots plus what still runs then (running jobs to their limit,
// jobs started now, other reservations under way) fit every node. Since a
// job ends by its limit, no start can delay a reserved job past EstStart.
func reservationsHold(v *view, now int64, d *sched.Decisions) []string {
	var bad []string
	type hold struct {
		id         string
		start, end int64
		slots      []sched.Slot
	}
	var holds []hold
	for k := range v.s.Running {
		r := &v.s.Running[k]
		if _, gone := v.preempts[r.Job.ID]; !gone {
			holds = append(holds, hold{r.Job.ID, r.Start, r.End(), r.Alloc})
		}
	}
	for _, st := range d.Starts {
		if j := v.pending[st.JobID]; j != nil {
			holds = append(holds, hold{st.JobID, now, now + j.Limit, st.Alloc})
		}
	}
	var resv []hold
	for _, w := range d.Waiting {
		if j := v.pending[w.JobID]; j != nil && w.Reserved {
			resv = append(resv, hold{w.JobID, w.EstStart, w.EstStart + j.Limit, w.Reservation})
		}
	}
	for _, r := range resv {
		at := r.start
		used := make([]amount, len(v.nodes))
		who := make([][]string, len(v.nodes))
		add := func(h hold) {
			for _, sl := range h.slots {
				if sl.Node >= 0 && int(sl.Node) < len(used) {
					u := used[sl.Node]
					used[sl.Node] = amount{u.acc + sl.Accelerators, u.cpu + sl.CPUs, u.mem + sl.MemoryMiB}
					who[sl.Node] = append(who[sl.Node], h.id)
				}
			}
		}
		for _, h := range holds {
			if h.end > at {
				add(h)
			}
		}
		for _, o := range resv {
			if o.start <= at && at < o.end {
				add(o) // r itself too
			}
		}
		for _, sl := range r.slots {
			i := sl.Node
			if i < 0 || int(i) >= len(v.nodes) {
				continue
			}
			if !nodeCap(&v.nodes[i]).covers(used[i]) {
				bad = append(bad, fmt.Sprintf("reservation of %s at %d: node %s over capacity, held by %v",
					r.id, at, v.nodes[i].Name, who[i]))
			}
		}
	}
	return bad
}

// fitsIdle says whether j would fit this cluster idle with every node up
// (partitions open or not), and whether the answer is known: shapes this
// checker does not model (packed jobs larger than a node on unequal nodes)
// are unknown.
func (v *view) fitsIdle(j *model.Job) (fits, known bool) {
	topo := v.s.Topology
	known = true
	for p, part := range v.parts {
		if (j.Partition != "" && j.Partition != part.Name) || (j.Model != "" && j.Model != part.Model) {
			continue
		}
		if j.TotalAccelerators() > 0 && part.Model == "" {
			continue
		}
		m := v.maxAcc[p]
		var need amount // on each of n nodes
		n := 1
		switch {
		case j.Nodes > 0:
			need, n = amount{j.AcceleratorsPerNode, j.CPUs, j.MemoryMiB}, j.Nodes
			if j.Exclusive {
				need.acc = m
			}
		case j.Accelerators <= m:
			need = amount{j.Accelerators, j.CPUs, j.MemoryMiB}
			if j.Exclusive {
				need.acc = m
			}
		default:
			// At least this many nodes, whatever the split; how CPUs and
			// memory are shared out depends on it, so leave those cases be.
			if !v.uniform(p) || j.CPUs > 0 || j.MemoryMiB > 0 {
				known = false
				continue
			}
			n = (j.Accelerators + m - 1) / m
			need = amount{1, 0, 0}
		}
		if need.acc == 0 && need.cpu == 0 {
			need.cpu = 1
		}
		perBlock := map[string]int{}
		total := 0
		for i := range v.nodes {
			if v.partOf[i] != p || !nodeCap(&v.nodes[i]).covers(need) {
				continue
			}
			b, _ := topo.Block(int32(i))
			perBlock[b]++
			total++
		}
		if !j.OneBlock && total >= n {
			return true, true
		}
		for _, c := range perBlock {
			if j.OneBlock && c >= n {
				return true, true
			}
		}
	}
	return false, known
}
