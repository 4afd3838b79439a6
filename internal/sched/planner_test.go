package sched_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

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
