package sched_test

import (
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// A partition declared before its nodes (or whose nodes were all removed)
// holds nothing: every kind of job waits, none crashes the pass, and the
// partitions that have nodes go on scheduling.
func TestAPartitionWithoutNodesHoldsNothing(t *testing.T) {
	c := cluster(1, 1, 2, 8)
	c.Partitions = append(c.Partitions, model.Partition{Name: "empty", Site: "s", Model: "MI300X"})
	c.Accelerators["MI300X"] = model.Accelerator{Vendor: "v", Model: "MI300X", MemoryGiB: 192}
	topo := compile(t, c)
	pending := []model.Job{
		{ID: "1", Project: "a", User: "u", Limit: 60, Partition: "empty", Accelerators: 4},
		{ID: "2", Project: "a", User: "u", Limit: 60, Partition: "empty", Accelerators: 16},
		{ID: "3", Project: "a", User: "u", Limit: 60, Partition: "empty", Nodes: 2, AcceleratorsPerNode: 8},
		{ID: "4", Project: "a", User: "u", Limit: 60, Partition: "empty", CPUs: 4},
		{ID: "5", Project: "a", User: "u", Limit: 60, Model: "MI300X", Accelerators: 1},
		{ID: "6", Project: "a", User: "u", Limit: 60, Accelerators: 4},
	}
	for _, cfg := range sched.Policies() {
		d := sched.Plan(&sched.Snapshot{Topology: topo, Pending: pending, Config: cfg}, 0)
		if len(d.Starts) != 1 || d.Starts[0].JobID != "6" {
			t.Errorf("%s: starts %+v; want job 6 alone, in partition p", cfg.Name, d.Starts)
		}
		for _, w := range d.Waiting {
			if w.Reason != sched.ReasonBadConstraints {
				t.Errorf("%s: job %s waits for %s; want %s: nothing in its partition can ever hold it", cfg.Name, w.JobID, w.Reason, sched.ReasonBadConstraints)
			}
		}
	}
}
