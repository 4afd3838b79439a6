package sim

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/trace"
)

// generated is a random workload at about 90 % load for a 128-accelerator
// cluster (16 nodes of 8 in 4 blocks of 2 groups): packed jobs of 1–8
// accelerators and gangs of 1–4 whole nodes, running a minute to six hours,
// a few of them past their limits. (trace.Generate's gigafactory mix holds
// two-week whole-cluster gangs, which node failures would never let
// finish on 16 nodes.)
func generated(t *testing.T, jobs int, seed uint64) Input {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	recs := make([]trace.Record, jobs)
	now := int64(0)
	for k := range recs {
		r := &recs[k]
		r.ID = fmt.Sprintf("j%05d", k)
		r.Project = fmt.Sprintf("p%d", rng.IntN(4))
		r.User = "u"
		r.State = trace.StateCompleted
		if rng.IntN(3) == 0 {
			r.Nodes = 1 + rng.IntN(4)
			r.Accelerators = 8 * r.Nodes
		} else {
			r.Accelerators = 1 << rng.IntN(4)
		}
		r.Runtime = int64(math.Exp(math.Log(60) + rng.Float64()*math.Log(21600.0/60)))
		r.Limit = trace.DefaultLimit(r.Runtime * 2)
		if rng.IntN(20) == 0 {
			r.Limit = r.Runtime / 2
		}
		// Mean work ≈ 9 accelerators × 3,400 s: a job every ~270 s loads 128 to 90 %.
		now += int64(rng.ExpFloat64() * 270)
		r.Submit = now
	}
	return Input{Cluster: cluster(2, 2, 4, 8), Records: recs}
}

// failing adds node failures: each node fails about once a day and is back
// after an hour.
var failing = Options{FailRate: 1, RepairTime: time.Hour, Seed: 7, Outcomes: true}

// checked wraps sched.Plan with an independent check of every pass: the
// snapshot is sorted by ID and consistent (sched's own Check), no running
// job sits on a down node, and after the decisions no node holds more
// accelerators than it has.
func checked(t *testing.T, passes *atomic.Int64) planFunc {
	return func(s *sched.Snapshot, now int64) *sched.Decisions {
		passes.Add(1)
		for _, j := range s.Pending {
			if j.Submit > now {
				t.Errorf("t=%d: job %s waits before its submit time %d", now, j.ID, j.Submit)
			}
		}
		if err := s.Check(); err != nil {
			t.Errorf("t=%d: snapshot: %v", now, err)
		}
		if !slices.IsSortedFunc(s.Pending, func(a, b model.Job) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("t=%d: pending jobs are not sorted by ID", now)
		}
		if !slices.IsSortedFunc(s.Running, func(a, b sched.Running) int { return strings.Compare(a.Job.ID, b.Job.ID) }) {
			t.Errorf("t=%d: running jobs are not sorted by ID", now)
		}
		nodes := s.Nodes
		if nodes == nil { // every node up, as compiled
			nodes = s.Topology.Nodes()
		}
		used := make([]int, len(nodes))
		hold := func(id string, slots []sched.Slot, sign int) {
			for _, sl := range slots {
				used[sl.Node] += sign * sl.Accelerators
				if sign > 0 && nodes[sl.Node].State != model.NodeUp {
					t.Errorf("t=%d: job %s on node %s, which is %s", now, id, nodes[sl.Node].Name, nodes[sl.Node].State)
				}
			}
		}
		byID := map[string][]sched.Slot{}
		for _, r := range s.Running {
			hold(r.Job.ID, r.Alloc, 1)
			byID[r.Job.ID] = r.Alloc
		}
		d := sched.Plan(s, now)
		for _, p := range d.Preempts {
			hold(p.JobID, byID[p.JobID], -1)
		}
		for _, st := range d.Starts {
			hold(st.JobID, st.Alloc, 1)
		}
		for i, u := range used {
			if u > nodes[i].Accelerators {
				t.Errorf("t=%d: node %s holds %d accelerators of %d", now, nodes[i].Name, u, nodes[i].Accelerators)
			}
		}
		return d
	}
}

func TestInvariantsOnAGeneratedTrace(t *testing.T) {
	t.Parallel()
	in := generated(t, 1500, 1)
	var passes atomic.Int64
	results, err := runAll(context.Background(), in, sched.Policies(), failing, checked(t, &passes))
	if err != nil {
		t.Fatal(err)
	}
	if passes.Load() == 0 {
		t.Fatal("the planner was never called")
	}
	runs := map[string]int64{}
	for _, r := range in.Records {
		run, _ := r.Outcome()
		runs[r.ID] = run
	}
	for _, res := range results {
		t.Run(res.Policy, func(t *testing.T) {
			// Every job finishes exactly once.
			if res.Jobs != len(in.Records) || len(res.Outcomes) != len(in.Records) {
				t.Fatalf("%d jobs, %d outcomes; want %d", res.Jobs, len(res.Outcomes), len(in.Records))
			}
			seen := map[string]bool{}
			var held int64
			for _, o := range res.Outcomes {
				if seen[o.ID] {
					t.Errorf("job %s finished twice", o.ID)
				}
				seen[o.ID] = true
				run, ok := runs[o.ID]
				switch {
				case !ok:
					t.Errorf("job %s is not in the trace", o.ID)
				case o.Start < o.Submit:
					t.Errorf("job %s starts at %d before its submit at %d", o.ID, o.Start, o.Submit)
				case o.Starts == 1 && o.End-o.Start != run:
					t.Errorf("job %s ran %d s, want %d", o.ID, o.End-o.Start, run)
				case o.Starts > 1 && o.End-o.Start < run:
					t.Errorf("job %s restarted yet ran only %d s of %d", o.ID, o.End-o.Start, run)
				}
				held += int64(o.Accelerators) * run
			}
			// Accelerator-seconds are conserved: final runs plus lost work.
			if held+res.LostAcceleratorSeconds != res.AcceleratorSeconds {
				t.Errorf("held %d + lost %d != accounted %d", held, res.LostAcceleratorSeconds, res.AcceleratorSeconds)
			}
			if res.FailureRequeues == 0 {
				t.Error("no job was requeued by a node failure; the failure path went untested")
			}
			if res.Utilization <= 0 || res.Utilization > 1 {
				t.Errorf("utilization %v is outside (0, 1]", res.Utilization)
			}
			if n := len(res.Timeline); n == 0 || n > timelinePoints {
				t.Errorf("timeline has %d samples, want 1..%d", n, timelinePoints)
			}
			for _, s := range res.Timeline {
				if s.Utilization < 0 || s.Utilization > 1+1e-9 || s.Queue < 0 {
					t.Errorf("sample %+v is out of range", s)
				}
			}
			var share float64
			for _, p := range res.Projects {
				share += p.ShareReceived
			}
			if share < 0.999 || share > 1.001 {
				t.Errorf("project shares received sum to %v, want 1", share)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	in := generated(t, 800, 2)
	a, err := RunAll(context.Background(), in, sched.Policies(), failing)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RunAll(context.Background(), in, sched.Policies(), failing)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs differ (-first +second):\n%s", diff)
	}
	// One policy alone gives what it gives beside the others.
	c, err := Run(context.Background(), in, sched.EASY(), failing)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a[1], c); diff != "" {
		t.Errorf("easy alone differs from easy in RunAll (-all +alone):\n%s", diff)
	}
}

func TestRunAllComparesPolicies(t *testing.T) {
	t.Parallel()
	in := Input{Cluster: cluster(1, 2, 2, 8), Records: threeJobs()}
	results, err := RunAll(context.Background(), in, []sched.Config{sched.EASY(), sched.FIFO(), sched.Default()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Policy)
	}
	if diff := cmp.Diff([]string{"easy", "fifo", "usine"}, names); diff != "" {
		t.Fatalf("policies (-want +got):\n%s", diff)
	}
	easy, fifo, usine := results[0], results[1], results[2]
	if !(usine.AvgJCT < easy.AvgJCT && easy.AvgJCT < fifo.AvgJCT) {
		t.Errorf("avg JCT usine %v, easy %v, fifo %v; want usine < easy < fifo on this trace", usine.AvgJCT, easy.AvgJCT, fifo.AvgJCT)
	}
}

// fake is a planner that decides whatever a test needs.
type fake func(s *sched.Snapshot, now int64) *sched.Decisions

func TestSimulatorChecksDecisions(t *testing.T) {
	t.Parallel()
	startAllOn := func(node int32) fake {
		return func(s *sched.Snapshot, now int64) *sched.Decisions {
			d := &sched.Decisions{}
			for _, j := range s.Pending {
				d.Starts = append(d.Starts, sched.Start{JobID: j.ID, Alloc: []sched.Slot{{Node: node, Accelerators: j.TotalAccelerators()}}})
			}
			return d
		}
	}
	tests := []struct {
		name string
		recs []trace.Record
		opt  Options
		plan fake
		want string
	}{
		{
			name: "an accelerator given twice",
			recs: records(job("a").gpus(8), job("b").gpus(8)),
			plan: startAllOn(0),
			want: "start of job b: 8 accelerators on node n00, which has 0 of 8 free: accelerators given twice",
		},
		{
			name: "a slot on a down node",
			recs: records(job("a").at(5).gpus(8)),
			opt:  Options{NodeEvents: []NodeEvent{{At: 0, Node: "n00"}}},
			plan: startAllOn(0),
			want: "start of job a: slot on node n00, which is down",
		},
		{
			name: "a start for an unknown job",
			recs: records(job("a")),
			plan: func(*sched.Snapshot, int64) *sched.Decisions {
				return &sched.Decisions{Starts: []sched.Start{{JobID: "ghost", Alloc: []sched.Slot{{Node: 0, Accelerators: 1}}}}}
			},
			want: "starts job ghost, which is not waiting",
		},
		{
			name: "the same job started twice",
			recs: records(job("a")),
			plan: func(s *sched.Snapshot, now int64) *sched.Decisions {
				st := sched.Start{JobID: "a", Alloc: []sched.Slot{{Node: 0, Accelerators: 1}}}
				return &sched.Decisions{Starts: []sched.Start{st, st}}
			},
			want: "started twice in one pass",
		},
		{
			name: "a preemption of a job that is not running",
			recs: records(job("a")),
			plan: func(*sched.Snapshot, int64) *sched.Decisions {
				return &sched.Decisions{Preempts: []sched.Preempt{{JobID: "a", For: "a"}}}
			},
			want: "preempts job a, which is not running",
		},
		{
			name: "a gang on too few nodes",
			recs: records(job("g").gang(2, 8)),
			plan: func(*sched.Snapshot, int64) *sched.Decisions {
				return &sched.Decisions{Starts: []sched.Start{{JobID: "g", Alloc: []sched.Slot{{Node: 0, Accelerators: 8}}}}}
			},
			want: "start of job g: 1 nodes; the gang asks for 2",
		},
		{
			name: "a node outside the cluster",
			recs: records(job("a")),
			plan: startAllOn(9),
			want: "node index 9, outside the cluster's 2 nodes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := Input{Cluster: cluster(1, 1, 2, 8), Records: tc.recs}
			_, err := runAll(context.Background(), in, []sched.Config{sched.FIFO()}, tc.opt, planFunc(tc.plan))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestShortcutsChangeNothing(t *testing.T) {
	t.Parallel()
	// Passes known to decide nothing are not asked of the scheduler; asking
	// anyway must give the very same replay.
	in := generated(t, 1200, 3)
	for _, opt := range []Options{{Outcomes: true}, failing} {
		fast, err := RunAll(context.Background(), in, sched.Policies(), opt)
		if err != nil {
			t.Fatal(err)
		}
		opt.everyPass = true
		slow, err := RunAll(context.Background(), in, sched.Policies(), opt)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(slow, fast, cmpopts.IgnoreFields(Result{}, "PlanCalls")); diff != "" {
			t.Errorf("fail rate %v: shortcuts change the replay (-asked +skipped):\n%s", opt.FailRate, diff)
		}
		for k := range fast {
			if fast[k].PlanCalls >= slow[k].PlanCalls {
				t.Errorf("fail rate %v, %s: %d plan calls with shortcuts, %d without; want fewer", opt.FailRate, fast[k].Policy, fast[k].PlanCalls, slow[k].PlanCalls)
			}
		}
	}
}
