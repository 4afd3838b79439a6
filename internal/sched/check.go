package sched

import (
	"errors"
	"fmt"
)

// Check reports whether the snapshot is consistent enough to plan on: a
// compiled topology, a node and partition list that match it, running jobs
// whose slots name real nodes within their capacity, and unique job IDs.
// Plan itself never fails; callers that build snapshots by hand call Check
// first so that a mistake is an error rather than a surprising decision.
func (s *Snapshot) Check() error {
	if s.Topology == nil {
		return errors.New("snapshot has no topology: compile the cluster with sched.Compile")
	}
	t := s.Topology
	if s.Nodes != nil && len(s.Nodes) != len(t.nodes) {
		return fmt.Errorf("snapshot lists %d nodes but its topology has %d: recompile after adding or removing nodes", len(s.Nodes), len(t.nodes))
	}
	for i := range s.Nodes {
		if s.Nodes[i].Name != t.nodes[i].Name {
			return fmt.Errorf("snapshot node %d is %q but the topology has %q there: keep the compiled order", i, s.Nodes[i].Name, t.nodes[i].Name)
		}
	}
	if s.Partitions != nil && len(s.Partitions) != len(t.partitions) {
		return fmt.Errorf("snapshot lists %d partitions but its topology has %d", len(s.Partitions), len(t.partitions))
	}
	seen := make(map[string]bool, len(s.Running)+len(s.Pending))
	used := make([]int, len(t.nodes))
	for k := range s.Running {
		r := &s.Running[k]
		if seen[r.Job.ID] {
			return fmt.Errorf("job %s appears twice in the snapshot", r.Job.ID)
		}
		seen[r.Job.ID] = true
		for _, sl := range r.Alloc {
			if sl.Node < 0 || int(sl.Node) >= len(t.nodes) {
				return fmt.Errorf("running job %s holds node index %d, outside the %d nodes", r.Job.ID, sl.Node, len(t.nodes))
			}
			used[sl.Node] += sl.Accelerators
			if used[sl.Node] > t.nodes[sl.Node].Accelerators {
				return fmt.Errorf("node %s: running jobs hold %d accelerators of its %d (the last is %s)", t.nodes[sl.Node].Name, used[sl.Node], t.nodes[sl.Node].Accelerators, r.Job.ID)
			}
		}
	}
	for k := range s.Pending {
		id := s.Pending[k].ID
		if seen[id] {
			return fmt.Errorf("job %s appears twice in the snapshot", id)
		}
		seen[id] = true
	}
	return nil
}
