package sched_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

const propertyCases = 1000

// randomCase draws a cluster, a queue and a policy from seed: a few
// partitions of a few groups, blocks and nodes, some drained or down,
// partly busy with running jobs, and a queue of every kind of job.
func randomCase(tb testing.TB, seed uint64) (*sched.Snapshot, int64) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(xs ...int) int { return xs[rng.IntN(len(xs))] }
	c := cluster(1+rng.IntN(3), 1+rng.IntN(3), 1+rng.IntN(4), pick(4, 8))
	if rng.IntN(3) == 0 {
		addPartition(c, "m", "m", "MI300X", 1+rng.IntN(2), 1+rng.IntN(3), 1+rng.IntN(3), pick(4, 8))
	}
	withCPUs, withMem := rng.IntN(3) == 0, rng.IntN(3) == 0
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if withCPUs {
			n.CPUs = 32
		}
		if withMem {
			n.MemoryMiB = 64 << 10
		}
		switch x := rng.IntN(20); {
		case x < 2:
			n.State = model.NodeDrain
		case x < 3:
			n.State = model.NodeDown
		}
	}
	topo := compile(tb, c)
	s := &sched.Snapshot{Topology: topo, Nodes: slices.Clone(c.Nodes), Partitions: slices.Clone(c.Partitions)}
	for k := range s.Partitions {
		s.Partitions[k].Down = rng.IntN(12) == 0
	}
	now := int64(100_000)
	qosNames := []string{"", "", "", "low", "norm", "high", "capped", "short"}
	s.QoS = []sched.QoS{
		{Name: "high", Priority: 100, MayPreempt: true},
		{Name: "low", Priority: 0, Preemptible: true},
		{Name: "norm", Priority: 10},
		{Name: "capped", Priority: 10, MaxAcceleratorsPerProject: 16},
		{Name: "short", Priority: 20, MaxLimit: 1800},
	}
	s.Projects = []model.Project{
		{Name: "root", Shares: 1},
		{Name: "a", Parent: "root", Shares: 3},
		{Name: "b", Parent: "root", Shares: 1},
		{Name: "a1", Parent: "a", Shares: 1},
		{Name: "a2", Parent: "a", Shares: 2},
		{Name: "solo", Shares: 1},
	}
	projects := []string{"a", "b", "a1", "a2", "solo", "stranger"}
	s.Usage = map[string]float64{}
	for _, p := range projects {
		if rng.IntN(2) == 0 {
			s.Usage[p] = float64(rng.IntN(1_000_000))
		}
	}
	limits := []int64{300, 600, 1800, 3600, 7200, 4 * 3600}

	// Running jobs, placed at random where there is room.
	free := make([]amount, len(c.Nodes))
	for i := range c.Nodes {
		free[i] = nodeCap(&c.Nodes[i])
	}
	for k := range rng.IntN(3 * len(c.Nodes)) {
		i := rng.IntN(len(c.Nodes))
		n := &c.Nodes[i]
		b := job(fmt.Sprintf("r%02d", k)).Project(projects[rng.IntN(len(projects))]).QoS(qosNames[rng.IntN(len(qosNames)-1)]).
			Limit(limits[rng.IntN(len(limits))])
		if rng.IntN(3) == 0 {
			b.Preemptible()
		}
		var on []int
		var per amount
		if rng.IntN(3) == 0 { // a gang over neighbouring nodes
			per = amount{acc: n.Accelerators, cpu: pick(0, 8), mem: int64(pick(0, 1024))}
			for x := i; x < min(i+1+rng.IntN(3), len(c.Nodes)); x++ {
				if c.Nodes[x].Partition == n.Partition && free[x].covers(per) {
					on = append(on, x)
				}
			}
			b.Nodes(len(on)).GPUs(per.acc).CPUs(per.cpu).Mem(per.mem)
		} else {
			per = amount{acc: 1 + rng.IntN(n.Accelerators), cpu: pick(0, 4), mem: int64(pick(0, 2048))}
			if free[i].covers(per) {
				on = []int{i}
			}
			b.GPUs(per.acc).CPUs(per.cpu).Mem(per.mem)
		}
		if len(on) == 0 {
			continue
		}
		r := sched.Running{Job: b.Build(), Start: now - rng.Int64N(b.j.Limit+600)} // a few overdue
		for _, x := range on {
			free[x] = free[x].minus(per)
			r.Alloc = append(r.Alloc, sched.Slot{Node: int32(x), Accelerators: per.acc, CPUs: per.cpu, MemoryMiB: per.mem})
		}
		s.Running = append(s.Running, r)
	}

	// The queue.
	maxNodes := len(c.Nodes)
	s.Finished = map[string]model.JobState{"done-ok": model.JobCompleted, "done-bad": model.JobFailed}
	depTargets := []string{"done-ok", "done-bad", "ghost"}
	for _, r := range s.Running {
		depTargets = append(depTargets, r.Job.ID)
	}
	npend := rng.IntN(25)
	for k := range npend {
		depTargets = append(depTargets, fmt.Sprintf("j%02d", k))
	}
	for k := range npend {
		id := fmt.Sprintf("j%02d", k)
		b := job(id).Project(projects[rng.IntN(len(projects))]).QoS(qosNames[rng.IntN(len(qosNames))]).
			Limit(limits[rng.IntN(len(limits))]).At(rng.Int64N(now))
		switch x := rng.IntN(10); {
		case x < 4:
			b.Nodes(1 + rng.IntN(maxNodes+1)).GPUs(pick(1, 2, 4, 8))
		case x < 9:
			b.GPUs(1 + rng.IntN(12))
		default:
			b.GPUs(pick(0, 16, 24))
		}
		if rng.IntN(4) == 0 {
			b.CPUs(pick(2, 8, 16, 40)).Mem(int64(pick(0, 4096, 100_000)))
		}
		if rng.IntN(7) == 0 {
			b.OneBlock()
		}
		if rng.IntN(25) == 0 {
			b.Exclusive()
		}
		if rng.IntN(25) == 0 {
			b.Held()
		}
		if rng.IntN(20) == 0 {
			b.Begin(now + rng.Int64N(5000))
		}
		if rng.IntN(8) == 0 {
			if dep := depTargets[rng.IntN(len(depTargets))]; dep != id {
				b.After([]model.DepType{model.AfterStart, model.AfterAny, model.AfterOK, model.AfterNotOK}[rng.IntN(4)], dep)
			}
		}
		if rng.IntN(10) == 0 {
			b.Partition([]string{"p", "m", "nowhere"}[rng.IntN(3)])
		}
		if rng.IntN(15) == 0 {
			b.Model([]string{"H100", "MI300X"}[rng.IntN(2)])
		}
		if rng.IntN(6) == 0 {
			b.Prio(rng.Int64N(2000))
		}
		if rng.IntN(30) == 0 {
			b.QoS("bogus")
		}
		if rng.IntN(5) == 0 {
			b.Preemptible()
		}
		s.Pending = append(s.Pending, b.Build())
	}
	if rng.IntN(4) == 0 {
		s.Grants = []sched.Balance{}
		for _, p := range []string{"root", "a", "b", "a1", "solo"} {
			if rng.IntN(2) == 0 {
				s.Grants = append(s.Grants, sched.Balance{Project: p, Model: []string{"", "H100", "MI300X"}[rng.IntN(3)],
					Remaining: rng.Int64N(200_000)})
			}
		}
	}

	switch rng.IntN(6) {
	case 0:
		s.Config = sched.FIFO()
	case 1:
		s.Config = sched.EASY()
	case 2:
		s.Config = sched.Default()
	case 3:
		s.Config = sched.EASY()
		s.Config.Backfill, s.Config.Reservations = sched.BackfillConservative, 1+rng.IntN(4)
	case 4:
		s.Config = sched.Default()
		s.Config.Backfill = sched.BackfillEASY
		s.Config.FavorSmall = rng.IntN(2) == 0
	case 5:
		s.Config = sched.Default()
		s.Config.Backfill = sched.BackfillNone
	}
	if rng.IntN(3) == 0 {
		s.Config.Preemption = !s.Config.Preemption
	}
	if rng.IntN(8) == 0 {
		s.Config.Estimates = false
	}
	if err := s.Check(); err != nil {
		tb.Fatalf("seed %d: generated a bad snapshot: %v", seed, err)
	}
	return s, now
}

// describe prints a case for a failure message.
func describe(s *sched.Snapshot, now int64) string {
	var b strings.Builder
	nodes := s.Nodes
	fmt.Fprintf(&b, "now=%d config=%+v\n", now, s.Config)
	for i, n := range nodes {
		bl, g := s.Topology.Block(int32(i))
		fmt.Fprintf(&b, "  node %s %s/%s/%s acc=%d cpus=%d mem=%d %s\n", n.Name, n.Partition, g, bl, n.Accelerators, n.CPUs, n.MemoryMiB, n.State)
	}
	for _, p := range s.Partitions {
		fmt.Fprintf(&b, "  partition %s down=%v\n", p.Name, p.Down)
	}
	for _, r := range s.Running {
		fmt.Fprintf(&b, "  running %+v since=%d end=%d on %s\n", r.Job, r.Start, r.End(), slots(s.Topology, r.Alloc))
	}
	for _, j := range s.Pending {
		fmt.Fprintf(&b, "  pending %+v\n", j)
	}
	fmt.Fprintf(&b, "  grants %+v\n", s.Grants)
	return b.String()
}

// maxFailingSeeds bounds the report of a broken property: the first
// failing case is described in full, and the search stops after a few.
const maxFailingSeeds = 5

// forCases runs f on every random case and reports what it finds wrong.
func forCases(t *testing.T, f func(seed uint64, s *sched.Snapshot, now int64) []string) {
	t.Parallel()
	failing := 0
	for seed := range uint64(propertyCases) {
		s, now := randomCase(t, seed)
		bad := f(seed, s, now)
		for _, e := range bad {
			t.Errorf("seed %d: %s", seed, e)
		}
		if len(bad) == 0 {
			continue
		}
		if failing == 0 {
			t.Logf("seed %d:\n%s", seed, describe(s, now))
		}
		if failing++; failing == maxFailingSeeds {
			t.Logf("stopping after %d failing seeds", failing)
			return
		}
	}
}

// TestPropertyInvariants checks every invariant (see invariants) on every
// random case, one subtest per invariant: no accelerator, CPU or MiB given
// twice; gangs all or nothing on distinct nodes; packed jobs get exactly
// what they ask for on as few nodes as possible; nothing on drained or down
// nodes or closed partitions; reservations for the first blocked jobs that
// can be honoured; estimates not in the past; every pending job decided
// exactly once.
func TestPropertyInvariants(t *testing.T) {
	type tcase struct {
		s   *sched.Snapshot
		now int64
		d   *sched.Decisions
	}
	cases := make([]tcase, propertyCases)
	for seed := range cases {
		s, now := randomCase(t, uint64(seed))
		cases[seed] = tcase{s, now, sched.Plan(s, now)}
	}
	for _, inv := range invariants {
		t.Run(inv.name, func(t *testing.T) {
			t.Parallel()
			failing := 0
			for seed, c := range cases {
				bad := inv.check(newView(c.s, c.d), c.now, c.d)
				for _, e := range bad {
					t.Errorf("seed %d: %s", seed, e)
				}
				if len(bad) == 0 {
					continue
				}
				if failing == 0 {
					t.Logf("seed %d:\n%s\ndecisions:\n%s", seed, describe(c.s, c.now), strings.Join(formatDecisions(c.s, c.d), "\n"))
				}
				if failing++; failing == maxFailingSeeds {
					t.Logf("stopping after %d failing seeds", failing)
					return
				}
			}
		})
	}
}

// TestPropertyDeterministic: the same input gives the same decisions, when
// planned twice, and when the snapshot is rebuilt from its parts in another
// order (maps refilled, unordered lists shuffled, jobs re-sorted by ID).
// Plan must not modify its input either.
func TestPropertyDeterministic(t *testing.T) {
	forCases(t, func(seed uint64, s *sched.Snapshot, now int64) []string {
		var bad problems
		before := cloneSnapshot(s)
		d1 := sched.Plan(s, now)
		if diff := cmp.Diff(before, cloneSnapshot(s)); diff != "" {
			bad.add("Plan modified its snapshot (-before +after):\n%s", diff)
		}
		d2 := sched.Plan(s, now)
		if diff := cmp.Diff(d1, d2); diff != "" {
			bad.add("second plan differs (-first +second):\n%s", diff)
		}
		rng := rand.New(rand.NewPCG(seed, 7))
		sh := cloneSnapshot(s)
		sh.Topology = s.Topology
		rng.Shuffle(len(sh.Pending), func(a, b int) { sh.Pending[a], sh.Pending[b] = sh.Pending[b], sh.Pending[a] })
		rng.Shuffle(len(sh.Running), func(a, b int) { sh.Running[a], sh.Running[b] = sh.Running[b], sh.Running[a] })
		rng.Shuffle(len(sh.Projects), func(a, b int) { sh.Projects[a], sh.Projects[b] = sh.Projects[b], sh.Projects[a] })
		rng.Shuffle(len(sh.QoS), func(a, b int) { sh.QoS[a], sh.QoS[b] = sh.QoS[b], sh.QoS[a] })
		slices.SortFunc(sh.Pending, func(a, b model.Job) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(sh.Running, func(a, b sched.Running) int { return strings.Compare(a.Job.ID, b.Job.ID) })
		d3 := sched.Plan(sh, now)
		if diff := cmp.Diff(d1, d3); diff != "" {
			bad.add("reordered input gives other decisions (-sorted +reordered):\n%s", diff)
		}
		return bad
	})
}

// cloneSnapshot deep-copies s, without its topology (immutable, opaque).
func cloneSnapshot(s *sched.Snapshot) *sched.Snapshot {
	c := *s
	c.Topology = nil
	c.Nodes = slices.Clone(s.Nodes)
	c.Partitions = slices.Clone(s.Partitions)
	c.Running = slices.Clone(s.Running)
	for k := range c.Running {
		c.Running[k].Alloc = slices.Clone(c.Running[k].Alloc)
		c.Running[k].Job.Deps = slices.Clone(c.Running[k].Job.Deps)
	}
	c.Pending = slices.Clone(s.Pending)
	for k := range c.Pending {
		c.Pending[k].Deps = slices.Clone(c.Pending[k].Deps)
	}
	c.Finished = maps.Clone(s.Finished)
	c.Projects = slices.Clone(s.Projects)
	c.Usage = maps.Clone(s.Usage)
	c.QoS = slices.Clone(s.QoS)
	c.Grants = slices.Clone(s.Grants)
	return &c
}

// TestPropertyReservationsKept replays time: every reserved job, planned
// alone at its reserved start with what still runs then (jobs running now
// and jobs started now, to their limits, and reservations already under
// way), must start right then. Backfilled jobs must not have delayed it.
func TestPropertyReservationsKept(t *testing.T) {
	reserved := 0
	forCases(t, func(seed uint64, s *sched.Snapshot, now int64) []string {
		var bad problems
		d := sched.Plan(s, now)
		v := newView(s, d)
		for _, w := range d.Waiting {
			if !w.Reserved {
				continue
			}
			reserved++
			at := w.EstStart
			later := cloneSnapshot(s)
			later.Topology = s.Topology
			later.Running = nil
			keep := func(r sched.Running) {
				if r.End() > at {
					later.Running = append(later.Running, r)
				}
			}
			for _, r := range s.Running {
				if _, gone := v.preempts[r.Job.ID]; !gone {
					keep(r)
				}
			}
			for _, st := range d.Starts {
				keep(sched.Running{Job: *v.pending[st.JobID], Start: now, Alloc: st.Alloc})
			}
			for _, o := range d.Waiting {
				if o.Reserved && o.JobID != w.JobID && o.EstStart <= at {
					keep(sched.Running{Job: *v.pending[o.JobID], Start: o.EstStart, Alloc: o.Reservation})
				}
			}
			slices.SortFunc(later.Running, func(a, b sched.Running) int { return strings.Compare(a.Job.ID, b.Job.ID) })
			j := *v.pending[w.JobID]
			j.Deps = nil // what they waited on has happened by then
			later.Pending = []model.Job{j}
			later.Grants = nil
			for k := range later.QoS {
				later.QoS[k].MaxAcceleratorsPerProject = 0
			}
			later.Config.Preemption = false
			dl := sched.Plan(later, at)
			if len(dl.Starts) != 1 {
				bad.add("%s reserved at %d on %s, but planned alone then it waits: %+v", w.JobID, at,
					slots(s.Topology, w.Reservation), dl.Waiting)
			}
		}
		return bad
	})
	if reserved < 50 {
		t.Errorf("only %d reservations in %d cases: the generator no longer exercises backfill", reserved, propertyCases)
	}
}

// TestPropertyPlacement checks where jobs go, in passes without
// reservations or preemption, where the free room at each start is known
// by replaying the starts in order: a packed job that fits one node goes to
// the fitting node with the least room; a gang goes into one block when one
// can hold it (the tightest), else into the fewest blocks of one group,
// else into the fewest groups.
func TestPropertyPlacement(t *testing.T) {
	checked := 0
	forCases(t, func(seed uint64, s *sched.Snapshot, now int64) []string {
		var bad problems
		s.Config.Backfill = sched.BackfillNone
		s.Config.Preemption = false
		d := sched.Plan(s, now)
		v := newView(s, d)
		free := make([]amount, len(v.nodes))
		for i := range v.nodes {
			free[i] = nodeCap(&v.nodes[i])
		}
		take := func(ss []sched.Slot) {
			for _, sl := range ss {
				free[sl.Node] = free[sl.Node].minus(slotAmount(sl))
			}
		}
		for _, r := range s.Running {
			take(r.Alloc)
		}
		for _, st := range d.Starts {
			j := v.pending[st.JobID]
			if j == nil || len(st.Alloc) == 0 || v.shapeErr(j, st.Alloc) != "" {
				continue // TestPropertyInvariants reports it
			}
			part := v.partOf[st.Alloc[0].Node]
			if e := placementErr(v, free, part, j, st.Alloc); e != "" {
				bad.add("start %s on %s: %s", st.JobID, slots(s.Topology, st.Alloc), e)
			}
			checked++
			take(st.Alloc)
		}
		return bad
	})
	if checked < 200 {
		t.Errorf("only %d starts checked: the generator no longer exercises placement", checked)
	}
}

// placementErr says how alloc breaks the placement rules, given what was
// free just before.
func placementErr(v *view, free []amount, part int, j *model.Job, alloc []sched.Slot) string {
	topo := v.s.Topology
	fits := func(i int, need amount) bool { return v.usable[i] && v.partOf[i] == part && free[i].covers(need) }
	if j.Nodes == 0 && len(alloc) > 1 {
		return packedBlockErr(v, free, part, j, alloc)
	}
	if j.Nodes == 0 {
		got := int(alloc[0].Node)
		need := slotAmount(alloc[0])
		if need.acc == 0 && need.cpu == 0 {
			need.cpu = 1
		}
		for i := range v.nodes {
			if fits(i, need) && free[i].acc < free[got].acc {
				return fmt.Sprintf("best fit is %s with %d free accelerators, not %s with %d",
					v.nodes[i].Name, free[i].acc, v.nodes[got].Name, free[got].acc)
			}
		}
		return ""
	}
	per := slotAmount(alloc[0])
	if per.acc == 0 && per.cpu == 0 {
		per.cpu = 1
	}
	perBlock := map[string]int{}
	blockGroup := map[string]string{}
	var blocks []string
	for i := range v.nodes {
		b, g := topo.Block(int32(i))
		if v.partOf[i] != part {
			continue
		}
		if _, ok := blockGroup[b]; !ok {
			blocks = append(blocks, b)
		}
		blockGroup[b] = g
		if fits(i, per) {
			perBlock[b]++
		}
	}
	usedBlocks, usedGroups := map[string]bool{}, map[string]bool{}
	for _, sl := range alloc {
		b, g := topo.Block(sl.Node)
		usedBlocks[b], usedGroups[g] = true, true
	}
	// One block, the tightest that holds the gang.
	tightest := -1
	for _, b := range blocks {
		if n := perBlock[b]; n >= j.Nodes && (tightest < 0 || n < tightest) {
			tightest = n
		}
	}
	if tightest >= 0 {
		if len(usedBlocks) != 1 {
			return fmt.Sprintf("spans %d blocks though one block holds %d nodes", len(usedBlocks), j.Nodes)
		}
		for b := range usedBlocks {
			if perBlock[b] != tightest {
				return fmt.Sprintf("block %s had %d fitting nodes; a block with %d was tighter", b, perBlock[b], tightest)
			}
		}
		return ""
	}
	// The fewest blocks of one group.
	byGroup := map[string][]int{}
	for _, b := range blocks {
		byGroup[blockGroup[b]] = append(byGroup[blockGroup[b]], perBlock[b])
	}
	fewest := -1
	for _, counts := range byGroup {
		slices.Sort(counts)
		slices.Reverse(counts)
		got := 0
		for k, n := range counts {
			got += n
			if got >= j.Nodes {
				if fewest < 0 || k+1 < fewest {
					fewest = k + 1
				}
				break
			}
		}
	}
	if fewest >= 0 {
		if len(usedGroups) != 1 {
			return fmt.Sprintf("spans %d groups though one group holds %d nodes", len(usedGroups), j.Nodes)
		}
		if len(usedBlocks) != fewest {
			return fmt.Sprintf("spans %d blocks, %d would do", len(usedBlocks), fewest)
		}
		return ""
	}
	// The fewest groups.
	var sums []int
	for _, counts := range byGroup {
		s := 0
		for _, n := range counts {
			s += n
		}
		sums = append(sums, s)
	}
	slices.Sort(sums)
	slices.Reverse(sums)
	got, need := 0, 0
	for _, s := range sums {
		got += s
		need++
		if got >= j.Nodes {
			break
		}
	}
	if len(usedGroups) != need {
		return fmt.Sprintf("spans %d groups, %d would do", len(usedGroups), need)
	}
	return ""
}

// packedBlockErr checks a packed job larger than a node: when one block
// has the whole nodes and the rest it needs, the job goes into one block.
func packedBlockErr(v *view, free []amount, part int, j *model.Job, alloc []sched.Slot) string {
	if j.CPUs != 0 || j.MemoryMiB != 0 || j.Exclusive || !v.uniform(part) {
		return "" // shares of CPUs and memory per slot: not modelled here
	}
	topo := v.s.Topology
	m := v.maxAcc[part]
	full, rest := j.Accelerators/m, j.Accelerators%m
	type room struct{ whole, some int }
	blocks := map[string]*room{}
	for i := range v.nodes {
		if !v.usable[i] || v.partOf[i] != part {
			continue
		}
		b, _ := topo.Block(int32(i))
		if blocks[b] == nil {
			blocks[b] = &room{}
		}
		switch {
		case free[i].acc >= m:
			blocks[b].whole++
		case rest > 0 && free[i].acc >= rest:
			blocks[b].some++
		}
	}
	holder := ""
	for _, b := range slices.Sorted(maps.Keys(blocks)) {
		r := blocks[b]
		if r.whole >= full && (rest == 0 || r.some > 0 || r.whole > full) {
			holder = b
			break
		}
	}
	used := map[string]bool{}
	for _, sl := range alloc {
		b, _ := topo.Block(sl.Node)
		used[b] = true
	}
	if holder != "" && len(used) > 1 {
		return fmt.Sprintf("spans %d blocks though block %s holds all %d accelerators", len(used), holder, j.Accelerators)
	}
	return ""
}
