package sched

import (
	"slices"
)

// The estimate profile counts free accelerators per partition over future
// time, on a grid that is fine near now and coarse far away: a minute for
// the first day, ten minutes to a week, an hour to sixty days, a day to
// about 400 days. Estimates therefore round up to the grid, and a job that
// would start past the horizon gets no estimate. The profile ignores
// topology and fragmentation (a gang needing whole nodes counts as its
// accelerators), so an estimate is a lower bound — except for reserved
// jobs, whose start is exact.
//
// grid returns the bucket start offsets from now.
func grid() []int64 {
	steps := []struct{ until, step int64 }{
		{24 * 3600, 60},
		{7 * 24 * 3600, 600},
		{60 * 24 * 3600, 3600},
		{400 * 24 * 3600, 24 * 3600},
	}
	var off []int64
	t := int64(0)
	for _, s := range steps {
		for ; t < s.until; t += s.step {
			off = append(off, t)
		}
	}
	return off
}

// profile is a segment tree over the grid holding the minimum free
// accelerators, with lazy range addition.
type profile struct {
	n    int // leaves
	size int
	mn   []int64
	lz   []int64
}

func newProfile(leaves []int64) *profile {
	size := 1
	for size < len(leaves) {
		size <<= 1
	}
	pr := &profile{n: len(leaves), size: size, mn: make([]int64, 2*size), lz: make([]int64, 2*size)}
	for i := range size {
		if i < len(leaves) {
			pr.mn[size+i] = leaves[i]
		} else {
			pr.mn[size+i] = 1 << 62 // padding never blocks
		}
	}
	for i := size - 1; i >= 1; i-- {
		pr.mn[i] = min(pr.mn[2*i], pr.mn[2*i+1])
	}
	return pr
}

// add adds v to buckets [l, r).
func (pr *profile) add(l, r int, v int64) { pr.addRec(1, 0, pr.size, l, r, v) }

func (pr *profile) addRec(x, lo, hi, l, r int, v int64) {
	if r <= lo || hi <= l {
		return
	}
	if l <= lo && hi <= r {
		pr.mn[x] += v
		pr.lz[x] += v
		return
	}
	mid := (lo + hi) / 2
	pr.addRec(2*x, lo, mid, l, r, v)
	pr.addRec(2*x+1, mid, hi, l, r, v)
	pr.mn[x] = min(pr.mn[2*x], pr.mn[2*x+1]) + pr.lz[x]
}

// lastBelow returns the last bucket in [l, r) whose value is below need,
// or -1 when none is.
func (pr *profile) lastBelow(l, r int, need int64) int {
	return pr.lastRec(1, 0, pr.size, l, r, need, 0)
}

func (pr *profile) lastRec(x, lo, hi, l, r int, need, acc int64) int {
	if r <= lo || hi <= l || pr.mn[x]+acc >= need {
		return -1
	}
	if hi-lo == 1 {
		return lo
	}
	acc += pr.lz[x]
	mid := (lo + hi) / 2
	if k := pr.lastRec(2*x+1, mid, hi, l, r, need, acc); k >= 0 {
		return k
	}
	return pr.lastRec(2*x, lo, mid, l, r, need, acc)
}

// estimateAll gives every queued job an estimated start: reservations and
// jobs started in this pass are laid on a per-partition profile of free
// accelerators, then each waiting job, in rank order, takes the earliest
// window long enough for it and holds it, as conservative backfill would.
func (p *pass) estimateAll() {
	if len(p.estimate) == 0 {
		return
	}
	off := grid()
	horizon := off[len(off)-1]
	// ceil returns the first bucket starting at or after offset d.
	ceil := func(d int64) int {
		if d <= 0 {
			return 0
		}
		if d > horizon {
			return len(off)
		}
		k, _ := slices.BinarySearch(off, d)
		return k
	}
	profiles := make([]*profile, len(p.t.parts))
	leaves := make([]int64, len(off))
	diff := make([][]int64, len(p.t.parts))
	for part := range p.t.parts {
		diff[part] = make([]int64, len(off)+1)
	}
	for i := range p.st.usable {
		if p.st.usable[i] {
			diff[p.t.nodePart[i]][0] += int64(p.st.cap[i].acc)
		}
	}
	hold := func(slots []Slot, from, to int64) {
		if len(slots) == 0 {
			return
		}
		part := p.t.nodePart[slots[0].Node]
		n := int64(0)
		for _, sl := range slots {
			if p.st.usable[sl.Node] {
				n += int64(sl.Accelerators)
			}
		}
		l, r := ceil(from-p.now), ceil(to-p.now)
		if to <= p.now {
			r = 1 // overdue: it will be stopped at the next step
		}
		diff[part][l] -= n
		diff[part][r] += n
	}
	for k := range p.s.Running {
		r := &p.s.Running[k]
		if !p.preempted[r.Job.ID] {
			hold(r.Alloc, p.now, r.End())
		}
	}
	for _, c := range p.started {
		hold(c.slots, p.now, c.end)
	}
	for _, b := range p.reservations {
		hold(b.slots, b.start, b.end)
	}
	for part := range p.t.parts {
		sum := int64(0)
		for k := range leaves {
			sum += diff[part][k]
			leaves[k] = sum
		}
		profiles[part] = newProfile(leaves)
	}
	// The profile only ever loses room, so where a job of some shape could
	// not start, no later job of that shape can: remember where each
	// shape's search ended.
	type key struct {
		part        int32
		need, limit int64
	}
	from := map[key]int{}
	floor := p.now // under strict order: the latest estimate so far
	for _, e := range p.estimate {
		if e.inOrder {
			e.earliest = max(e.earliest, floor)
		}
		need := int64(e.job.TotalAccelerators())
		bestK, bestPart := len(off), int32(-1)
		for _, part := range e.elig {
			pr := profiles[part]
			sk := key{part, need, e.job.Limit}
			k := max(ceil(e.earliest-p.now), from[sk])
			for k < bestK {
				end := min(ceil(off[k]+e.job.Limit), len(off))
				b := pr.lastBelow(k, end, need)
				if b < 0 {
					break
				}
				k = b + 1
			}
			from[sk] = k
			if k < bestK {
				bestK, bestPart = k, part
			}
		}
		if bestPart < 0 {
			continue // past the horizon, or never enough usable accelerators
		}
		end := min(ceil(off[bestK]+e.job.Limit), len(off))
		profiles[bestPart].add(bestK, end, -need)
		est := max(p.now+off[bestK], e.earliest)
		p.dec.Waiting[e.wait].EstStart = est
		if e.inOrder {
			floor = est
		}
	}
}
