package sched

// base is the cluster as compiled with the running jobs of the last pass
// held: what is free on each node, and its histograms. A Planner keeps it
// between passes and brings it up to date by applying only the jobs that
// started or ended since, instead of holding every running job again and
// recounting every node.
//
// It relies on two things callers already do: Snapshot.Running sorted by
// job ID, and a running job's Alloc not changed in place (a job that moves
// gets a new slice). When Running is out of order the base is rebuilt.
type base struct {
	ok   bool
	free []res
	hist []int32 // per block, as state.histAll
	part []int32 // per partition, as state.partAll
	bits [][][]uint64
	prev []held // the last pass's running jobs, by ID
	next []held // scratch for the next prev
	// changed lists the nodes whose free changed since the last load.
	changed []int32
}

// held is a running job as the base holds it.
type held struct {
	id    string
	alloc []Slot
}

// capture records the state a pass has just built from scratch.
func (b *base) capture(st *state, running []Running) {
	b.free = append(b.free[:0], st.free...)
	b.hist = append(b.hist[:0], st.histAll...)
	b.part = append(b.part[:0], st.partAll...)
	if len(b.bits) != len(st.levelBits) {
		b.bits = make([][][]uint64, len(st.levelBits))
	}
	for p := range st.levelBits {
		if len(b.bits[p]) != len(st.levelBits[p]) {
			b.bits[p] = make([][]uint64, len(st.levelBits[p]))
		}
		for a := range st.levelBits[p] {
			b.bits[p][a] = append(b.bits[p][a][:0], st.levelBits[p][a]...)
		}
	}
	b.changed = b.changed[:0]
	st.freeSynced, st.freeDirty = true, st.freeDirty[:0]
	b.prev = b.prev[:0]
	b.ok = true
	for k := range running {
		if k > 0 && running[k].Job.ID <= running[k-1].Job.ID {
			b.ok = false // sync relies on prev being in ID order
		}
		b.prev = append(b.prev, held{running[k].Job.ID, running[k].Alloc})
	}
}

// sync brings the base from the last pass's running jobs to these. It
// returns false, leaving the base unusable, when running is not sorted by
// ID.
func (b *base) sync(st *state, running []Running) bool {
	prev, next := b.prev, b.next[:0]
	i, k := 0, 0
	// found says running[k-1] was found in prev. Two found in a row are in
	// order, as prev is (capture checks it); any other neighbours are
	// compared.
	found := false
	for i < len(prev) || k < len(running) {
		same := false
		if k < len(running) {
			same = i < len(prev) && running[k].Job.ID == prev[i].id
			if k > 0 && !(same && found) && running[k].Job.ID <= running[k-1].Job.ID {
				b.ok = false
				return false
			}
		}
		switch {
		case same:
			if !sameSlots(prev[i].alloc, running[k].Alloc) {
				b.apply(st, prev[i].alloc, -1)
				b.apply(st, running[k].Alloc, 1)
			}
			next = append(next, held{running[k].Job.ID, running[k].Alloc})
			i++
			k++
			found = true
		case k < len(running) && (i >= len(prev) || running[k].Job.ID < prev[i].id):
			b.apply(st, running[k].Alloc, 1)
			next = append(next, held{running[k].Job.ID, running[k].Alloc})
			k++
			found = false
		default:
			b.apply(st, prev[i].alloc, -1)
			i++
		}
	}
	b.prev, b.next = next, prev
	return true
}

// sameSlots says whether two allocations are the same slice.
func sameSlots(a, c []Slot) bool {
	return len(a) == len(c) && (len(a) == 0 || &a[0] == &c[0])
}

// apply holds (sign 1) or releases (sign -1) slots on the base.
func (b *base) apply(st *state, slots []Slot, sign int32) {
	t, h := st.t, st.h
	for _, sl := range slots {
		i := sl.Node
		if i < 0 || int(i) >= len(b.free) {
			continue
		}
		r := slotRes(sl)
		old := b.free[i]
		nv := res{old.acc - sign*r.acc, old.cpu - sign*r.cpu, old.mem - int64(sign)*r.mem}
		b.free[i] = nv
		b.changed = append(b.changed, i)
		if !st.usable[i] {
			continue
		}
		f, to := clampAcc(old.acc, h), clampAcc(nv.acc, h)
		if f == to {
			continue
		}
		bl := &t.blocks[t.nodeBlock[i]]
		row, part := int(t.nodeBlock[i])*h, int(bl.part)*h
		b.hist[row+f]--
		b.hist[row+to]++
		b.part[part+f]--
		b.part[part+to]++
		bits := b.bits[bl.part]
		if b.hist[row+f] == 0 {
			bits[f][bl.pos/64] &^= 1 << (bl.pos % 64)
		}
		if b.hist[row+to] == 1 {
			bits[to][bl.pos/64] |= 1 << (bl.pos % 64)
		}
	}
}

// load starts a pass's state from the base.
func (st *state) load(b *base) {
	st.ensureHist()
	if st.freeSynced {
		for _, i := range st.freeDirty {
			st.free[i] = b.free[i]
		}
		for _, i := range b.changed {
			st.free[i] = b.free[i]
		}
	} else {
		copy(st.free, b.free)
	}
	st.freeSynced, st.freeDirty, b.changed = true, st.freeDirty[:0], b.changed[:0]
	copy(st.histAll, b.hist)
	copy(st.histLong, b.hist)
	copy(st.partAll, b.part)
	copy(st.partLong, b.part)
	for p := range st.levelBits {
		for a := range st.levelBits[p] {
			copy(st.levelBits[p][a], b.bits[p][a])
		}
		clear(st.resvBits[p])
		st.resvList[p] = st.resvList[p][:0]
	}
}
