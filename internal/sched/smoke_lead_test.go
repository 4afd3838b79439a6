package sched

import (
	"fmt"
	"testing"

	"github.com/usine-project/usine/internal/model"
)

func testCluster(groups, blocks, nodes, acc int) *model.Cluster {
	c := &model.Cluster{Name: "t", Sites: []model.Site{{Name: "s"}},
		Partitions:   []model.Partition{{Name: "p", Site: "s", Model: "H100"}},
		Accelerators: map[string]model.Accelerator{"H100": {Vendor: "nvidia", Model: "H100"}}}
	n := 0
	for g := 0; g < groups; g++ {
		for b := 0; b < blocks; b++ {
			for k := 0; k < nodes; k++ {
				c.Nodes = append(c.Nodes, model.Node{Name: fmt.Sprintf("n%04d", n), Site: "s", Partition: "p",
					Group: fmt.Sprintf("g%d", g), Block: fmt.Sprintf("b%d-%d", g, b), Accelerators: acc, Model: "H100", State: model.NodeUp})
				n++
			}
		}
	}
	return c
}

func TestLeadSmoke(t *testing.T) {
	topo, err := Compile(testCluster(2, 2, 4, 8))
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{Topology: topo, Config: EASY()}
	s.Running = []Running{{Job: model.Job{ID: "r1", Project: "a", Nodes: 12, AcceleratorsPerNode: 8, Limit: 100}, Start: 0}}
	for i := 0; i < 12; i++ {
		s.Running[0].Alloc = append(s.Running[0].Alloc, Slot{Node: int32(i), Accelerators: 8})
	}
	s.Pending = []model.Job{
		{ID: "j1", Project: "a", Nodes: 8, AcceleratorsPerNode: 8, Limit: 1000, Submit: 1},
		{ID: "j2", Project: "a", Accelerators: 4, Limit: 50, Submit: 2},
		{ID: "j3", Project: "a", Accelerators: 4, Limit: 500, Submit: 3},
		{ID: "j4", Project: "a", Nodes: 2, AcceleratorsPerNode: 8, Limit: 5000, Submit: 4},
	}
	d := Plan(s, 10)
	t.Logf("%+v", d)
}
