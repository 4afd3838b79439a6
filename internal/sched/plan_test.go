package sched_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
)

// TestPlan covers what the scenario scripts do not: snapshots built by hand
// with the builders, where the point is one field of the snapshot.
func TestPlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// build returns the snapshot; its Config defaults to EASY.
		build func(t *testing.T) *sched.Snapshot
		now   int64
		want  []string // formatDecisions lines
	}{
		{
			name: "nil node list means the compiled states",
			build: func(t *testing.T) *sched.Snapshot {
				c := cluster(1, 1, 2, 8)
				c.Nodes[0].State = model.NodeDrain
				return &sched.Snapshot{Topology: compile(t, c), Pending: []model.Job{job("j1").GPUs(8).Build()}}
			},
			want: []string{"start j1 on n0001:8", "stats examined=1 started=1 backfilled=0 preempted=0 reserved=0"},
		},
		{
			name: "node states of the pass override the compiled ones",
			build: func(t *testing.T) *sched.Snapshot {
				c := cluster(1, 1, 2, 8)
				s := &sched.Snapshot{Topology: compile(t, c), Nodes: c.Nodes, Pending: []model.Job{job("j1").GPUs(8).Nodes(2).Build()}}
				s.Nodes[1].State = model.NodeDown
				return s
			},
			want: []string{"wait j1 ReqNodeNotAvail est=-", "stats examined=1 started=0 backfilled=0 preempted=0 reserved=0"},
		},
		{
			name: "CPU-only work goes to a node without accelerators",
			build: func(t *testing.T) *sched.Snapshot {
				c := cluster(1, 1, 1, 8)
				c.Nodes = append(c.Nodes, model.Node{Name: "x0000", Site: "s", Partition: "p", Group: "g0", Block: "b0-0",
					CPUs: 64, State: model.NodeUp})
				return &sched.Snapshot{Topology: compile(t, c), Pending: []model.Job{job("cpu").GPUs(0).CPUs(4).Build()}}
			},
			want: []string{"start cpu on x0000:0/4cpu/0M", "stats examined=1 started=1 backfilled=0 preempted=0 reserved=0"},
		},
		{
			name: "a job past its limit is about to be stopped: the reservation is for now",
			build: func(t *testing.T) *sched.Snapshot {
				topo := compile(t, cluster(1, 1, 1, 8))
				return &sched.Snapshot{Topology: topo,
					Running: []sched.Running{running(t, topo, job("r1").GPUs(8).Limit(100), 0, "n0000")},
					Pending: []model.Job{job("j1").GPUs(8).Build()}}
			},
			now:  500,
			want: []string{"wait j1 Resources est=500 reserved on n0000:8", "stats examined=1 started=0 backfilled=0 preempted=0 reserved=1"},
		},
		{
			// g reserves 4 accelerators on each node from 3600, when r1 ends.
			// Jobs that outlive that may still take what g leaves: 4 on
			// n0001 (p1), and on n0000, 3 free now and 4 spare then (p2);
			// p3 would need 4 more on one node past 3600 and waits.
			name: "backfill into what a reservation leaves of a node",
			build: func(t *testing.T) *sched.Snapshot {
				topo := compile(t, cluster(1, 1, 2, 8))
				return &sched.Snapshot{Topology: topo,
					Running: []sched.Running{running(t, topo, job("r1").GPUs(5), 0, "n0000")},
					Pending: []model.Job{
						job("g").GPUs(4).Nodes(2).Build(),
						job("p1").GPUs(4).Limit(7200).At(1).Build(),
						job("p2").GPUs(1).Limit(7200).At(2).Build(),
						job("p3").GPUs(4).Limit(7200).At(3).Build(),
					}}
			},
			want: []string{
				"start p1 on n0001:4 backfilled",
				"start p2 on n0000:1 backfilled",
				"wait g Resources est=3600 reserved on n0000:4 n0001:4",
				"wait p3 Priority est=7200",
				"stats examined=4 started=2 backfilled=2 preempted=0 reserved=1",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.build(t)
			if s.Config.Name == "" {
				s.Config = sched.EASY()
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			d := sched.Plan(s, tc.now)
			checkDecisions(t, s, tc.now, d)
			if diff := cmp.Diff(tc.want, formatDecisions(s, d)); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSnapshotCheck(t *testing.T) {
	t.Parallel()
	c := cluster(1, 1, 2, 8)
	topo := compile(t, c)
	for _, tc := range []struct {
		name    string
		s       sched.Snapshot
		wantErr string // a part of the message; "" = no error
	}{
		{name: "consistent", s: sched.Snapshot{Topology: topo, Nodes: c.Nodes,
			Running: []sched.Running{running(t, topo, job("r1").GPUs(8), 0, "n0000")}, Pending: []model.Job{job("j1").Build()}}},
		{name: "no topology", s: sched.Snapshot{}, wantErr: "no topology"},
		{name: "node list of another size", s: sched.Snapshot{Topology: topo, Nodes: c.Nodes[:1]}, wantErr: "lists 1 nodes"},
		{name: "node list in another order", s: sched.Snapshot{Topology: topo, Nodes: []model.Node{c.Nodes[1], c.Nodes[0]}}, wantErr: "keep the compiled order"},
		{name: "a node over capacity", s: sched.Snapshot{Topology: topo, Running: []sched.Running{
			running(t, topo, job("r1").GPUs(6), 0, "n0000"), running(t, topo, job("r2").GPUs(6), 0, "n0000")}}, wantErr: "n0000"},
		{name: "a slot outside the nodes", s: sched.Snapshot{Topology: topo, Running: []sched.Running{
			{Job: job("r1").Build(), Alloc: []sched.Slot{{Node: 7, Accelerators: 1}}}}}, wantErr: "outside"},
		{name: "a job both running and pending", s: sched.Snapshot{Topology: topo,
			Running: []sched.Running{running(t, topo, job("j1"), 0, "n0000")}, Pending: []model.Job{job("j1").Build()}}, wantErr: "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Check()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Check() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPolicyByName(t *testing.T) {
	t.Parallel()
	for _, c := range sched.Policies() {
		got, err := sched.PolicyByName(c.Name)
		if err != nil {
			t.Fatalf("PolicyByName(%q): %v", c.Name, err)
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("PolicyByName(%q) (-want +got):\n%s", c.Name, diff)
		}
	}
	_, err := sched.PolicyByName("lottery")
	if err == nil || !strings.Contains(err.Error(), "fifo, easy, usine") {
		t.Errorf("PolicyByName(lottery) = %v, want an error naming the policies", err)
	}
	if d := sched.Default(); d.Backfill != sched.BackfillConservative || d.Order != sched.OrderMultifactor || !d.Preemption || !d.Estimates {
		t.Errorf("Default() = %+v, want multifactor, conservative backfill, preemption and estimates", d)
	}
}
