package sched

import (
	"cmp"
	"math"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// Plan runs one scheduling pass over the snapshot at time now.
//
// The pass, in order: hold what running jobs use; rank waiting jobs; walk
// them in rank order, starting each that fits without delaying a
// reservation (preempting lower QoS classes where allowed), reserving for
// the first blocked ones (one for EASY, Config.Reservations for
// conservative) and recording why the others wait; finally estimate a start
// time for every waiting job on a time profile of the cluster.
func Plan(s *Snapshot, now int64) *Decisions {
	return NewPlanner(s.Topology).Plan(s, now)
}

// Planner runs passes over one topology and keeps its working memory
// between them, so that a caller planning often (the server's loop, the
// simulator) does not rebuild it every pass. Its decisions are exactly
// Plan's. A Planner is not safe for concurrent use.
type Planner struct {
	t    *Topology
	st   state
	pl   *placer
	buf  passBuffers
	base base
	fair fairTree
}

// passBuffers is scratch space a pass may grow and the next one reuse.
type passBuffers struct {
	// byEnd is a heap of running jobs by end, ends the prefix taken from
	// it in order (see endingAt); heaped says both are this pass's.
	byEnd, ends  []ending
	heaped       bool
	hyp          []res
	hypHist      []int32
	touchedHyp   []int32
	resvIn       []int8
	resvEnds     []int64
	startedByEnd []commitment
	ranks        []ranked
	jobNodes     []int32 // per pending job, its project's fair-tree node

	qos         map[string]*QoS
	preempted   map[string]bool
	failed      map[shape]failure
	ever        map[shape]bool // could fit an empty cluster
	blockedPart []bool         // a higher-ranked job waits for resources in this partition
	eligCache   map[[2]string][]int32
}

// NewPlanner returns a planner for snapshots of topology t.
func NewPlanner(t *Topology) *Planner {
	if t == nil {
		t = &Topology{}
	}
	return &Planner{t: t, pl: newPlacer(t)}
}

// Plan runs one scheduling pass, as the package-level Plan does. A snapshot
// of another topology gets a fresh planner.
func (pr *Planner) Plan(s *Snapshot, now int64) *Decisions {
	if s.Topology != pr.t && s.Topology != nil {
		*pr = *NewPlanner(s.Topology)
	}
	p := newPass(pr, s, now)
	p.run()
	pr.buf = p.passBuffers
	pr.buf.heaped = false
	clear(pr.buf.startedByEnd) // keep no pointer into this pass's decisions
	clear(pr.buf.ranks)        // keep no pointer into the caller's snapshot
	pr.buf.ranks = pr.buf.ranks[:0]
	clear(pr.buf.qos)
	return &p.dec
}

type pass struct {
	s     *Snapshot
	now   int64
	cfg   *Config
	t     *Topology
	nodes []model.Node
	parts []model.Partition
	st    *state
	pl    *placer
	dec   Decisions

	started  []commitment      // jobs started in this pass
	qosUse   map[[2]string]int // running accelerators by project and QoS
	arrayRun map[string]int    // running elements by array, once a throttled array asks
	balances []Balance         // copy, debited as jobs start
	ids      map[string]int8   // job ID → 1 pending, 2 running; built when a dependency needs it
	parent   map[string]string // project → parent; built when grants need it

	anyBlocked bool
	nresv      int

	estimate     []estReq
	reservations []booking
	passBuffers        // scratch the planner keeps between passes
	base         *base // the planner's cluster with running jobs held
	fair         *fairTree
	asCompiled   bool
}

// commitment is something that holds slots until end: a running job, a job
// started in this pass.
type commitment struct {
	end   int64
	slots []Slot
}

type shape struct {
	part      int32
	nodes     int
	per       res
	acc       int
	excl, one bool
}

type failure struct {
	end int64 // the shortest job of this shape that failed
	why outcome
}

type estReq struct {
	wait     int // index in dec.Waiting
	job      *model.Job
	elig     []int32
	earliest int64
	inOrder  bool // under strict order it cannot start before those ranked above it
}

func newPass(pr *Planner, s *Snapshot, now int64) *pass {
	p := &pass{s: s, now: now, cfg: &s.Config, t: pr.t, passBuffers: pr.buf}
	p.nodes = s.Nodes
	if len(p.nodes) != len(p.t.nodes) {
		p.nodes = p.t.nodes
	}
	p.parts = s.Partitions
	if len(p.parts) != len(p.t.partitions) {
		p.parts = p.t.partitions
	}
	p.asCompiled = s.Nodes == nil && s.Partitions == nil
	pr.st.reset(p.t, p.nodes, p.parts, p.asCompiled)
	p.st = &pr.st
	p.base = &pr.base
	p.fair = &pr.fair
	p.pl = pr.pl
	// The maps are the planner's, emptied; eligCache depends on the
	// topology alone and is kept.
	if p.qos == nil {
		p.qos = map[string]*QoS{}
		p.preempted = map[string]bool{}
		p.failed = map[shape]failure{}
		p.ever = map[shape]bool{}
		p.eligCache = map[[2]string][]int32{}
	}
	for i := range s.QoS {
		p.qos[s.QoS[i].Name] = &s.QoS[i]
	}
	clear(p.preempted)
	clear(p.failed)
	clear(p.ever)
	p.blockedPart = slices.Grow(p.blockedPart[:0], len(p.t.parts))[:len(p.t.parts)]
	clear(p.blockedPart)
	if s.Grants != nil {
		p.balances = slices.Clone(s.Grants)
	}
	return p
}

func (p *pass) limitsQoS() bool {
	for i := range p.s.QoS {
		if p.s.QoS[i].MaxAcceleratorsPerProject > 0 {
			return true
		}
	}
	return false
}

func (p *pass) run() {
	s := p.s
	if p.limitsQoS() {
		p.qosUse = map[[2]string]int{}
	}
	if p.qosUse != nil {
		for k := range s.Running {
			r := &s.Running[k]
			p.qosUse[[2]string{r.Job.Project, r.Job.QoS}] += r.Job.TotalAccelerators()
		}
	}
	p.holdRunning()

	p.ranks = order(s, p.now, p.qos, p.totalAcc(), p.fair, p.ranks, &p.jobNodes)
	ranks := p.ranks
	p.dec.Waiting = make([]Wait, 0, len(ranks))
	for k := range ranks {
		p.consider(&ranks[k])
	}
	if p.cfg.Estimates {
		p.estimateAll()
	}
}

// holdRunning makes the pass's state what is free with the running jobs
// held: from the planner's base when the cluster is as compiled (applying
// only what changed since the last pass), else from scratch.
func (p *pass) holdRunning() {
	b := p.base
	if p.asCompiled && b.ok && b.sync(p.st, p.s.Running) {
		p.st.load(b)
		return
	}
	p.st.freeSynced = false
	copy(p.st.free, p.t.cap)
	for k := range p.s.Running {
		for _, sl := range p.s.Running[k].Alloc {
			if sl.Node >= 0 && int(sl.Node) < len(p.st.free) {
				p.st.hold(sl.Node, slotRes(sl))
			}
		}
	}
	p.st.buildHist()
	if p.asCompiled {
		b.capture(p.st, p.s.Running)
	} else {
		b.ok = false
	}
}

func (p *pass) totalAcc() int {
	n := 0
	for i := range p.t.parts {
		n += p.t.parts[i].totalAcc
	}
	return n
}

func (p *pass) wait(r *ranked, why Reason) *Wait {
	p.dec.Waiting = append(p.dec.Waiting, Wait{JobID: r.job.ID, Reason: why, Priority: r.prio, EstStart: -1})
	return &p.dec.Waiting[len(p.dec.Waiting)-1]
}

// consider decides one waiting job.
func (p *pass) consider(r *ranked) {
	j := r.job
	p.dec.Stats.Examined++
	if j.Held {
		p.wait(r, ReasonHeld)
		return
	}
	if why := p.depReason(j); why != ReasonNone {
		p.wait(r, why)
		return
	}
	if j.ArrayThrottle > 0 && p.arrayRunning(j.ArrayID) >= j.ArrayThrottle {
		p.wait(r, ReasonArrayTaskLimit)
		return
	}
	q := p.qos[j.QoS]
	if j.QoS != "" && q == nil {
		p.wait(r, ReasonInvalidQoS)
		return
	}
	if q != nil && q.MaxLimit > 0 && j.Limit > q.MaxLimit {
		p.wait(r, ReasonQoSMaxWall)
		return
	}
	elig, why := p.eligible(j)
	if why != ReasonNone {
		p.wait(r, why)
		return
	}
	if j.Begin > p.now {
		p.queueEstimate(p.wait(r, ReasonBeginTime), j, elig, j.Begin)
		return
	}
	if q != nil && q.MaxAcceleratorsPerProject > 0 &&
		p.qosUse[[2]string{j.Project, j.QoS}]+j.TotalAccelerators() > q.MaxAcceleratorsPerProject {
		p.wait(r, ReasonQoSLimit)
		return
	}
	if p.balances != nil {
		elig = p.covered(j, elig)
		if len(elig) == 0 {
			p.wait(r, ReasonGrantExhausted)
			return
		}
	}
	if p.cfg.Backfill == BackfillNone && p.anyBlocked {
		p.queueEstimate(p.wait(r, ReasonPriority), j, elig, p.now)
		return
	}
	end := p.now + j.Limit
	worst := placed
	for _, part := range elig {
		slots, out := p.place(part, j, end)
		if out == placed {
			p.start(j, part, slots, nil)
			return
		}
		worst = max(worst, out)
	}
	if p.cfg.Preemption && q != nil && q.MayPreempt && p.preempt(j, q, elig, end) {
		return
	}
	// Blocked. Why, in Slurm's words.
	why = ReasonResources
	for _, part := range elig {
		if p.blockedPart[part] {
			why = ReasonPriority
		}
	}
	if worst == noBlock {
		why = ReasonTopology
	}
	if !p.fitsUsable(j, elig) {
		why = ReasonNodesDown
	}
	p.anyBlocked = true
	for _, part := range elig {
		p.blockedPart[part] = true
	}
	w := p.wait(r, why)
	if why != ReasonNodesDown && p.mayReserve() {
		if p.reserve(w, j, elig) {
			return
		}
	}
	p.queueEstimate(w, j, elig, p.now)
}

func (p *pass) mayReserve() bool {
	switch p.cfg.Backfill {
	case BackfillEASY:
		return p.nresv < 1
	case BackfillConservative:
		return p.nresv < max(p.cfg.Reservations, 1)
	}
	return false
}

func (p *pass) queueEstimate(w *Wait, j *model.Job, elig []int32, earliest int64) {
	if !p.cfg.Estimates {
		return
	}
	p.estimate = append(p.estimate, estReq{wait: len(p.dec.Waiting) - 1, job: j, elig: elig, earliest: earliest, inOrder: p.cfg.Backfill == BackfillNone})
}

// arrayRunning counts the running elements of array id.
func (p *pass) arrayRunning(id string) int {
	if p.arrayRun == nil {
		p.arrayRun = map[string]int{}
		for k := range p.s.Running {
			if a := p.s.Running[k].Job.ArrayID; a != "" {
				p.arrayRun[a]++
			}
		}
	}
	return p.arrayRun[id]
}

// depReason says whether j's dependencies hold it back.
func (p *pass) depReason(j *model.Job) Reason {
	if len(j.Deps) == 0 {
		return ReasonNone
	}
	if p.ids == nil {
		p.ids = make(map[string]int8, len(p.s.Pending)+len(p.s.Running))
		for i := range p.s.Pending {
			p.ids[p.s.Pending[i].ID] = 1
		}
		for i := range p.s.Running {
			p.ids[p.s.Running[i].Job.ID] = 2
		}
	}
	why := ReasonNone
	for _, d := range j.Deps {
		if st, done := p.s.Finished[d.JobID]; done {
			ok := true
			switch d.Type {
			case model.AfterOK:
				ok = st == model.JobCompleted
			case model.AfterNotOK:
				ok = st != model.JobCompleted
			}
			if !ok {
				return ReasonDependencyNeverSatisfied
			}
			continue
		}
		switch p.ids[d.JobID] {
		case 2:
			if d.Type != model.AfterStart {
				why = ReasonDependency
			}
		case 1:
			why = ReasonDependency
		default:
			return ReasonDependencyNeverSatisfied
		}
	}
	return why
}

// eligible lists the partitions j may run in, or why it can run in none.
func (p *pass) eligible(j *model.Job) ([]int32, Reason) {
	key := [2]string{j.Partition, j.Model}
	elig, ok := p.eligCache[key]
	if !ok {
		for k, part := range p.t.partitions {
			if j.Partition != "" && part.Name != j.Partition {
				continue
			}
			if j.Model != "" && part.Model != j.Model {
				continue
			}
			elig = append(elig, int32(k))
		}
		p.eligCache[key] = elig
	}
	// Usually every partition fits and is open: elig itself is the answer
	// (callers only read it).
	all := true
	for _, part := range elig {
		if !p.fitsEver(j, part) || p.parts[part].Down {
			all = false
			break
		}
	}
	if all && len(elig) > 0 {
		return elig, ReasonNone
	}
	var fits []int32
	open := false
	for _, part := range elig {
		if !p.fitsEver(j, part) {
			continue
		}
		fits = append(fits, part)
		if !p.parts[part].Down {
			open = true
		}
	}
	switch {
	case len(fits) == 0:
		return nil, ReasonBadConstraints
	case !open:
		return nil, ReasonPartitionDown
	}
	if len(fits) != len(elig) || len(fits) > 1 {
		out := fits[:0:0]
		for _, part := range fits {
			if !p.parts[part].Down {
				out = append(out, part)
			}
		}
		return out, ReasonNone
	}
	return fits, ReasonNone
}

// fitsEver memoizes fitsEmpty by shape.
func (p *pass) fitsEver(j *model.Job, part int32) bool {
	key := p.shapeOf(j, part)
	v, ok := p.ever[key]
	if !ok {
		v = p.fitsEmpty(j, part)
		p.ever[key] = v
	}
	return v
}

func (p *pass) shapeOf(j *model.Job, part int32) shape {
	key := shape{part: part, nodes: j.Nodes, acc: j.Accelerators, excl: j.Exclusive, one: j.OneBlock}
	if j.Nodes > 0 {
		key.per = p.perNode(j, part)
	} else {
		key.per = res{0, int32(j.CPUs), j.MemoryMiB}
	}
	return key
}

// fitsEmpty says whether j could ever run in partition part, were every node
// up and idle.
func (p *pass) fitsEmpty(j *model.Job, part int32) bool {
	return p.fitsCounted(j, part, func(k int) int { return p.t.parts[part].classes[k].nodes })
}

// fitsUsable says whether j would fit were every usable node idle: when it
// would not, it waits for nodes to come back, not for jobs to end.
func (p *pass) fitsUsable(j *model.Job, elig []int32) bool {
	for _, part := range elig {
		if p.fitsCounted(j, part, func(k int) int { return p.st.usableByClass[part][k] }) {
			return true
		}
	}
	return false
}

// fitsCounted says whether j fits partition part when count(k) nodes of
// each capacity class k are idle. For one-block jobs it assumes the classes
// share the fullest block, which can only err towards waiting.
func (p *pass) fitsCounted(j *model.Job, part int32, count func(k int) int) bool {
	pi := &p.t.parts[part]
	// A partition without nodes (declared before them) holds nothing;
	// one without accelerators holds no job that needs some.
	if len(pi.classes) == 0 || j.TotalAccelerators() > 0 && (pi.model == "" || pi.maxAcc == 0) {
		return false
	}
	switch {
	case j.Nodes > 0:
		per := p.perNode(j, part)
		n, inBlock := 0, 0
		for k, c := range pi.classes {
			if c.cap.covers(per) {
				n += count(k)
				inBlock += min(c.maxInBlock, count(k))
			}
		}
		return n >= j.Nodes && (!j.OneBlock || min(inBlock, pi.maxBlockN) >= j.Nodes)
	case j.Accelerators <= pi.maxAcc:
		need := p.packedNeed(j, part)
		for k, c := range pi.classes {
			if c.cap.covers(need) && count(k) > 0 {
				return true
			}
		}
		return false
	default:
		full, perFull, hasRest, perRest := p.split(j, part)
		nf, nr, bf, br := 0, 0, 0, 0
		for k, c := range pi.classes {
			if c.cap.covers(perFull) {
				nf += count(k)
				bf += min(c.maxInBlock, count(k))
			}
			if hasRest && c.cap.covers(perRest) {
				nr += count(k)
				br += min(c.maxInBlock, count(k))
			}
		}
		ok := nf >= full && (!hasRest || nr >= full+1)
		if j.OneBlock {
			ok = ok && min(bf, pi.maxBlockN) >= full && (!hasRest || min(br, pi.maxBlockN) >= full+1)
		}
		return ok
	}
}

// perNode is what a gang asks of each of its nodes.
func (p *pass) perNode(j *model.Job, part int32) res {
	return p.ask(j, part, j.AcceleratorsPerNode)
}

// packedNeed is what a packed job that fits on one node asks of it.
func (p *pass) packedNeed(j *model.Job, part int32) res {
	return p.ask(j, part, j.Accelerators)
}

// ask is what j asks of one node when it wants acc accelerators there: an
// exclusive job takes the node's accelerators whole, and a job always holds
// at least one CPU.
func (p *pass) ask(j *model.Job, part int32, acc int) res {
	r := res{int32(acc), int32(j.CPUs), j.MemoryMiB}
	if j.Exclusive {
		r.acc = int32(p.t.parts[part].maxAcc)
	}
	if r.acc == 0 && r.cpu == 0 {
		r.cpu = 1
	}
	return r
}

// covered keeps the partitions whose accelerator class j's project (or an
// ancestor) can still pay for.
func (p *pass) covered(j *model.Job, elig []int32) []int32 {
	var out []int32
	for _, part := range elig {
		if p.balanceFor(j, part) >= 0 {
			out = append(out, part)
		}
	}
	return out
}

// balanceFor finds the balance that pays for j in partition part (of its
// accelerator class, at its site): the job's project's first, then its
// ancestors'. It returns -1 when none covers it.
func (p *pass) balanceFor(j *model.Job, part int32) int {
	cost := int64(j.TotalAccelerators()) * j.Limit
	return Payer(p.balances, p.parents(), j.Project, p.t.parts[part].model, p.t.partitions[part].Site, cost)
}

// Payer finds the balance that pays cost for a job of project in a
// partition of accelerator class model at site: the project's own first,
// then its ancestors' (parent maps a project to its parent). It returns
// -1 when none covers it.
func Payer(balances []Balance, parent map[string]string, project, model, site string, cost int64) int {
	seen := map[string]bool{}
	for proj := project; proj != "" && !seen[proj]; proj = parent[proj] {
		seen[proj] = true
		for k := range balances {
			b := &balances[k]
			if b.Project == proj && b.Pays(model, site) && b.Remaining >= cost {
				return k
			}
		}
	}
	return -1
}

func (p *pass) parents() map[string]string {
	if p.parent == nil {
		p.parent = make(map[string]string, len(p.s.Projects))
		for _, pr := range p.s.Projects {
			p.parent[pr.Name] = pr.Parent
		}
	}
	return p.parent
}

// place finds slots for j in partition part for a job ending at end,
// without delaying any reservation.
func (p *pass) place(part int32, j *model.Job, end int64) ([]Slot, outcome) {
	key := p.shapeOf(j, part)
	if f, ok := p.failed[key]; ok && f.end <= end {
		return nil, f.why
	}
	slots, out := p.placeNow(part, j, end)
	if out != placed {
		if f, ok := p.failed[key]; !ok || end < f.end {
			p.failed[key] = failure{end, out}
		}
	}
	return slots, out
}

// placeNow is place without the memory of failed shapes.
func (p *pass) placeNow(part int32, j *model.Job, end int64) ([]Slot, outcome) {
	st := p.st
	var v view
	if !st.anyResv {
		v = view{t: p.t, mode: viewNow, st: st, hist: st.histAll, h: st.h, levels: st.partAll, fast: st}
	} else {
		v = view{t: p.t, mode: viewFor, st: st, hist: st.histLong, h: st.h, short: st.histAll, levels: st.partLong, fast: st, lo: st.blockLo, hi: st.blockHi, end: end}
	}
	slots, out := p.placeIn(&v, part, j)
	if out == recount {
		v.hist = nil
		slots, out = p.placeIn(&v, part, j)
	}
	return slots, out
}

// placeIn finds slots for j in partition part as v sees the nodes.
func (p *pass) placeIn(v *view, part int32, j *model.Job) ([]Slot, outcome) {
	if j.Nodes > 0 {
		per := p.perNode(j, part)
		nodes, out := p.pl.gang(v, part, j.Nodes, per, j.OneBlock)
		if out != placed {
			return nil, out
		}
		slices.Sort(nodes) // scratch; each node once
		slots := make([]Slot, len(nodes))
		for k, i := range nodes {
			slots[k] = Slot{Node: i, Accelerators: int(per.acc), CPUs: int(per.cpu), MemoryMiB: per.mem}
		}
		return slots, placed
	}
	pi := &p.t.parts[part]
	if j.Accelerators <= pi.maxAcc {
		need := p.packedNeed(j, part)
		i := p.pl.one(v, part, need)
		if i < 0 {
			return nil, noRoom
		}
		return []Slot{{Node: i, Accelerators: int(need.acc), CPUs: int(need.cpu), MemoryMiB: need.mem}}, placed
	}
	return p.placeLarge(v, part, j)
}

// split says how a packed job bigger than a node divides: full whole nodes
// of perFull and, when hasRest, one more node of perRest. CPUs and memory
// follow the accelerators; an exclusive job takes its last node whole.
func (p *pass) split(j *model.Job, part int32) (full int, perFull res, hasRest bool, perRest res) {
	maxAcc := p.t.parts[part].maxAcc
	share := func(acc int) res {
		return res{int32(acc), int32((j.CPUs*acc + j.Accelerators - 1) / j.Accelerators),
			(j.MemoryMiB*int64(acc) + int64(j.Accelerators) - 1) / int64(j.Accelerators)}
	}
	full, rest := j.Accelerators/maxAcc, j.Accelerators%maxAcc
	perFull = share(maxAcc)
	if rest > 0 {
		hasRest, perRest = true, share(rest)
		if j.Exclusive {
			perRest.acc = int32(maxAcc)
		}
	}
	return full, perFull, hasRest, perRest
}

// placeLarge places a packed job bigger than a node: in the tightest block
// that holds all of it, else (unless it demands one block) whole nodes by
// topology and the rest as close to them as possible.
func (p *pass) placeLarge(v *view, part int32, j *model.Job) ([]Slot, outcome) {
	pi := &p.t.parts[part]
	full, perFull, hasRest, perRest := p.split(j, part)
	nodes := full
	if hasRest {
		nodes++
	}
	slot := func(i int32, r res) Slot {
		return Slot{Node: i, Accelerators: int(r.acc), CPUs: int(r.cpu), MemoryMiB: r.mem}
	}
	best, bestC, total := int32(-1), 0, 0
	for _, b := range pi.blocks {
		cf := v.count(b, perFull)
		total += cf
		if cf < full || (hasRest && v.count(b, perRest) < nodes) {
			continue
		}
		if best < 0 || cf < bestC {
			best, bestC = b, cf
		}
	}
	var slots []Slot
	taken := func(i int32) bool {
		return slices.ContainsFunc(slots, func(s Slot) bool { return s.Node == i })
	}
	// rest finds the best-fit node for the remainder among blocks, or -1.
	rest := func(blocks []int32) int32 {
		bestN, bestAcc := int32(-1), int32(math.MaxInt32)
		for _, b := range blocks {
			for _, i := range p.t.blocks[b].nodes {
				if a := v.avail(i); !taken(i) && a.covers(perRest) && a.acc < bestAcc {
					bestN, bestAcc = i, a.acc
				}
			}
		}
		return bestN
	}
	if best >= 0 {
		p.pl.order = append(p.pl.order[:0], best)
		picked, out := p.pl.pick(v, full, perFull, false)
		if out != placed {
			return nil, out
		}
		for _, i := range picked {
			slots = append(slots, slot(i, perFull))
		}
		if hasRest {
			i := rest([]int32{best})
			if i < 0 {
				if v.hist != nil {
					return nil, recount
				}
				return nil, noRoom
			}
			slots = append(slots, slot(i, perRest))
		}
	} else {
		if j.OneBlock {
			if total >= nodes {
				return nil, noBlock
			}
			return nil, noRoom
		}
		picked, out := p.pl.gang(v, part, full, perFull, false)
		if out != placed {
			return nil, out
		}
		for _, i := range picked {
			slots = append(slots, slot(i, perFull))
		}
		if hasRest {
			var near []int32
			for _, s := range slots {
				if b := p.t.nodeBlock[s.Node]; !slices.Contains(near, b) {
					near = append(near, b)
				}
			}
			i := rest(near)
			if i < 0 {
				i = rest(pi.blocks)
			}
			if i < 0 {
				return nil, noRoom
			}
			slots = append(slots, slot(i, perRest))
		}
	}
	slices.SortFunc(slots, func(a, b Slot) int { return cmp.Compare(a.Node, b.Node) })
	return slots, placed
}

// start commits j onto slots.
func (p *pass) start(j *model.Job, part int32, slots []Slot, victims []string) {
	end := p.now + j.Limit
	for _, sl := range slots {
		p.st.useFor(sl.Node, slotRes(sl), end)
	}
	if p.qosUse != nil {
		p.qosUse[[2]string{j.Project, j.QoS}] += j.TotalAccelerators()
	}
	if p.arrayRun != nil && j.ArrayID != "" {
		p.arrayRun[j.ArrayID]++
	}
	if p.balances != nil {
		if k := p.balanceFor(j, part); k >= 0 {
			p.balances[k].Remaining -= int64(j.TotalAccelerators()) * j.Limit
		}
	}
	p.started = append(p.started, commitment{end: end, slots: slots})
	p.dec.Starts = append(p.dec.Starts, Start{JobID: j.ID, Alloc: slots, Backfilled: p.anyBlocked, Preempts: victims})
	p.dec.Stats.Started++
	if p.anyBlocked {
		p.dec.Stats.Backfilled++
	}
}
