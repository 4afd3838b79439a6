package sched

import (
	"cmp"
	"slices"

	"github.com/usine-project/usine/internal/model"
)

// preempt tries to start j by stopping preemptible running jobs of lower
// QoS classes. Victims are taken least-progressed first until j fits, then
// those it can do without are spared, most-progressed first, so the set is
// small and loses little work. Victims are requeued by the caller.
func (p *pass) preempt(j *model.Job, q *QoS, elig []int32, end int64) bool {
	for _, part := range elig {
		var cands []int
		for k := range p.s.Running {
			r := &p.s.Running[k]
			if p.preempted[r.Job.ID] || len(r.Alloc) == 0 || p.t.nodePart[r.Alloc[0].Node] != part {
				continue
			}
			vq := p.qos[r.Job.QoS]
			vprio := 0
			if vq != nil {
				vprio = vq.Priority
			}
			if vprio >= q.Priority || !(r.Job.Preemptible || (vq != nil && vq.Preemptible)) {
				continue
			}
			cands = append(cands, k)
		}
		if len(cands) == 0 {
			continue
		}
		slices.SortStableFunc(cands, func(a, b int) int {
			ra, rb := &p.s.Running[a], &p.s.Running[b]
			if c := cmp.Compare(rb.Start, ra.Start); c != 0 { // later start = less progress
				return c
			}
			return cmp.Compare(ra.Job.ID, rb.Job.ID)
		})
		var taken []int
		fits := false
		for _, k := range cands {
			p.vacate(k, true)
			taken = append(taken, k)
			if _, out := p.placeNow(part, j, end); out == placed {
				fits = true
				break
			}
		}
		if !fits {
			for _, k := range taken {
				p.vacate(k, false)
			}
			continue
		}
		kept := make([]int, 0, len(taken))
		for n := len(taken) - 1; n >= 0; n-- {
			k := taken[n]
			p.vacate(k, false)
			if _, out := p.placeNow(part, j, end); out == placed {
				continue // spared
			}
			p.vacate(k, true)
			kept = append(kept, k)
		}
		slots, _ := p.placeNow(part, j, end)
		var victims []string
		for n := len(kept) - 1; n >= 0; n-- {
			r := &p.s.Running[kept[n]]
			p.preempted[r.Job.ID] = true
			victims = append(victims, r.Job.ID)
			p.dec.Preempts = append(p.dec.Preempts, Preempt{JobID: r.Job.ID, For: j.ID})
			p.dec.Stats.Preempted++
			if p.qosUse != nil {
				p.qosUse[[2]string{r.Job.Project, r.Job.QoS}] -= r.Job.TotalAccelerators()
			}
		}
		p.failed = map[shape]failure{} // victims freed room: earlier failures may now fit
		p.start(j, part, slots, victims)
		return true
	}
	return false
}

// vacate frees (or, with free false, takes back) running job k's slots.
func (p *pass) vacate(k int, free bool) {
	for _, sl := range p.s.Running[k].Alloc {
		r := slotRes(sl)
		if free {
			p.st.release(sl.Node, r)
		} else {
			p.st.setFree(sl.Node, p.st.free[sl.Node].minus(r))
		}
	}
}
