package sched_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// cluster builds one site with one partition "p" of H100 nodes: groups ×
// blocksPerGroup blocks of nodesPerBlock nodes with accPerNode accelerators
// each. Nodes are named n0000, n0001, … in topology order, blocks b<g>-<b>
// and groups g<g>, so that neighbours in a name are neighbours in the tree.
func cluster(groups, blocksPerGroup, nodesPerBlock, accPerNode int) *model.Cluster {
	c := &model.Cluster{
		Name:         "t",
		Sites:        []model.Site{{Name: "s", Country: "FR"}},
		Accelerators: map[string]model.Accelerator{},
	}
	addPartition(c, "p", "n", "H100", groups, blocksPerGroup, nodesPerBlock, accPerNode)
	return c
}

// addPartition adds a partition of accelerator model mdl with nodes named
// prefix0000, prefix0001, …; blocks and groups are named after the
// partition unless it is "p".
func addPartition(c *model.Cluster, name, prefix, mdl string, groups, blocksPerGroup, nodesPerBlock, accPerNode int) {
	c.Partitions = append(c.Partitions, model.Partition{Name: name, Site: "s", Model: mdl})
	c.Accelerators[mdl] = model.Accelerator{Vendor: "v", Model: mdl, MemoryGiB: 80}
	tree := ""
	if name != "p" {
		tree = name + "-"
	}
	n := 0
	for g := range groups {
		for b := range blocksPerGroup {
			for range nodesPerBlock {
				c.Nodes = append(c.Nodes, model.Node{
					Name: fmt.Sprintf("%s%04d", prefix, n), Site: "s", Partition: name,
					Group: fmt.Sprintf("%sg%d", tree, g), Block: fmt.Sprintf("%sb%d-%d", tree, g, b),
					Accelerators: accPerNode, Model: mdl, State: model.NodeUp,
				})
				n++
			}
		}
	}
}

// compile compiles c or fails the test.
func compile(tb testing.TB, c *model.Cluster) *sched.Topology {
	tb.Helper()
	t, err := sched.Compile(c)
	if err != nil {
		tb.Fatalf("compile: %v", err)
	}
	return t
}

// jobB builds a model.Job: job("j1").GPUs(8).Nodes(2).Limit(3600).
type jobB struct {
	j    model.Job
	gpus int
}

// job starts a job of project "a", one accelerator, a one-hour limit.
func job(id string) *jobB {
	return &jobB{j: model.Job{ID: id, Project: "a", User: "u", Limit: 3600}, gpus: 1}
}

// GPUs is per node for a gang (Nodes > 0) and in total for a packed job,
// as CPUs and memory are in model.Job.
func (b *jobB) GPUs(n int) *jobB         { b.gpus = n; return b }
func (b *jobB) Nodes(n int) *jobB        { b.j.Nodes = n; return b }
func (b *jobB) CPUs(n int) *jobB         { b.j.CPUs = n; return b }
func (b *jobB) Mem(mib int64) *jobB      { b.j.MemoryMiB = mib; return b }
func (b *jobB) Limit(s int64) *jobB      { b.j.Limit = s; return b }
func (b *jobB) At(submit int64) *jobB    { b.j.Submit = submit; return b }
func (b *jobB) Project(p string) *jobB   { b.j.Project = p; return b }
func (b *jobB) QoS(q string) *jobB       { b.j.QoS = q; return b }
func (b *jobB) Prio(p int64) *jobB       { b.j.Priority = p; return b }
func (b *jobB) Partition(p string) *jobB { b.j.Partition = p; return b }
func (b *jobB) Model(m string) *jobB     { b.j.Model = m; return b }
func (b *jobB) Preemptible() *jobB       { b.j.Preemptible = true; return b }
func (b *jobB) OneBlock() *jobB          { b.j.OneBlock = true; return b }
func (b *jobB) Exclusive() *jobB         { b.j.Exclusive = true; return b }
func (b *jobB) Held() *jobB              { b.j.Held = true; return b }
func (b *jobB) Begin(t int64) *jobB      { b.j.Begin = t; return b }
func (b *jobB) After(t model.DepType, id string) *jobB {
	b.j.Deps = append(b.j.Deps, model.Dependency{Type: t, JobID: id})
	return b
}

// Build returns the job.
func (b *jobB) Build() model.Job {
	j := b.j
	if j.Nodes > 0 {
		j.AcceleratorsPerNode = b.gpus
	} else {
		j.Accelerators = b.gpus
	}
	return j
}

// running places a job on named nodes since a time. Each of on is "name"
// or "name:acc"; a bare name takes the gang's per-node accelerators, or all
// of a packed job's accelerators.
func running(tb testing.TB, t *sched.Topology, b *jobB, since int64, on ...string) sched.Running {
	tb.Helper()
	j := b.Build()
	r := sched.Running{Job: j, Start: since}
	for _, s := range on {
		sl, err := parseSlot(t, s, j)
		if err != nil {
			tb.Fatal(err)
		}
		r.Alloc = append(r.Alloc, sl)
	}
	return r
}

// parseSlot reads "name" or "name:acc" for job j.
func parseSlot(t *sched.Topology, s string, j model.Job) (sched.Slot, error) {
	name, acc, hasAcc := strings.Cut(s, ":")
	i := t.NodeIndex(name)
	if i < 0 {
		return sched.Slot{}, fmt.Errorf("slot %q: no node %s", s, name)
	}
	sl := sched.Slot{Node: i}
	if j.Nodes > 0 {
		sl.Accelerators, sl.CPUs, sl.MemoryMiB = j.AcceleratorsPerNode, j.CPUs, j.MemoryMiB
	} else {
		sl.Accelerators, sl.CPUs, sl.MemoryMiB = j.Accelerators, j.CPUs, j.MemoryMiB
	}
	if hasAcc {
		n, err := strconv.Atoi(acc)
		if err != nil {
			return sched.Slot{}, fmt.Errorf("slot %q: %v", s, err)
		}
		sl.Accelerators = n
	}
	return sl, nil
}
