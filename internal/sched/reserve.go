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
// pass) in time order, freeing their slots on a copy of the free state from
// which earlier reservations are subtracted for good, and places j on that
// copy after each step. Treating earlier reservations as permanent is
// pessimistic, but guarantees they never collide.
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

// runningByEnd lists the indices of running jobs by end time, built once.
func (p *pass) runningByEnd() []int {
	if p.byEnd == nil {
		p.byEnd = make([]int, len(p.s.Running))
		for k := range p.byEnd {
			p.byEnd[k] = k
		}
		slices.SortStableFunc(p.byEnd, func(a, b int) int {
			return cmp.Compare(p.s.Running[a].End(), p.s.Running[b].End())
		})
	}
	return p.byEnd
}

func (p *pass) reserveIn(part int32, j *model.Job) (int64, []Slot, []res, bool) {
	st, t := p.st, p.t
	pi := &t.parts[part]
	if p.hyp == nil {
		p.hyp = make([]res, len(st.free))
		p.hypHist = make([]int32, len(st.histAll))
	}
	hyp, hist, h := p.hyp, p.hypHist, st.h
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
	enough := 0 // usable nodes of the partition with at least g free
	for _, b := range pi.blocks {
		clear(hist[int(b)*h : int(b+1)*h])
	}
	for _, i := range pi.nodes {
		if !st.usable[i] {
			continue
		}
		hv := st.free[i]
		if st.resv != nil {
			hv = hv.minus(st.resv[i])
		}
		hyp[i] = hv
		hist[int(t.nodeBlock[i])*h+clampAcc(hv.acc, h)]++
		if hv.acc >= g {
			enough++
		}
	}
	v := view{t: t, hist: hist, h: h, avail: func(i int32) res {
		if !st.usable[i] {
			return res{}
		}
		return hyp[i]
	}}
	free := func(sl Slot) {
		i := sl.Node
		if i < 0 || int(i) >= len(hyp) || t.nodePart[i] != part || !st.usable[i] {
			return
		}
		old := hyp[i]
		nv := old.plus(slotRes(sl))
		hyp[i] = nv
		b := int(t.nodeBlock[i]) * h
		hist[b+clampAcc(old.acc, h)]--
		hist[b+clampAcc(nv.acc, h)]++
		if old.acc < g && nv.acc >= g {
			enough++
		}
	}
	try := func(at int64) ([]Slot, []res, bool) {
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
			at2[k] = hyp[sl.Node]
		}
		return slots, at2, true
	}
	started := slices.Clone(p.started)
	slices.SortStableFunc(started, func(a, b commitment) int { return cmp.Compare(a.end, b.end) })
	run := p.runningByEnd()
	ri, si := 0, 0
	for ri < len(run) || si < len(started) {
		// The next end time, and every slot freed then.
		var at int64 = math.MaxInt64
		if ri < len(run) {
			at = p.s.Running[run[ri]].End()
		}
		if si < len(started) {
			at = min(at, started[si].end)
		}
		for ri < len(run) && p.s.Running[run[ri]].End() == at {
			r := &p.s.Running[run[ri]]
			if !p.preempted[r.Job.ID] {
				for _, sl := range r.Alloc {
					free(sl)
				}
			}
			ri++
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
