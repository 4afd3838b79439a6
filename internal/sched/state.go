package sched

import (
	"math"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// res is an amount of the three resources a node offers. A node that
// declares 0 CPUs or 0 memory does not limit them: they count as unbounded.
type res struct {
	acc int32
	cpu int32
	mem int64
}

const (
	unboundedCPU = math.MaxInt32 / 4
	unboundedMem = math.MaxInt64 / 4
)

func (r res) covers(n res) bool { return r.acc >= n.acc && r.cpu >= n.cpu && r.mem >= n.mem }
func (r res) plus(n res) res    { return res{r.acc + n.acc, r.cpu + n.cpu, r.mem + n.mem} }
func (r res) minus(n res) res   { return res{r.acc - n.acc, r.cpu - n.cpu, r.mem - n.mem} }
func (r res) min(n res) res     { return res{min(r.acc, n.acc), min(r.cpu, n.cpu), min(r.mem, n.mem)} }

func slotRes(s Slot) res { return res{int32(s.Accelerators), int32(s.CPUs), int64(s.MemoryMiB)} }

// state is the mutable view of the cluster during one pass: what is free on
// every node now, and what reservations set aside for later.
type state struct {
	t      *Topology
	usable []bool // node up and its partition open
	free   []res  // free now
	cap    []res  // capacity
	// usableByClass counts usable nodes per partition and capacity class.
	usableByClass [][]int
	// The same for the cluster as compiled, remembered across passes.
	compiledUsable  []bool
	compiledByClass [][]int

	// Reservations: spare is what jobs running past the node's earliest
	// reservation (tmin) may still hold without delaying any reservation.
	spare []res
	tmin  []int64
	// Per block, the earliest and latest reservation start on its nodes.
	blockLo, blockHi []int64

	// Per-block histograms of usable nodes by free accelerators, for
	// everything free now (histAll) and for what long jobs may take
	// (histLong: min(free, spare)). Row b holds h entries.
	h        int
	histAll  []int32
	histLong []int32
	// The same summed per partition.
	partAll, partLong []int32
	// levelBits[p][a] is a bitset over partition p's blocks (by position)
	// of those with a node at level a in histLong; resvBits[p] marks the
	// blocks holding reservations, whose rows depend on the job.
	levelBits [][][]uint64
	resvBits  [][]uint64
	resvList  [][]int32 // the same blocks, ascending

	anyResv bool
	touched []int32 // nodes whose spare, tmin or block bounds this pass changed

	// usableCompiled says usable and usableByClass are the compiled ones.
	usableCompiled bool
	// freeSynced says free is the planner base's free but for the nodes in
	// freeDirty (changed by this pass) and those the base changed since
	// (base.changed): the next pass restores only those.
	freeSynced bool
	freeDirty  []int32
}

var noLimit = res{math.MaxInt32 / 2, unboundedCPU, unboundedMem}

// reset prepares st for a pass over t, reusing its memory: everything
// free, nothing reserved. Histograms come after running jobs are held.
// asCompiled says nodes and parts are the topology's own, whose usable
// nodes are worked out once and remembered.
func (st *state) reset(t *Topology, nodes []model.Node, parts []model.Partition, asCompiled bool) {
	n := len(nodes)
	if st.t != t {
		*st = state{t: t}
		for _, p := range t.parts {
			st.h = max(st.h, p.maxAcc+1)
		}
		st.usable = make([]bool, n)
		st.free = make([]res, n)
		st.usableByClass = make([][]int, len(t.parts))
		for p := range t.parts {
			st.usableByClass[p] = make([]int, len(t.parts[p].classes))
		}
	}
	st.cap = t.cap
	// free is filled when running jobs are held (pass.holdRunning).
	if asCompiled && st.compiledUsable != nil {
		if !st.usableCompiled {
			copy(st.usable, st.compiledUsable)
			for p := range st.usableByClass {
				copy(st.usableByClass[p], st.compiledByClass[p])
			}
			st.usableCompiled = true
		}
	} else {
		st.usableCompiled = asCompiled
		for p := range st.usableByClass {
			clear(st.usableByClass[p])
		}
		for i := range nodes {
			u := nodes[i].State == model.NodeUp && !parts[t.nodePart[i]].Down
			st.usable[i] = u
			if u {
				st.usableByClass[t.nodePart[i]][t.nodeClass[i]]++
			}
		}
		if asCompiled {
			st.compiledUsable = slices.Clone(st.usable)
			st.compiledByClass = make([][]int, len(st.usableByClass))
			for p := range st.usableByClass {
				st.compiledByClass[p] = slices.Clone(st.usableByClass[p])
			}
		}
	}
	// Undo the last pass's reservations where it made any.
	for _, i := range st.touched {
		st.spare[i] = noLimit
		st.tmin[i] = math.MaxInt64
		b := t.nodeBlock[i]
		st.blockLo[b], st.blockHi[b] = math.MaxInt64, math.MinInt64
	}
	st.touched = st.touched[:0]
	st.anyResv = false
}

// nodeCap is what a node offers when idle.
func nodeCap(nd *model.Node) res {
	c := res{int32(nd.Accelerators), int32(nd.CPUs), nd.MemoryMiB}
	if c.cpu == 0 {
		c.cpu = unboundedCPU
	}
	if c.mem == 0 {
		c.mem = unboundedMem
	}
	return c
}

// hold takes r from node i (a running or starting job).
func (st *state) hold(i int32, r res) { st.free[i] = st.free[i].minus(r) }

// release gives r back to node i (a preempted job).
func (st *state) release(i int32, r res) {
	st.setFree(i, st.free[i].plus(r))
}

func (st *state) setFree(i int32, f res) {
	if st.histAll != nil && st.usable[i] {
		st.move(st.histAll, st.partAll, i, st.free[i].acc, f.acc)
		st.move(st.histLong, st.partLong, i, st.long(i).acc, f.min(st.spareOf(i)).acc)
	}
	if st.freeSynced {
		st.freeDirty = append(st.freeDirty, i)
	}
	st.free[i] = f
}

// move counts node i at level to instead of from in a histogram and its
// partition sums.
func (st *state) move(hist, part []int32, i int32, from, to int32) {
	b, p := int(st.t.nodeBlock[i])*st.h, int(st.t.nodePart[i])*st.h
	f, t := clampAcc(from, st.h), clampAcc(to, st.h)
	if f == t {
		return
	}
	hist[b+f]--
	hist[b+t]++
	part[p+f]--
	part[p+t]++
	if &hist[0] == &st.histLong[0] {
		bl := &st.t.blocks[st.t.nodeBlock[i]]
		bits := st.levelBits[bl.part]
		if hist[b+f] == 0 {
			bits[f][bl.pos/64] &^= 1 << (bl.pos % 64)
		}
		if hist[b+t] == 1 {
			bits[t][bl.pos/64] |= 1 << (bl.pos % 64)
		}
	}
}

func clampAcc(a int32, h int) int {
	if a < 0 {
		return 0
	}
	if int(a) >= h {
		return h - 1
	}
	return int(a)
}

func (st *state) spareOf(i int32) res {
	if st.spare == nil {
		return noLimit
	}
	return st.spare[i]
}

// long is what a job that runs past node i's earliest reservation may take.
func (st *state) long(i int32) res { return st.free[i].min(st.spareOf(i)) }

// buildHist computes the block histograms once running jobs are held.
func (st *state) buildHist() {
	st.ensureHist()
	h := st.h
	st.fillHist(h)
}

// ensureHist allocates the histograms for the topology.
func (st *state) ensureHist() {
	nb, np, h := len(st.t.blocks), len(st.t.parts), st.h
	if len(st.histAll) != nb*h {
		st.histAll = make([]int32, nb*h)
		st.histLong = make([]int32, nb*h)
		st.partAll = make([]int32, np*h)
		st.partLong = make([]int32, np*h)
		st.levelBits = make([][][]uint64, np)
		st.resvBits = make([][]uint64, np)
		st.resvList = make([][]int32, np)
		for p := range st.t.parts {
			words := (len(st.t.parts[p].blocks) + 63) / 64
			st.levelBits[p] = make([][]uint64, h)
			for a := range h {
				st.levelBits[p][a] = make([]uint64, words)
			}
			st.resvBits[p] = make([]uint64, words)
		}
	}
}

// fillHist counts every usable node into the histograms.
func (st *state) fillHist(h int) {
	clear(st.histAll)
	clear(st.partAll)
	for b := range st.t.blocks {
		row := st.histAll[b*h : (b+1)*h]
		for _, i := range st.t.blocks[b].nodes {
			if st.usable[i] {
				a := st.free[i].acc
				if uint32(a) >= uint32(h) {
					a = int32(clampAcc(a, h))
				}
				row[a]++
			}
		}
	}
	// Nothing is reserved yet: what long jobs may take is what is free.
	copy(st.histLong, st.histAll)
	for p := range st.t.parts {
		for a := range h {
			clear(st.levelBits[p][a])
		}
		clear(st.resvBits[p])
		st.resvList[p] = st.resvList[p][:0]
	}
	for b := range st.t.blocks {
		bl := &st.t.blocks[b]
		row := st.histAll[b*h : (b+1)*h]
		part := st.partAll[int(bl.part)*h : int(bl.part+1)*h]
		for a, c := range row {
			if c > 0 {
				part[a] += c
				st.levelBits[bl.part][a][bl.pos/64] |= 1 << (bl.pos % 64)
			}
		}
	}
	copy(st.partLong, st.partAll)
}

// setSpare changes what long jobs may take from node i.
func (st *state) setSpare(i int32, s res) {
	if st.usable[i] {
		st.move(st.histLong, st.partLong, i, st.long(i).acc, st.free[i].min(s).acc)
	}
	st.spare[i] = s
}

// reserve sets r aside on node i from time at on; hypAt is what the node
// will have free at that time before this reservation.
func (st *state) reserve(i int32, r res, at int64, hypAt res) {
	st.touched = append(st.touched, i)
	if st.spare == nil {
		n := len(st.free)
		st.spare = make([]res, n)
		st.tmin = make([]int64, n)
		for k := range st.spare {
			st.spare[k] = noLimit
			st.tmin[k] = math.MaxInt64
		}
		st.blockLo = make([]int64, len(st.t.blocks))
		st.blockHi = make([]int64, len(st.t.blocks))
		for b := range st.blockLo {
			st.blockLo[b], st.blockHi[b] = math.MaxInt64, math.MinInt64
		}
	}
	b := st.t.nodeBlock[i]
	if bl := &st.t.blocks[b]; st.blockLo[b] > st.blockHi[b] {
		st.resvBits[bl.part][bl.pos/64] |= 1 << (bl.pos % 64)
		list := append(st.resvList[bl.part], b)
		slices.Sort(list)
		st.resvList[bl.part] = list
	}
	st.blockLo[b] = min(st.blockLo[b], at)
	st.blockHi[b] = max(st.blockHi[b], at)
	st.anyResv = true
	st.tmin[i] = min(st.tmin[i], at)
	st.setSpare(i, st.spare[i].minus(r).min(hypAt.minus(r)))
}

// availFor is what a job ending at end may take from node i now.
func (st *state) availFor(i int32, end int64) res {
	if !st.usable[i] {
		return res{}
	}
	if st.anyResv && end > st.tmin[i] {
		return st.long(i)
	}
	return st.free[i]
}

// useFor records that a job ending at end takes r from node i.
func (st *state) useFor(i int32, r res, end int64) {
	if st.anyResv && end > st.tmin[i] {
		st.setSpare(i, st.spare[i].minus(r))
	}
	st.setFree(i, st.free[i].minus(r))
}

// unuseFor undoes useFor.
func (st *state) unuseFor(i int32, r res, end int64) {
	if st.anyResv && end > st.tmin[i] {
		st.setSpare(i, st.spare[i].plus(r))
	}
	st.setFree(i, st.free[i].plus(r))
}
