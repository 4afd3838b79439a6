package sim

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/sched"
	"github.com/usine-project/usine/internal/trace"
)

// threeJobs: a 2-node gang runs 0–100 on a 4 × 8 cluster; a whole-cluster
// gang arrives at 5 and a small packed job at 10.
func threeJobs() []trace.Record {
	return records(
		job("j1").at(0).gang(2, 8).run(100).limit(200),
		job("j2").at(5).gang(4, 8).run(50).limit(100),
		job("j3").at(10).gpus(4).run(30).limit(60),
	)
}

func outcome(id string, acc int, submit, start, end int64) Outcome {
	return Outcome{ID: id, Project: "p", Accelerators: acc, Submit: submit, Start: start, End: end, Starts: 1, State: model.JobCompleted}
}

func TestHandComputedSchedules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy sched.Config
		want   []Outcome
	}{
		{
			// Strict order: j3 waits behind j2, which waits for j1.
			name:   "fifo runs jobs in submit order",
			policy: sched.FIFO(),
			want:   []Outcome{outcome("j1", 16, 0, 0, 100), outcome("j2", 32, 5, 100, 150), outcome("j3", 4, 10, 150, 180)},
		},
		{
			// j2 is reserved for t=200 (j1's limit); the first full pass,
			// at 60, backfills j3, which ends by 120.
			name:   "easy backfills the small job at the first full pass",
			policy: sched.EASY(),
			want:   []Outcome{outcome("j1", 16, 0, 0, 100), outcome("j2", 32, 5, 100, 150), outcome("j3", 4, 10, 60, 90)},
		},
		{
			// The size factor ranks j3 above j2, so the quick pass at 10
			// starts it at once.
			name:   "usine favours the small job",
			policy: sched.Default(),
			want:   []Outcome{outcome("j1", 16, 0, 0, 100), outcome("j2", 32, 5, 100, 150), outcome("j3", 4, 10, 10, 40)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Run(context.Background(), Input{Cluster: cluster(1, 2, 2, 8), Records: threeJobs()}, tc.policy, Options{Outcomes: true})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, res.Outcomes); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandComputedFIFOMetrics(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 2, 2, 8), Records: threeJobs()}, sched.FIFO(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// JCTs 100, 145, 170; queueing delays 0, 95, 140; run times 100, 50, 30.
	want := Stats{
		Jobs:   3,
		AvgJCT: 415.0 / 3, P50JCT: 145, P95JCT: 170, P99JCT: 170,
		AvgQueue: 235.0 / 3, P50Queue: 95, P95Queue: 140, P99Queue: 140,
		AvgBoundedSlowdown: (1 + 145.0/50 + 170.0/30) / 3,
	}
	approx := cmpopts.EquateApprox(0, 1e-9)
	if diff := cmp.Diff(want, res.Stats, approx); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if res.Makespan != 180 {
		t.Errorf("makespan = %d, want 180", res.Makespan)
	}
	// 16×100 + 32×50 + 4×30 accelerator-seconds on 32 accelerators for 180 s.
	if want := 3320.0 / (32 * 180); math.Abs(res.Utilization-want) > 1e-9 {
		t.Errorf("utilization = %v, want %v", res.Utilization, want)
	}
	if res.AcceleratorSeconds != 3320 {
		t.Errorf("accelerator-seconds = %d, want 3320", res.AcceleratorSeconds)
	}
	wantSizes := map[string]int{"1": 0, "2-8": 1, "9-64": 2, "65-512": 0, ">512": 0}
	for _, s := range res.BySize {
		if s.Jobs != wantSizes[s.Class] {
			t.Errorf("size class %s has %d jobs, want %d", s.Class, s.Jobs, wantSizes[s.Class])
		}
	}
	// j3 (4 accelerators) alone in class 2-8: JCT 170, slowdown 170/30.
	if s := res.BySize[1]; s.AvgJCT != 170 || math.Abs(s.AvgBoundedSlowdown-170.0/30) > 1e-9 {
		t.Errorf("class 2-8: avg JCT %v, bsld %v; want 170, %v", s.AvgJCT, s.AvgBoundedSlowdown, 170.0/30)
	}
	// Passes at 0 (j1), 10 (j2 and j3 blocked), 100 (j2) and 150 (j3);
	// j1's end at 100 and j2's at 150 coalesce with nothing else.
	if res.Passes != 4 {
		t.Errorf("passes = %d, want 4", res.Passes)
	}
	// The timeline averages to the overall utilisation.
	var sum float64
	for _, s := range res.Timeline {
		sum += s.Utilization
	}
	if got := sum / float64(len(res.Timeline)); math.Abs(got-res.Utilization) > 1e-6 {
		t.Errorf("timeline mean utilization = %v, want %v", got, res.Utilization)
	}
	if len(res.Timeline) != 180 {
		t.Errorf("timeline has %d samples, want one per second of a 180 s run", len(res.Timeline))
	}
}

func TestBoundedSlowdownUsesTheBound(t *testing.T) {
	t.Parallel()
	// A 2 s job that waits 8 s behind a 10 s job on a 1-accelerator node:
	// (8 + 2) / max(2, 10) = 1 — the bound keeps tiny jobs from dominating.
	recs := records(job("a").at(0).run(10).limit(20), job("b").at(0).run(2).limit(20))
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 1), Records: recs}, sched.FIFO(), Options{Outcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcomes[1].Start != 10 {
		t.Fatalf("b starts at %d, want 10", res.Outcomes[1].Start)
	}
	// a: 10/10 = 1; b: 12/10 = 1.2.
	if want := (1 + 1.2) / 2; math.Abs(res.AvgBoundedSlowdown-want) > 1e-9 {
		t.Errorf("avg bounded slowdown = %v, want %v", res.AvgBoundedSlowdown, want)
	}
}

func TestTimeoutAndRecordedStates(t *testing.T) {
	t.Parallel()
	recs := records(
		job("late").at(0).run(500).limit(100),                     // killed at its limit
		job("crash").at(0).run(50).limit(100).state("failed"),     // ends as recorded
		job("gone").at(0).run(20).limit(100).state("cancelled"),   // ends as recorded
		job("tight").at(0).run(100).limit(100).state("completed"), // exactly its limit
	)
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.FIFO(), Options{Outcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]any{}
	for _, o := range res.Outcomes {
		got[o.ID] = [2]any{o.End, o.State}
	}
	want := map[string][2]any{
		"late": {int64(100), model.JobTimeout}, "crash": {int64(50), model.JobFailed},
		"gone": {int64(20), model.JobCancelled}, "tight": {int64(100), model.JobCompleted},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ends (-want +got):\n%s", diff)
	}
	if res.Timeouts != 1 {
		t.Errorf("timeouts = %d, want 1", res.Timeouts)
	}
}

func TestNodeFailureRequeues(t *testing.T) {
	t.Parallel()
	// A gang holds both nodes; n00 fails at 50 and is back at 70. The job
	// restarts from scratch at 70 and keeps its submit time.
	recs := records(job("g").at(0).gang(2, 8).run(100).limit(200))
	opt := Options{Outcomes: true, NodeEvents: []NodeEvent{{At: 50, Node: "n00"}, {At: 70, Node: "n00", Up: true}}}
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 2, 8), Records: recs}, sched.EASY(), opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{{ID: "g", Project: "p", Accelerators: 16, Submit: 0, Start: 0, End: 170, Starts: 2, State: model.JobCompleted}}
	if diff := cmp.Diff(want, res.Outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if res.FailureRequeues != 1 || res.LostAcceleratorSeconds != 16*50 || res.AcceleratorSeconds != 16*50+16*100 {
		t.Errorf("requeues %d, lost %d, held %d; want 1, 800, 2400", res.FailureRequeues, res.LostAcceleratorSeconds, res.AcceleratorSeconds)
	}
}

func TestPreemptionRequeuesTheVictim(t *testing.T) {
	t.Parallel()
	// A low-QoS job fills the node; a high-QoS job arrives at 20 and
	// preempts it; the victim restarts when the node is free at 30.
	recs := records(
		job("low").at(0).gpus(8).run(100).limit(200).project("lo"),
		job("high").at(20).gpus(8).run(10).limit(20).project("hi"),
	)
	opt := Options{
		Outcomes: true,
		QoS:      []sched.QoS{{Name: "normal", Priority: 0, Preemptible: true}, {Name: "urgent", Priority: 10, MayPreempt: true}},
		Classify: func(r *trace.Record) (string, bool) {
			if r.Project == "hi" {
				return "urgent", false
			}
			return "normal", true
		},
	}
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.Default(), opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{
		{ID: "low", Project: "lo", Accelerators: 8, Submit: 0, Start: 0, End: 130, Starts: 2, State: model.JobCompleted},
		{ID: "high", Project: "hi", Accelerators: 8, Submit: 20, Start: 20, End: 30, Starts: 1, State: model.JobCompleted},
	}
	if diff := cmp.Diff(want, res.Outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if res.Preemptions != 1 || res.LostAcceleratorSeconds != 8*20 {
		t.Errorf("preemptions %d, lost %d; want 1, 160", res.Preemptions, res.LostAcceleratorSeconds)
	}
}

func TestRecordErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		recs    []trace.Record
		want    string // in the error
		wantFit bool   // wraps ErrCannotFit
	}{
		{"zero run time", records(job("a").run(0).line(3)), "trace line 3: job a: run time 0", false},
		{"no limit", records(job("a").limit(0).line(4)), "apply trace.ApplyDefaultLimit", false},
		{"bad state", records(job("a").state("lost")), "state \"lost\"", false},
		{"nodes do not divide", records(&rec{ID: "a", Project: "p", Accelerators: 10, Nodes: 3, Runtime: 1, Limit: 9, State: "completed"}), "3 nodes do not divide 10", false},
		{"duplicate id", records(job("a").line(2), job("b").line(3), job("a").line(4)), "trace line 4: job a: the ID is used twice (also trace line 2)", false},
		{"more accelerators than the cluster", records(job("big").gpus(40).line(7)), "trace line 7: job big: can never run on this cluster (it asks for 40 accelerators; no partition of cluster test holds more than 32)", true},
		{"more per node than any node", records(job("wide").gang(1, 16).line(8)), "1 nodes with 16 accelerators each", true},
		{"gang of too many nodes", records(job("tall").gang(5, 8).line(9)), "5 nodes with 8 accelerators each; no partition of cluster test has more than 4", true},
		{"unknown model", records((*rec)(&trace.Record{ID: "m", Project: "p", Accelerators: 1, Runtime: 1, Limit: 9, State: "completed", Model: "MI300X"})), "accelerator model MI300X", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Run(context.Background(), Input{Cluster: cluster(1, 2, 2, 8), Records: tc.recs}, sched.FIFO(), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if got := errors.Is(err, ErrCannotFit); got != tc.wantFit {
				t.Errorf("errors.Is(err, ErrCannotFit) = %v, want %v", got, tc.wantFit)
			}
			var re *RecordError
			if !errors.As(err, &re) {
				t.Errorf("error %T is not a *RecordError", err)
			}
		})
	}
}

func TestSkipImpossible(t *testing.T) {
	t.Parallel()
	recs := records(job("ok").at(0), job("big").at(1).gpus(40).line(7), job("ok2").at(2))
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 2, 2, 8), Records: recs}, sched.EASY(), Options{SkipImpossible: true, Outcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Jobs != 2 || res.Skipped != 1 || len(res.SkipErrors) != 1 || !strings.Contains(res.SkipErrors[0], "trace line 7") {
		t.Errorf("jobs %d, skipped %d, errors %q; want 2 jobs, 1 skipped naming line 7", res.Jobs, res.Skipped, res.SkipErrors)
	}
	var ids []string
	for _, o := range res.Outcomes {
		ids = append(ids, o.ID)
	}
	if diff := cmp.Diff([]string{"ok", "ok2"}, ids); diff != "" {
		t.Errorf("simulated jobs (-want +got):\n%s", diff)
	}
}

func TestStuckIsAnError(t *testing.T) {
	t.Parallel()
	// Every node fails for good before the job arrives.
	recs := records(job("a").at(10).gpus(8).line(2))
	opt := Options{NodeEvents: []NodeEvent{{At: 0, Node: "n00"}, {At: 0, Node: "n01"}}}
	for _, cfg := range sched.Policies() {
		_, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 2, 8), Records: recs}, cfg, opt)
		if err == nil || !strings.Contains(err.Error(), "stuck") || !strings.Contains(err.Error(), "job a (trace line 2)") {
			t.Errorf("%s: error = %v, want a stuck error naming job a", cfg.Name, err)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	t.Parallel()
	in := Input{Cluster: cluster(1, 1, 1, 8), Records: records(job("a"))}
	tests := []struct {
		name string
		opt  Options
		cfgs []sched.Config
		want string
	}{
		{"negative interval", Options{PassInterval: -time.Second}, nil, "pass interval is -1s"},
		{"sub-second interval", Options{BackfillInterval: time.Millisecond}, nil, "at least 1s"},
		{"unknown node", Options{NodeEvents: []NodeEvent{{Node: "zz"}}}, nil, `node "zz"`},
		{"negative fail rate", Options{FailRate: -1}, nil, "failure rate"},
		{"bad shares", Options{Shares: map[string]int64{"p": 0}}, nil, "project p has 0 shares"},
		{"policy twice", Options{}, []sched.Config{sched.FIFO(), sched.FIFO()}, `policy "fifo" is given twice`},
		{"no policy", Options{}, []sched.Config{}, "no policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfgs := tc.cfgs
			if cfgs == nil {
				cfgs = []sched.Config{sched.FIFO()}
			}
			_, err := RunAll(context.Background(), in, cfgs, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RunAll(ctx, Input{Cluster: cluster(1, 1, 1, 8), Records: records(job("a"))}, sched.Policies(), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
}

func TestUnsortedRecordsReplayInSubmitOrder(t *testing.T) {
	t.Parallel()
	recs := records(job("b").at(50).gpus(8), job("a").at(0).gpus(8).run(100))
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.FIFO(), Options{Outcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{res.Outcomes[0].ID, res.Outcomes[1].ID}
	if !slices.Equal(got, []string{"a", "b"}) || res.Outcomes[1].Start != 100 {
		t.Errorf("order %v, b starts at %d; want [a b] and 100", got, res.Outcomes[1].Start)
	}
}

func TestSubmitsBehindABlockedJobWait(t *testing.T) {
	t.Parallel()
	// From the pass at 10, j2 (8 accelerators) blocks behind j1 while 4
	// are free, and j2b waits behind it. j3's submit at 20 changes nothing
	// a strict-order pass could use, though it would fit.
	recs := records(
		job("j1").at(0).gpus(4).run(100).limit(200),
		job("j2").at(5).gpus(8).run(10).limit(20),
		job("j2b").at(6).gpus(1).run(10).limit(20),
		job("j3").at(20).gpus(1).run(10).limit(20),
	)
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.FIFO(), Options{Outcomes: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{outcome("j1", 4, 0, 0, 100), outcome("j2", 8, 5, 100, 110), outcome("j2b", 1, 6, 110, 120), outcome("j3", 1, 20, 110, 120)}
	if diff := cmp.Diff(want, res.Outcomes); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	// Passes at 0, 10, 20, 100 and 110; the scheduler is not asked at 20.
	if res.Passes != 5 || res.PlanCalls != 4 {
		t.Errorf("passes = %d, plan calls = %d; want 5 and 4", res.Passes, res.PlanCalls)
	}
}

func TestFullNodeAsksNothing(t *testing.T) {
	t.Parallel()
	// j2 waits for the whole node from 5 to 100: the passes at 10 and 20
	// (j3's submit) find no room for any waiting job.
	recs := records(
		job("j1").at(0).gpus(8).run(100).limit(200),
		job("j2").at(5).gpus(8).run(10).limit(20),
		job("j3").at(20).gpus(1).run(10).limit(20),
	)
	for _, cfg := range sched.Policies() {
		res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, cfg, Options{Outcomes: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Outcomes[1:] {
			if o.Start < 100 {
				t.Errorf("%s: %s starts at %d, before the node frees at 100", cfg.Name, o.ID, o.Start)
			}
		}
		if res.PlanCalls >= res.Passes {
			t.Errorf("%s: %d plan calls for %d passes; want the full node's passes unasked", cfg.Name, res.PlanCalls, res.Passes)
		}
	}
}

func TestCheckpointsKeepProgress(t *testing.T) {
	t.Parallel()
	// As in TestNodeFailureRequeues, with a checkpoint every 20 s: the run
	// from 0 to 50 saves 40 s, so the restart at 70 needs 60 s more.
	recs := records(job("g").at(0).gang(2, 8).run(100).limit(200))
	opt := Options{Outcomes: true, Checkpoint: 20 * time.Second,
		NodeEvents: []NodeEvent{{At: 50, Node: "n00"}, {At: 70, Node: "n00", Up: true}}}
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 2, 8), Records: recs}, sched.EASY(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if o := res.Outcomes[0]; o.End != 130 || o.Starts != 2 {
		t.Errorf("ends at %d after %d starts, want 130 after 2", o.End, o.Starts)
	}
	if res.LostAcceleratorSeconds != 16*10 || res.AcceleratorSeconds != 16*50+16*60 {
		t.Errorf("lost %d, held %d; want 160, 1760", res.LostAcceleratorSeconds, res.AcceleratorSeconds)
	}
}

func TestEndlessFailuresAreAnError(t *testing.T) {
	t.Parallel()
	// The node fails every 20 s; the job needs 1,000 s in one go.
	var evs []NodeEvent
	for k := range int64(2 * MaxStarts) {
		evs = append(evs, NodeEvent{At: 10 + 20*k, Node: "n00"}, NodeEvent{At: 20 + 20*k, Node: "n00", Up: true})
	}
	recs := records(job("long").run(1000).limit(2000).line(5))
	_, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.FIFO(), Options{NodeEvents: evs})
	if err == nil || !strings.Contains(err.Error(), "job long (trace line 5), which has started 100 times") {
		t.Errorf("error = %v, want one saying job long started 100 times", err)
	}
}

func TestNodeDownInTheClusterComesUp(t *testing.T) {
	t.Parallel()
	// n01 is down in the cluster file; it comes up at 5, and the gang that
	// needs it starts at the first pass after (10, a pass interval after
	// the one at 0).
	c := cluster(1, 1, 2, 8)
	c.Nodes[1].State = model.NodeDown
	recs := records(job("g").at(0).gang(2, 8).run(100).limit(200))
	opt := Options{Outcomes: true, NodeEvents: []NodeEvent{{At: 5, Node: "n01", Up: true}}}
	for _, cfg := range sched.Policies() {
		res, err := Run(context.Background(), Input{Cluster: c, Records: recs}, cfg, opt)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Name, err)
		}
		if o := res.Outcomes[0]; o.Start != 10 || o.End != 110 {
			t.Errorf("%s: runs %d–%d, want 10–110", cfg.Name, o.Start, o.End)
		}
	}
}

func TestProjectShares(t *testing.T) {
	t.Parallel()
	// a holds the node 0–100; b waits 10–100 and runs 100–150. While b
	// waited, only a held accelerators.
	recs := records(job("a1").at(0).gpus(8).run(100).limit(200).project("a"), job("b1").at(10).gpus(8).run(50).limit(100).project("b"))
	res, err := Run(context.Background(), Input{Cluster: cluster(1, 1, 1, 8), Records: recs}, sched.FIFO(), Options{Shares: map[string]int64{"a": 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := []ProjectStats{
		{Project: "a", Shares: 3, Jobs: 1, AcceleratorSeconds: 800, ShareReceived: 800.0 / 1200, ShareEntitled: 0.75, ShareContended: 1, AvgJCT: 100, AvgBoundedSlowdown: 1},
		{Project: "b", Shares: 1, Jobs: 1, AcceleratorSeconds: 400, ShareReceived: 400.0 / 1200, ShareEntitled: 0.25, ShareContended: 0, AvgJCT: 140, AvgQueue: 90, AvgBoundedSlowdown: 2.8},
	}
	if diff := cmp.Diff(want, res.Projects, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("projects (-want +got):\n%s", diff)
	}
	// Jain's index of the slowdowns 1 and 2.8.
	if want := 3.8 * 3.8 / (2 * (1 + 2.8*2.8)); math.Abs(res.Fairness-want) > 1e-9 {
		t.Errorf("fairness = %v, want %v", res.Fairness, want)
	}
}
