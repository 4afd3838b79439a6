package sched_test

import (
	"testing"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// A grant of one site pays only there: the job goes to that site's
// partition even when another site's comes first, and waits for room
// there rather than starting where no grant pays.
func TestAGrantPaysOnlyAtItsSite(t *testing.T) {
	c := cluster(1, 1, 1, 8) // partition p at site s
	c.Sites = append(c.Sites, model.Site{Name: "t", Country: "IT"})
	addPartition(c, "q", "m", "H100", 1, 1, 1, 8)
	c.Partitions[1].Site = "t"
	for i := range c.Nodes {
		if c.Nodes[i].Partition == "q" {
			c.Nodes[i].Site = "t"
		}
	}
	topo := compile(t, c)
	grants := []sched.Balance{{Project: "a", Model: "H100", Site: "t", Remaining: 1 << 40}}
	j := model.Job{ID: "1", Project: "a", User: "u", Limit: 60, Accelerators: 8}
	d := sched.Plan(&sched.Snapshot{Topology: topo, Pending: []model.Job{j}, Grants: grants, Config: sched.Default()}, 0)
	if len(d.Starts) != 1 || topo.Partitions()[0].Name != "p" || len(d.Starts[0].Alloc) != 1 || c.Nodes[d.Starts[0].Alloc[0].Node].Site != "t" {
		t.Fatalf("starts %+v; want job 1 on the node of site t, where its grant pays", d.Starts)
	}
	busy := []sched.Running{{Job: model.Job{ID: "0", Project: "b", User: "u", Limit: 600, Accelerators: 8}, Alloc: d.Starts[0].Alloc}}
	d = sched.Plan(&sched.Snapshot{Topology: topo, Running: busy, Pending: []model.Job{j}, Grants: grants, Config: sched.Default()}, 0)
	if len(d.Starts) != 0 || len(d.Waiting) != 1 || d.Waiting[0].Reason == sched.ReasonGrantExhausted {
		t.Errorf("with site t full: starts %+v, waiting %+v; want job 1 waiting for room at t, not started at s", d.Starts, d.Waiting)
	}
	grants[0].Site = "u"
	d = sched.Plan(&sched.Snapshot{Topology: topo, Pending: []model.Job{j}, Grants: grants, Config: sched.Default()}, 0)
	if len(d.Waiting) != 1 || d.Waiting[0].Reason != sched.ReasonGrantExhausted {
		t.Errorf("a grant of a site with no partition: waiting %+v; want GrantExhausted", d.Waiting)
	}
}
