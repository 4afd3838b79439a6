package sched_test

import (
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// An array throttled to two elements (--array=0-5%2) runs two at a time,
// however much room there is; its other elements wait with Slurm's reason,
// and other jobs are not held back by it.
func TestAThrottledArrayRunsSoManyAtOnce(t *testing.T) {
	topo := compile(t, cluster(1, 1, 4, 8))
	elem := func(id string, idx int) model.Job {
		return model.Job{ID: id, Project: "a", User: "u", Limit: 60, Accelerators: 1, ArrayID: "10", ArrayIndex: idx, ArrayThrottle: 2}
	}
	running := []sched.Running{{Job: elem("10", 0), Alloc: []sched.Slot{{Node: 0, Accelerators: 1}}}}
	pending := []model.Job{elem("11", 1), elem("12", 2), elem("13", 3),
		{ID: "20", Project: "a", User: "u", Limit: 60, Accelerators: 1}}
	for _, cfg := range sched.Policies() {
		d := sched.Plan(&sched.Snapshot{Topology: topo, Running: running, Pending: pending, Config: cfg}, 0)
		started := map[string]bool{}
		for _, s := range d.Starts {
			started[s.JobID] = true
		}
		if len(started) != 2 || !started["20"] {
			t.Errorf("%s: started %v; want one more element of the array (one runs, two may) and job 20", cfg.Name, started)
		}
		for _, w := range d.Waiting {
			if w.Reason != sched.ReasonArrayTaskLimit {
				t.Errorf("%s: job %s waits for %s; want %s", cfg.Name, w.JobID, w.Reason, sched.ReasonArrayTaskLimit)
			}
		}
		if len(d.Waiting) != 2 {
			t.Errorf("%s: %d jobs wait; want the two elements beyond the throttle", cfg.Name, len(d.Waiting))
		}
	}
}
