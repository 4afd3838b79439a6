package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/usine-project/usine/internal/model"
)

// benchCluster is a gigafactory-shaped cluster: 8 accelerators a node,
// blocks of 32 nodes, groups of 16 blocks.
func benchCluster(nodes int) *model.Cluster {
	c := &model.Cluster{Name: "bench", Sites: []model.Site{{Name: "eu1", Country: "FI"}},
		Partitions:   []model.Partition{{Name: "h100", Site: "eu1", Model: "H100"}},
		Accelerators: map[string]model.Accelerator{"H100": {Vendor: "nvidia", Model: "H100", MemoryGiB: 80, BF16TFLOPS: 989, Watts: 700}}}
	c.Nodes = make([]model.Node, nodes)
	for i := range c.Nodes {
		c.Nodes[i] = model.Node{Name: fmt.Sprintf("gpu%06d", i), Site: "eu1", Partition: "h100",
			Block: fmt.Sprintf("b%05d", i/32), Group: fmt.Sprintf("g%04d", i/(32*16)),
			Accelerators: 8, Model: "H100", CPUs: 112, MemoryMiB: 2 << 20, State: model.NodeUp}
	}
	return c
}

var limitLadder = []int64{3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 72 * 3600, 7 * 24 * 3600}

// mixJob draws one job of a gigafactory mix: mostly single accelerators and
// small packs, some fine-tunes of whole nodes, a few pre-training gangs.
func mixJob(rng *rand.Rand, id string, maxNodes int) model.Job {
	j := model.Job{ID: id, Project: fmt.Sprintf("p%02d", rng.IntN(40)), User: "u", CPUs: 0}
	switch x := rng.Float64(); {
	case x < 0.45:
		j.Accelerators = 1
		j.Limit = limitLadder[rng.IntN(4)]
	case x < 0.75:
		j.Accelerators = []int{2, 4, 8}[rng.IntN(3)]
		j.Limit = limitLadder[rng.IntN(6)]
	case x < 0.95:
		j.Nodes = 1 + rng.IntN(min(32, maxNodes))
		j.AcceleratorsPerNode = 8
		j.Limit = limitLadder[2+rng.IntN(5)]
	default:
		j.Nodes = min(64<<rng.IntN(5), maxNodes) // 64..1024 nodes: 512..8,192 accelerators
		j.AcceleratorsPerNode = 8
		j.Limit = limitLadder[5+rng.IntN(4)]
	}
	return j
}

// benchSnapshot fills a cluster to about busy (0..1) with running jobs and
// queues waiting jobs.
func benchSnapshot(tb testing.TB, nodes, waiting int, busy float64) *Snapshot {
	tb.Helper()
	topo, err := Compile(benchCluster(nodes))
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := int64(1_000_000)
	s := &Snapshot{Topology: topo, Config: Default()}
	free := make([]int, nodes)
	for i := range free {
		free[i] = 8
	}
	target := int(busy * float64(nodes*8))
	used, n := 0, 0
	// Gangs on whole nodes over consecutive blocks, then packs on the rest.
	node := 0
	for used < target*7/10 && node < nodes {
		k := min(1+rng.IntN(64), nodes-node)
		r := Running{Job: model.Job{ID: fmt.Sprintf("r%06d", n), Project: fmt.Sprintf("p%02d", rng.IntN(40)),
			Nodes: k, AcceleratorsPerNode: 8, Limit: limitLadder[3+rng.IntN(6)]}}
		r.Start = now - rng.Int64N(r.Job.Limit)
		for x := 0; x < k; x++ {
			r.Alloc = append(r.Alloc, Slot{Node: int32(node), Accelerators: 8})
			free[node] = 0
			node++
		}
		used += 8 * k
		n++
		s.Running = append(s.Running, r)
	}
	for used < target {
		i := node + rng.IntN(nodes-node)
		a := min(1<<rng.IntN(3), free[i])
		if a == 0 {
			continue
		}
		r := Running{Job: model.Job{ID: fmt.Sprintf("r%06d", n), Project: fmt.Sprintf("p%02d", rng.IntN(40)),
			Accelerators: a, Limit: limitLadder[rng.IntN(5)]}}
		r.Start = now - rng.Int64N(r.Job.Limit)
		r.Alloc = []Slot{{Node: int32(i), Accelerators: a}}
		free[i] -= a
		used += a
		n++
		s.Running = append(s.Running, r)
	}
	for k := 0; k < waiting; k++ {
		j := mixJob(rng, fmt.Sprintf("w%06d", k), nodes/4)
		j.Submit = now - rng.Int64N(48*3600)
		s.Pending = append(s.Pending, j)
	}
	for p := 0; p < 40; p++ {
		name := fmt.Sprintf("p%02d", p)
		s.Projects = append(s.Projects, model.Project{Name: name, Shares: int64(1 + p%5)})
	}
	s.Usage = map[string]float64{}
	for _, r := range s.Running {
		s.Usage[r.Job.Project] += float64(r.Job.TotalAccelerators()) * float64(now-r.Start)
	}
	return s
}

// BenchmarkPlanGigafactory is one full pass — ordering, placement,
// conservative backfill and an estimated start for every waiting job — on
// 100,000 accelerators, three quarters busy, with 20,000 jobs waiting.
func BenchmarkPlanGigafactory(b *testing.B) {
	s := benchSnapshot(b, 12_500, 20_000, 0.75)
	b.ReportAllocs()
	b.ResetTimer()
	var d *Decisions
	for b.Loop() {
		d = Plan(s, 1_000_000)
	}
	b.ReportMetric(float64(d.Stats.Started), "started")
	b.ReportMetric(float64(len(d.Waiting)), "waiting")
}

// BenchmarkPlanScale shows how a pass grows with the cluster, the queue
// fixed at 20,000 jobs.
func BenchmarkPlanScale(b *testing.B) {
	for _, acc := range []int{1_000, 10_000, 100_000, 500_000} {
		b.Run(fmt.Sprintf("acc=%d", acc), func(b *testing.B) {
			s := benchSnapshot(b, acc/8, 20_000, 0.75)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				Plan(s, 1_000_000)
			}
		})
	}
}

// BenchmarkPlanShortQueue is the pass a simulator runs most: a big, busy
// cluster and a short queue, planned by a Planner that keeps its memory.
func BenchmarkPlanShortQueue(b *testing.B) {
	s := benchSnapshot(b, 12_500, 100, 0.9)
	s.Config.Estimates = false
	pr := NewPlanner(s.Topology)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pr.Plan(s, 1_000_000)
	}
}
