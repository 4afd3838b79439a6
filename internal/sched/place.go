package sched

import (
	"math"
	"math/bits"
	"slices"
)

// view is one way of looking at what nodes offer: now for a job of a given
// end, or at a future time while a reservation is searched.
type view struct {
	t *Topology
	// How avail reads a node: from st (mode viewNow: free now; viewFor:
	// what a job ending at end may take; viewHyp: free now plus delta, a
	// reservation search's copy). A switch rather than a func value, so the
	// hot loops call no closure.
	mode  viewMode
	st    *state
	delta []res
	// hist, when set, counts nodes per block by available accelerators
	// (h entries a row). Counting with it is fast but ignores CPUs and
	// memory; placement verifies them and recounts exactly when needed.
	hist []int32
	h    int
	// With reservations, a block whose reserved nodes all begin their
	// reservations after the job ends reads its row from short (everything
	// free now); one whose reservations all begin before reads hist (what
	// long jobs may take); a block in between is scanned.
	short []int32
	// levels, when set, sums hist per partition: the fast path skips
	// empty levels.
	levels []int32
	// fast, when set, is the pass state whose block bitsets let one()
	// jump to the blocks that have a node at a given level.
	fast   *state
	lo, hi []int64 // per block: earliest and latest reservation start; lo > hi when none
	end    int64
}

type viewMode int8

const (
	viewNow viewMode = iota
	viewFor
	viewHyp
)

// avail is what node i offers as v sees it.
func (v *view) avail(i int32) res {
	st := v.st
	if !st.usable[i] {
		return res{}
	}
	switch v.mode {
	case viewFor:
		if st.anyResv && v.end > st.tmin[i] {
			return st.long(i)
		}
		return st.free[i]
	case viewHyp:
		f, d := st.free[i], v.delta[i]
		return res{f.acc + d.acc, f.cpu + d.cpu, f.mem + d.mem}
	}
	return st.free[i]
}

// row returns block b's histogram row, or nil when b must be scanned.
func (v *view) row(b int32) []int32 {
	if v.hist == nil {
		return nil
	}
	r := v.hist[int(b)*v.h : int(b+1)*v.h]
	if v.short == nil || v.lo[b] > v.hi[b] || v.end > v.hi[b] {
		return r
	}
	if v.end <= v.lo[b] {
		return v.short[int(b)*v.h : int(b+1)*v.h]
	}
	return nil
}

// count is how many nodes of block b can hold per.
func (v *view) count(b int32, per res) int {
	if per.acc >= int32(v.h) {
		return 0
	}
	if row := v.row(b); row != nil {
		n := int32(0)
		for _, c := range row[max(per.acc, 0):] {
			n += c
		}
		return int(n)
	}
	n := 0
	for _, i := range v.t.blocks[b].nodes {
		if v.avail(i).covers(per) {
			n++
		}
	}
	return n
}

// placer finds nodes for requests. Its scratch space is reused across calls.
type placer struct {
	t      *Topology
	cnt    []int   // per block
	order  []int32 // scratch list of blocks or groups
	cand   []cand
	picked []int32
	// Scratch for spreading a gang over groups.
	gsum       []int // per group: nodes that can hold the request
	groupOrder []int32
}

type cand struct {
	node  int32
	avail int32
}

func newPlacer(t *Topology) *placer {
	return &placer{t: t, cnt: make([]int, len(t.blocks))}
}

// outcome of a placement attempt.
type outcome int

const (
	placed  outcome = iota
	noRoom          // not enough nodes in the partition
	noBlock         // enough nodes, but not in one block as the job demands
	recount         // the histogram overcounted (CPUs or memory): retry exactly
)

// gang picks n nodes that each hold per, in partition p: one block if one
// can hold it (the tightest), else the fewest blocks of one group, else the
// fewest groups. The result aliases scratch space.
func (pl *placer) gang(v *view, p int32, n int, per res, oneBlock bool) ([]int32, outcome) {
	pi := &pl.t.parts[p]
	total := 0
	if v.hist != nil && v.short == nil && per.acc >= 0 && int(per.acc) < v.h {
		// Every row is in hist: count without asking row() each block.
		h, from := v.h, int(per.acc)
		for _, b := range pi.blocks {
			c := int32(0)
			for _, x := range v.hist[int(b)*h+from : int(b+1)*h] {
				c += x
			}
			pl.cnt[b] = int(c)
			total += int(c)
		}
	} else {
		for _, b := range pi.blocks {
			c := v.count(b, per)
			pl.cnt[b] = c
			total += c
		}
	}
	if total < n {
		return nil, noRoom
	}
	best := int32(-1)
	for _, b := range pi.blocks {
		if c := pl.cnt[b]; c >= n && (best < 0 || c < pl.cnt[best]) {
			best = b
		}
	}
	pl.order = pl.order[:0]
	if best >= 0 {
		pl.order = append(pl.order, best)
		return pl.pick(v, n, per, true)
	}
	if oneBlock {
		return nil, noBlock
	}
	// Fewest blocks within one group.
	bestG, bestBlocks, bestLeft := int32(-1), 0, 0
	for _, g := range pi.groups {
		sum := 0
		for _, b := range pl.t.groups[g].blocks {
			sum += pl.cnt[b]
		}
		if sum < n {
			continue
		}
		nb, left := pl.blocksNeeded(pl.t.groups[g].blocks, n)
		if bestG < 0 || nb < bestBlocks || (nb == bestBlocks && left < bestLeft) {
			bestG, bestBlocks, bestLeft = g, nb, left
		}
	}
	if bestG >= 0 {
		pl.order = append(pl.order[:0], pl.t.groups[bestG].blocks...)
		pl.sortByCount(pl.order)
		return pl.pick(v, n, per, true)
	}
	// Fewest groups: the fullest groups first, their fullest blocks first.
	if len(pl.gsum) < len(pl.t.groups) {
		pl.gsum = make([]int, len(pl.t.groups))
	}
	for _, g := range pi.groups {
		s := 0
		for _, b := range pl.t.groups[g].blocks {
			s += pl.cnt[b]
		}
		pl.gsum[g] = s
	}
	gsum := func(g int32) int { return pl.gsum[g] }
	gs := append(pl.groupOrder[:0], pi.groups...)
	pl.groupOrder = gs
	slices.SortStableFunc(gs, func(a, b int32) int { return gsum(b) - gsum(a) })
	pl.order = pl.order[:0]
	got := 0
	for _, g := range gs {
		if got >= n {
			break
		}
		start := len(pl.order)
		pl.order = append(pl.order, pl.t.groups[g].blocks...)
		pl.sortByCount(pl.order[start:])
		got += gsum(g)
	}
	return pl.pick(v, n, per, true)
}

func (pl *placer) sortByCount(bs []int32) {
	slices.SortStableFunc(bs, func(a, b int32) int { return pl.cnt[b] - pl.cnt[a] })
}

// blocksNeeded is how many of the fullest blocks hold n nodes, and how many
// nodes would be left over in the last of them.
func (pl *placer) blocksNeeded(bs []int32, n int) (int, int) {
	pl.order = append(pl.order[:0], bs...)
	pl.sortByCount(pl.order)
	got := 0
	for k, b := range pl.order {
		got += pl.cnt[b]
		if got >= n {
			return k + 1, got - n
		}
	}
	return len(bs) + 1, 0
}

// pick takes n nodes from the blocks in pl.order, in that order, best fit
// within each block (the nodes with the least room that holds per first).
// counted says pl.cnt holds this view's counts of the blocks: a block
// counted empty has no node that holds per (counts only ever overcount),
// and is not scanned.
func (pl *placer) pick(v *view, n int, per res, counted bool) ([]int32, outcome) {
	pl.picked = pl.picked[:0]
	for _, b := range pl.order {
		need := n - len(pl.picked)
		if need == 0 {
			break
		}
		if counted && pl.cnt[b] == 0 {
			continue
		}
		pl.cand = pl.cand[:0]
		sorted := true
		for _, i := range pl.t.blocks[b].nodes {
			if a := v.avail(i); a.covers(per) {
				if k := len(pl.cand); k > 0 && pl.cand[k-1].avail > a.acc {
					sorted = false // nodes come in ascending order: only room can disorder them
				}
				pl.cand = append(pl.cand, cand{i, a.acc})
			}
		}
		if !sorted {
			slices.SortFunc(pl.cand, func(x, y cand) int {
				if x.avail != y.avail {
					return int(x.avail - y.avail)
				}
				return int(x.node - y.node)
			})
		}
		if len(pl.cand) < min(need, pl.cnt[b]) && v.hist != nil {
			return nil, recount
		}
		for _, c := range pl.cand[:min(need, len(pl.cand))] {
			pl.picked = append(pl.picked, c.node)
		}
	}
	if len(pl.picked) < n {
		if v.hist != nil {
			return nil, recount
		}
		return nil, noRoom
	}
	return pl.picked, placed
}

// one finds the single node of partition p with the least room that still
// holds need (best fit), preferring lower indices. It returns -1 if none.
func (pl *placer) one(v *view, p int32, need res) int32 {
	pi := &pl.t.parts[p]
	if v.fast != nil && need.acc > 0 {
		return pl.oneFast(v, p, need)
	}
	if v.hist != nil && need.acc > 0 {
		// Blocks the histogram does not describe are scanned once; the
		// others are searched level by level, tightest first.
		best, bestAcc := int32(-1), int32(math.MaxInt32)
		for _, b := range pi.blocks {
			if v.row(b) != nil {
				continue
			}
			for _, i := range pl.t.blocks[b].nodes {
				if av := v.avail(i); av.covers(need) && av.acc < bestAcc {
					best, bestAcc = i, av.acc
				}
			}
		}
		for a := int(need.acc); a < v.h && int32(a) <= bestAcc; a++ {
			for _, b := range pi.blocks {
				if row := v.row(b); row == nil || row[a] == 0 {
					continue
				}
				for _, i := range pl.t.blocks[b].nodes {
					if av := v.avail(i); int(av.acc) == a && av.covers(need) {
						if int32(a) < bestAcc || i < best {
							return i
						}
						return best
					}
				}
			}
		}
		return best
	}
	best, bestAcc := int32(-1), int32(0)
	for _, i := range pi.nodes {
		av := v.avail(i)
		if !av.covers(need) {
			continue
		}
		// CPU-only work prefers nodes without accelerators, then the
		// tightest fit in accelerators.
		if best < 0 || av.acc < bestAcc {
			best, bestAcc = i, av.acc
		}
	}
	return best
}

// oneFast is one() on the pass state, level by level from the tightest:
// blocks holding reservations are checked through their rows (or scanned
// when the job ends between their reservations), the others found through
// the level bitsets. At a level, the lowest node index wins.
func (pl *placer) oneFast(v *view, p int32, need res) int32 {
	st, pi := v.fast, &pl.t.parts[p]
	best, bestAcc := int32(-1), int32(math.MaxInt32)
	consider := func(i int32, a int32) {
		if a < bestAcc || (a == bestAcc && i < best) {
			best, bestAcc = i, a
		}
	}
	first := func(b int32, a int) int32 {
		for _, i := range pl.t.blocks[b].nodes {
			if av := v.avail(i); int(av.acc) == a && av.covers(need) {
				return i
			}
		}
		return -1
	}
	for _, b := range st.resvList[p] {
		if v.row(b) != nil {
			continue
		}
		for _, i := range pl.t.blocks[b].nodes {
			if av := v.avail(i); av.covers(need) {
				consider(i, av.acc)
			}
		}
	}
	resv := st.resvBits[p]
	for a := int(need.acc); a < v.h && int32(a) <= bestAcc; a++ {
		for _, b := range st.resvList[p] {
			if row := v.row(b); row != nil && row[a] > 0 {
				if i := first(b, a); i >= 0 {
					consider(i, int32(a))
					break
				}
			}
		}
		if v.levels[int(p)*v.h+a] > 0 {
		words:
			for w, word := range st.levelBits[p][a] {
				for x := word &^ resv[w]; x != 0; x &= x - 1 {
					if i := first(pi.blocks[w*64+bits.TrailingZeros64(x)], a); i >= 0 {
						consider(i, int32(a))
						break words
					}
				}
			}
		}
		if bestAcc == int32(a) {
			return best
		}
	}
	return best
}
