package sim

import (
	"fmt"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/trace"
)

// cluster builds a one-partition cluster of H100 nodes: groups × blocks ×
// nodes, each with acc accelerators, named n00, n01, … in order.
func cluster(groups, blocks, nodes, acc int) *model.Cluster {
	c := &model.Cluster{Name: "test", Sites: []model.Site{{Name: "s", Country: "FR"}},
		Partitions:   []model.Partition{{Name: "gpu", Site: "s", Model: "H100"}},
		Accelerators: map[string]model.Accelerator{"H100": {Vendor: "nvidia", Model: "H100", MemoryGiB: 80}}}
	n := 0
	for g := range groups {
		for b := range blocks {
			for range nodes {
				c.Nodes = append(c.Nodes, model.Node{Name: fmt.Sprintf("n%02d", n), Site: "s", Partition: "gpu",
					Group: fmt.Sprintf("g%d", g), Block: fmt.Sprintf("b%d-%d", g, b), Accelerators: acc, Model: "H100",
					State: model.NodeUp})
				n++
			}
		}
	}
	return c
}

// rec builds a trace record: job(id).at(t).gpus(n).run(s)…
type rec trace.Record

func job(id string) *rec {
	return &rec{ID: id, Project: "p", User: "u", Accelerators: 1, Runtime: 60, Limit: 3600, State: trace.StateCompleted}
}

func (r *rec) at(t int64) *rec          { r.Submit = t; return r }
func (r *rec) gpus(n int) *rec          { r.Accelerators = n; return r }
func (r *rec) gang(nodes, per int) *rec { r.Nodes, r.Accelerators = nodes, nodes*per; return r }
func (r *rec) run(s int64) *rec         { r.Runtime = s; return r }
func (r *rec) limit(s int64) *rec       { r.Limit = s; return r }
func (r *rec) project(p string) *rec    { r.Project = p; return r }
func (r *rec) line(n int) *rec          { r.Line = n; return r }
func (r *rec) state(s string) *rec      { r.State = s; return r }

func records(rs ...*rec) []trace.Record {
	out := make([]trace.Record, len(rs))
	for k, r := range rs {
		out[k] = trace.Record(*r)
	}
	return out
}
