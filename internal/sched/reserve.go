package sched

import (
	"cmp"
	"math"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// reserve finds the earliest time and the slots at which j can start
// without delaying earlier reservations, and sets them aside: jobs that
// would still run then may no longer take what the reservation needs.
//
// The search walks the ends of running jobs (and of jobs started in this
// pass) in time order, freeing their slots on a copy of the free state, and
// after each step places j on that copy minus every earlier reservation
// whose time overlaps the window j would run in. Holding all overlapping
// reservations at once is pessimistic when they do not overlap each
// other, but guarantees they never collide.
func (p *pass) reserve(w *Wait, j *model.Job, elig []int32) bool {
	bestT := int64(math.MaxInt64)
	var best []Slot
	var bestHyp []res
	for _, part := range elig {
		t, slots, hypAt, ok := p.reserveIn(part, j)
		if ok && t < bestT {
			bestT, best, bestHyp = t, slots, hypAt
		}
	}
	if best == nil {
		return false
	}
	for k, sl := range best {
		p.st.reserve(sl.Node, slotRes(sl), bestT, bestHyp[k])
	}
	p.reservations = append(p.reservations, booking{start: bestT, end: bestT + j.Limit, slots: best})
	w.Reserved, w.EstStart, w.Reservation = true, bestT, best
	p.nresv++
	p.dec.Stats.Reserved++
	return true
}

// booking is a reservation: slots held from start to end.
type booking struct {
	start, end int64
	slots      []Slot
}

// endingAt returns the n-th earliest end of a running job (by end time,
// then index), or false past the last. The running jobs go into a min-heap
// once a pass, and the ends are taken from it in order only as far as a
// search reaches; later searches of the pass read the taken prefix again.
// So a search that succeeds early never pays for sorting every running job,
// and no search copies the heap.
func (p *pass) endingAt(n int) (ending, bool) {
	if !p.heaped {
		p.heaped = true
		p.byEnd, p.ends = p.byEnd[:0], p.ends[:0]
		for k := range p.s.Running {
			p.byEnd = append(p.byEnd, ending{p.s.Running[k].End(), int32(k)})
		}
		for n := len(p.byEnd)/2 - 1; n >= 0; n-- {
			siftDown(p.byEnd, n)
		}
	}
	for len(p.ends) <= n {
		if len(p.byEnd) == 0 {
			return ending{}, false
		}
		var e ending
		e, p.byEnd = pop(p.byEnd)
		p.ends = append(p.ends, e)
	}
	return p.ends[n], true
}

func (a ending) less(b ending) bool { return a.end < b.end || (a.end == b.end && a.k < b.k) }

func siftDown(h []ending, n int) {
	for {
		c := 2*n + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].less(h[c]) {
			c++
		}
		if !h[c].less(h[n]) {
			return
		}
		h[n], h[c] = h[c], h[n]
		n = c
	}
}

// pop removes the earliest ending from heap h.
func pop(h []ending) (ending, []ending) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	siftDown(h, 0)
	return top, h
}

// ending is when running job k ends.
type ending struct {
	end int64
	k   int32
}

func (p *pass) reserveIn(part int32, j *model.Job) (int64, []Slot, []res, bool) {
	st, t := p.st, p.t
	pi := &t.parts[part]
	if len(p.hyp) != len(st.free) {
		p.hyp = make([]res, len(st.free))
		p.hypHist = make([]int32, len(st.histAll))
	}
	// The copy is what is free now plus a sparse delta (hyp) for the nodes
	// the search frees or reserves, cleared again on the way out.
	delta, hist, h := p.hyp, p.hypHist, st.h
	touched := p.touchedHyp[:0]
	defer func() {
		for _, i := range touched {
			delta[i] = res{}
		}
		p.touchedHyp = touched[:0]
	}()
	hypOf := func(i int32) res { return st.free[i].plus(delta[i]) }
	// What the job needs per node, for a cheap test before placing.
	g, nodesNeeded := int32(0), 1
	switch {
	case j.Nodes > 0:
		g, nodesNeeded = p.perNode(j, part).acc, j.Nodes
	case j.Accelerators <= pi.maxAcc:
		g = p.packedNeed(j, part).acc
	default:
		g, nodesNeeded = int32(pi.maxAcc), j.Accelerators/pi.maxAcc
	}
	// The copy starts as what is free now; the pass keeps histAll and
	// partAll in step with it.
	copy(hist, st.histAll)
	enough := 0 // usable nodes of the partition with at least g free
	for a := int(max(g, 0)); a < h; a++ {
		enough += int(st.partAll[int(part)*h+a])
	}
	v := view{t: t, mode: viewHyp, st: st, delta: delta, hist: hist, h: h}
	// adjust changes what the copy has free on a slot's node by sign × the slot.
	adjust := func(sl Slot, sign int32) {
		i := sl.Node
		if i < 0 || int(i) >= len(delta) || t.nodePart[i] != part || !st.usable[i] {
			return
		}
		old := hypOf(i)
		r := slotRes(sl)
		nv := res{old.acc + sign*r.acc, old.cpu + sign*r.cpu, old.mem + int64(sign)*r.mem}
		if delta[i] == (res{}) {
			touched = append(touched, i)
		}
		delta[i] = nv.minus(st.free[i])
		b := int(t.nodeBlock[i]) * h
		hist[b+clampAcc(old.acc, h)]--
		hist[b+clampAcc(nv.acc, h)]++
		switch {
		case old.acc < g && nv.acc >= g:
			enough++
		case old.acc >= g && nv.acc < g:
			enough--
		}
	}
	free := func(sl Slot) { adjust(sl, 1) }
	// Earlier reservations are held on the copy while they overlap the
	// window [from, from+limit) that j would run in; as the search moves
	// later, they come in (their start falls inside) and go out (they end).
	in := p.resvIn[:0] // 0 not yet, 1 held, 2 gone
	for range p.reservations {
		in = append(in, 0)
	}
	p.resvIn = in
	window := func(from int64) {
		for k, b := range p.reservations {
			switch {
			case in[k] == 0 && b.end > from && b.start < from+j.Limit:
				in[k] = 1
				for _, sl := range b.slots {
					adjust(sl, -1)
				}
			case in[k] == 1 && b.end <= from:
				in[k] = 2
				for _, sl := range b.slots {
					adjust(sl, 1)
				}
			case in[k] == 0 && b.end <= from:
				in[k] = 2
			}
		}
	}
	try := func(at int64) ([]Slot, []res, bool) {
		window(max(at, p.now))
		if enough < nodesNeeded {
			return nil, nil, false
		}
		slots, out := p.placeIn(&v, part, j)
		if out == recount {
			v.hist = nil
			slots, out = p.placeIn(&v, part, j)
			v.hist = hist
		}
		if out != placed {
			return nil, nil, false
		}
		at2 := make([]res, len(slots))
		for k, sl := range slots {
			at2[k] = hypOf(sl.Node)
		}
		return slots, at2, true
	}
	started := append(p.startedByEnd[:0], p.started...)
	slices.SortStableFunc(started, func(a, b commitment) int { return cmp.Compare(a.end, b.end) })
	p.startedByEnd = started
	// Earlier reservations ending free nothing on the copy, but the window
	// after them is clear of them: try then too.
	resvEnds := p.resvEnds[:0]
	for _, b := range p.reservations {
		resvEnds = append(resvEnds, b.end)
	}
	slices.Sort(resvEnds)
	p.resvEnds = resvEnds
	// The order of the slots freed at one time does not matter: freeing
	// only adds to the copy.
	checkPreempted := len(p.preempted) > 0
	next, more := p.endingAt(0)
	ri, si, bi := 0, 0, 0
	for more || si < len(started) || bi < len(resvEnds) {
		// The next end time, and every slot freed then.
		var at int64 = math.MaxInt64
		if more {
			at = next.end
		}
		if si < len(started) {
			at = min(at, started[si].end)
		}
		if bi < len(resvEnds) {
			at = min(at, resvEnds[bi])
		}
		for bi < len(resvEnds) && resvEnds[bi] == at {
			bi++
		}
		for more && next.end == at {
			r := &p.s.Running[next.k]
			if !checkPreempted || !p.preempted[r.Job.ID] {
				for _, sl := range r.Alloc {
					free(sl)
				}
			}
			ri++
			next, more = p.endingAt(ri)
		}
		for si < len(started) && started[si].end == at {
			for _, sl := range started[si].slots {
				free(sl)
			}
			si++
		}
		if slots, hypAt, ok := try(at); ok {
			return max(at, p.now), slots, hypAt, true
		}
	}
	return 0, nil, nil, false
}
