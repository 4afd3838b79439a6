package sim

import (
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// room answers one question cheaply: could any waiting job start now? It
// counts, per partition, the usable nodes (up, in an open partition) by
// free accelerators, and the waiting jobs by shape. When no shape finds
// room — a gang needs that many nodes with that many free accelerators
// each, a packed job that many free accelerators in one partition — no
// pass can start anything, and the simulator need not ask the scheduler.
type room struct {
	part  []int32   // node → partition
	open  []bool    // partition → not closed
	model []string  // partition → accelerator model
	hist  [][]int32 // partition → free accelerators (clamped to its largest node) → usable nodes
	free  []int64   // partition → free accelerators on usable nodes

	shapes map[shape]int // waiting jobs by shape
	known  bool          // fits is up to date
	fits   bool
}

type shape struct {
	model int16 // index into prep.models; 0 = any
	nodes int32 // 0: packed
	acc   int32 // per node for gangs, in total for packed jobs
}

func newRoom(t *sched.Topology, nodes []model.Node) *room {
	parts := t.Partitions()
	rm := &room{
		part:   make([]int32, len(nodes)),
		open:   make([]bool, len(parts)),
		model:  make([]string, len(parts)),
		hist:   make([][]int32, len(parts)),
		free:   make([]int64, len(parts)),
		shapes: map[shape]int{},
	}
	idx := map[string]int32{}
	for k, p := range parts {
		idx[p.Name] = int32(k)
		rm.open[k] = !p.Down
		rm.model[k] = p.Model
	}
	top := make([]int, len(parts))
	for i := range nodes {
		rm.part[i] = idx[nodes[i].Partition]
		top[rm.part[i]] = max(top[rm.part[i]], nodes[i].Accelerators)
	}
	for k := range parts {
		rm.hist[k] = make([]int32, top[k]+1)
	}
	for i := range nodes {
		rm.move(int32(i), 0, int64(nodes[i].Accelerators), false, nodes[i].State == model.NodeUp)
	}
	return rm
}

// move accounts node i going from free accelerators a (usable or not) to b.
func (rm *room) move(i int32, a, b int64, wasUsable, isUsable bool) {
	k := rm.part[i]
	if !rm.open[k] || (a == b && wasUsable == isUsable) {
		return
	}
	h := rm.hist[k]
	if wasUsable {
		h[min(max(a, 0), int64(len(h)-1))]--
		rm.free[k] -= a
	}
	if isUsable {
		h[min(max(b, 0), int64(len(h)-1))]++
		rm.free[k] += b
	}
	rm.known = false
}

func (rm *room) add(s shape, n int) {
	if rm.shapes[s] += n; rm.shapes[s] == 0 {
		delete(rm.shapes, s)
	}
	rm.known = false
}

// mayFit reports whether some waiting job could start, were it alone.
func (rm *room) mayFit(models []string) bool {
	if rm.known {
		return rm.fits
	}
	rm.known, rm.fits = true, false
	for s := range rm.shapes {
		if s.acc == 0 {
			rm.fits = true // CPU only: not tracked here
			return true
		}
		for k, h := range rm.hist {
			if !rm.open[k] || rm.model[k] == "" || (s.model != 0 && models[s.model] != rm.model[k]) {
				continue
			}
			if s.nodes == 0 {
				if rm.free[k] >= int64(s.acc) {
					rm.fits = true
					return true
				}
				continue
			}
			n := int32(0)
			for l := int(s.acc); l < len(h); l++ {
				n += h[l]
			}
			if n >= s.nodes {
				rm.fits = true
				return true
			}
		}
	}
	return false
}
