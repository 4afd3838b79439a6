package sched_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// A Planner reuses its memory between passes; that must never show in its
// decisions. One planner per topology plans a run of random snapshots, some
// of them twice in a row and interleaved with others, and must say exactly
// what a fresh Plan says.
func TestPlannerReuseChangesNothing(t *testing.T) {
	t.Parallel()
	planners := map[*sched.Topology]*sched.Planner{}
	for seed := uint64(0); seed < 300; seed++ {
		s, now := randomCase(t, seed)
		pr := planners[s.Topology]
		if pr == nil {
			pr = sched.NewPlanner(s.Topology)
			planners[s.Topology] = pr
		}
		fresh := cloneSnapshot(s)
		fresh.Topology = s.Topology
		want := sched.Plan(fresh, now)
		for round := range 2 {
			got := pr.Plan(s, now)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("seed %d, round %d: a reused planner decided differently (-fresh +reused):\n%s", seed, round, diff)
			}
		}
		// A planner moved to another topology and back still agrees.
		other, otherNow := randomCase(t, seed+1000)
		pr.Plan(other, otherNow)
		if diff := cmp.Diff(want, pr.Plan(s, now)); diff != "" {
			t.Fatalf("seed %d: after planning another cluster (-fresh +reused):\n%s", seed, diff)
		}
	}
}

// A planner that carries its view of the cluster from pass to pass must
// follow jobs starting, ending and being preempted exactly as planning from
// scratch does.
func TestPlannerFollowsAChangingCluster(t *testing.T) {
	t.Parallel()
	for seed := uint64(0); seed < 150; seed++ {
		s, now := randomCase(t, seed)
		if s.Nodes != nil || s.Partitions != nil {
			// The planner carries its view only for clusters as compiled.
			s.Nodes, s.Partitions = nil, nil
			if err := s.Check(); err != nil {
				continue
			}
		}
		pr := sched.NewPlanner(s.Topology)
		for step := range 8 {
			fresh := cloneSnapshot(s)
			fresh.Topology = s.Topology
			want := sched.Plan(fresh, now)
			got := pr.Plan(s, now)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("seed %d, step %d: carried view decided differently (-fresh +carried):\n%s", seed, step, diff)
			}
			s = advance(s, got, now)
			now += 600
		}
	}
}

// advance applies decisions: preempted jobs go back to the queue, started
// jobs run (on new Alloc slices), and the running job that ends first ends.
func advance(s *sched.Snapshot, d *sched.Decisions, now int64) *sched.Snapshot {
	n := *s
	gone := map[string]bool{}
	for _, p := range d.Preempts {
		gone[p.JobID] = true
	}
	started := map[string][]sched.Slot{}
	for _, st := range d.Starts {
		started[st.JobID] = st.Alloc
	}
	n.Running, n.Pending = nil, nil
	first := -1
	for k, r := range s.Running {
		if !gone[r.Job.ID] && (first < 0 || r.End() < s.Running[first].End()) {
			first = k
		}
	}
	for k, r := range s.Running {
		switch {
		case gone[r.Job.ID]:
			n.Pending = append(n.Pending, r.Job)
		case k == first: // ends
		default:
			n.Running = append(n.Running, r)
		}
	}
	for _, j := range s.Pending {
		if alloc, ok := started[j.ID]; ok {
			n.Running = append(n.Running, sched.Running{Job: j, Start: now, Alloc: slices.Clone(alloc)})
		} else {
			n.Pending = append(n.Pending, j)
		}
	}
	slices.SortFunc(n.Running, func(a, b sched.Running) int { return strings.Compare(a.Job.ID, b.Job.ID) })
	slices.SortFunc(n.Pending, func(a, b model.Job) int { return strings.Compare(a.ID, b.ID) })
	return &n
}

// A planner restores only what changed since its last pass when the cluster
// is as compiled: what its last pass took (even when the caller did not
// apply those decisions) and what started and ended since. Passes over a
// cluster with nodes down in between must not leave anything behind either.
// Passes alternate between the compiled cluster and one with a node
// drained, each planned twice, while jobs start and end; some passes list
// the running jobs out of ID order.
func TestPlannerFollowsNodeStateChanges(t *testing.T) {
	t.Parallel()
	for seed := uint64(0); seed < 150; seed++ {
		s, now := randomCase(t, seed)
		s.Nodes, s.Partitions = nil, nil
		if err := s.Check(); err != nil {
			continue
		}
		nodes := slices.Clone(s.Topology.Nodes())
		pr := sched.NewPlanner(s.Topology)
		for step := range 10 {
			s.Nodes = nil
			if step%3 == 1 {
				nodes[int(seed+uint64(step))%len(nodes)].State = model.NodeDrain
				s.Nodes = nodes
			}
			sorted := s.Running
			if step%4 == 2 { // out of ID order: the planner must rebuild
				s.Running = slices.Clone(s.Running)
				slices.Reverse(s.Running)
			}
			fresh := cloneSnapshot(s)
			fresh.Topology = s.Topology
			want := sched.Plan(fresh, now)
			var got *sched.Decisions
			for round := range 2 {
				got = pr.Plan(s, now)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("seed %d, step %d, round %d: carried view decided differently (-fresh +carried):\n%s", seed, step, round, diff)
				}
			}
			s.Running = sorted
			s = advance(s, got, now)
			now += 600
		}
	}
}
