package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

func testSubmit(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	plain := job("p")
	plain.Name = "train"
	plain.Deps = []model.Dependency{{Type: model.AfterOK, JobID: "7"}}
	plain.Task.Env = map[string]string{"SEED": "1"}
	plain.Job.Priority = 5 // the administrator's adjustment, not the computed priority
	// What the store decides is reset, whatever the caller sent.
	plain.State, plain.Epoch, plain.Start, plain.Reason = model.JobRunning, 3, 9, "x"
	plain.Alloc = []store.Alloc{{Node: "n1", Accelerators: 1}}
	elem := job("p")
	elem.ArrayID = "new"
	jobs := submit(t, st, plain, elem, elem, job("q"))
	again := submit(t, st, elem, elem)

	var gotIDs, gotArrays []string
	for _, j := range append(jobs, again...) {
		gotIDs = append(gotIDs, j.ID)
		gotArrays = append(gotArrays, j.ArrayID)
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "4", "5", "6"}, gotIDs); diff != "" {
		t.Errorf("IDs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"", "2", "2", "", "5", "5"}, gotArrays); diff != "" {
		t.Errorf("array IDs: each call's \"new\" array is named after its first element (-want +got):\n%s", diff)
	}
	var last int64
	for _, j := range jobs {
		if j.Rev <= last {
			t.Errorf("job %s has revision %d after %d; want increasing revisions", j.ID, j.Rev, last)
		}
		last = j.Rev
	}

	want := plain
	want.ID, want.Rev = "1", jobs[0].Rev
	want.State, want.Epoch, want.Start, want.Reason, want.Alloc = model.JobPending, 0, 0, "", nil
	if diff := cmp.Diff(want, jobs[0]); diff != "" {
		t.Errorf("submitted job as returned (-want +got):\n%s", diff)
	}
	got, err := st.Job(ctx, "1")
	must(t, err)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("submitted job as read back (-want +got):\n%s", diff)
	}
	for _, id := range []string{"99", "x", "", "-1", "0", "1.0"} {
		if _, err := st.Job(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Job(%q): %v; want ErrNotFound", id, err)
		}
	}
}

func testSubmitAudit(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	e := store.AuditEntry{Time: 10, Actor: "ann", Action: "POST /api/v1/jobs", Target: "jobs", Remote: "192.0.2.1:5000", Status: 201}
	if _, err := st.SubmitJobs(ctx, []store.Job{job("p")}, e); err != nil {
		t.Fatal(err)
	}
	got, err := st.AuditLog(ctx, 0, 10)
	must(t, err)
	if len(got) != 1 || got[0].ID == 0 {
		t.Fatalf("audit log = %+v; want the submit's record with an ID", got)
	}
	got[0].ID = 0
	if diff := cmp.Diff(e, got[0]); diff != "" {
		t.Errorf("audit record (-want +got):\n%s", diff)
	}
}

func testFilters(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	var specs []store.Job
	for i := range 10 {
		j := job([]string{"p", "q"}[i%2])
		j.Name = fmt.Sprint("n", i%3)
		j.User = fmt.Sprint("u", i%4)
		if i < 3 {
			j.Partition = "a100"
		}
		specs = append(specs, j)
	}
	submit(t, st, specs...)
	arr := job("p")
	arr.ArrayID = "new"
	submit(t, st, arr, arr, arr) // 11, 12, 13
	_, err := st.UpdateJob(ctx, "4", func(j *store.Job) error { j.State = model.JobRunning; return nil })
	must(t, err)

	for _, tc := range []struct {
		name string
		f    store.JobFilter
		want []string
	}{
		{"no filter", store.JobFilter{}, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}},
		{"one project", store.JobFilter{Projects: []string{"q"}}, []string{"2", "4", "6", "8", "10"}},
		{"two projects", store.JobFilter{Projects: []string{"q", "p"}, Limit: 4}, []string{"1", "2", "3", "4"}},
		{"user", store.JobFilter{User: "u1"}, []string{"2", "6", "10"}},
		{"partition", store.JobFilter{Partition: "a100"}, []string{"1", "2", "3"}},
		{"array", store.JobFilter{ArrayID: "11"}, []string{"11", "12", "13"}},
		{"name", store.JobFilter{Name: "n0"}, []string{"1", "4", "7", "10"}},
		{"IDs in any order, unknown ones ignored", store.JobFilter{IDs: []string{"9", "2", "bogus", "77"}}, []string{"2", "9"}},
		{"only unknown IDs", store.JobFilter{IDs: []string{"bogus", "77"}}, []string{}},
		{"running", store.JobFilter{States: []model.JobState{model.JobRunning}}, []string{"4"}},
		{"pending or running, after 2, three", store.JobFilter{States: []model.JobState{model.JobPending, model.JobRunning}, After: "2", Limit: 3}, []string{"3", "4", "5"}},
		{"project and name", store.JobFilter{Projects: []string{"q"}, Name: "n0"}, []string{"4", "10"}},
		{"after the last", store.JobFilter{After: "13"}, []string{}},
		{"nobody's", store.JobFilter{User: "nobody"}, []string{}},
	} {
		got, err := st.Jobs(ctx, tc.f)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	var paged []string
	after := ""
	for range 20 {
		page, err := st.Jobs(ctx, store.JobFilter{After: after, Limit: 4})
		must(t, err)
		paged = append(paged, ids(page)...)
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].ID
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}, paged); diff != "" {
		t.Errorf("paging by 4 (-want +got):\n%s", diff)
	}
}

func testUpdateJob(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	js := submit(t, st, job("p"), job("p"))
	got, err := st.UpdateJob(ctx, js[0].ID, func(j *store.Job) error {
		if j.ID != js[0].ID || j.Rev != js[0].Rev {
			t.Errorf("fn sees job %s at revision %d; want %s at %d", j.ID, j.Rev, js[0].ID, js[0].Rev)
		}
		j.Held, j.Reason = true, "held by u"
		j.ID = "42" // the ID is not the caller's to change
		return nil
	})
	must(t, err)
	if got.ID != js[0].ID || !got.Held || got.Reason != "held by u" || got.Rev <= js[1].Rev {
		t.Errorf("UpdateJob = %+v; want job %s held with a new revision above %d", got, js[0].ID, js[1].Rev)
	}
	if back, err := st.Job(ctx, js[0].ID); err != nil {
		t.Error(err)
	} else if diff := cmp.Diff(got, back); diff != "" {
		t.Errorf("updated job read back (-want +got):\n%s", diff)
	}
	if _, err := st.Job(ctx, "42"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fn renamed the job to 42: %v", err)
	}

	refuse := errors.New("refused")
	if _, err := st.UpdateJob(ctx, js[1].ID, func(j *store.Job) error { j.Held = true; return refuse }); !errors.Is(err, refuse) {
		t.Errorf("UpdateJob whose fn fails: %v; want fn's error", err)
	}
	if back, _ := st.Job(ctx, js[1].ID); back.Held || back.Rev != js[1].Rev {
		t.Errorf("a failed update was written: %+v", back)
	}
	called := false
	if _, err := st.UpdateJob(ctx, "99", func(*store.Job) error { called = true; return nil }); !errors.Is(err, store.ErrNotFound) || called {
		t.Errorf("UpdateJob(99): %v, fn called %v; want ErrNotFound without calling fn", err, called)
	}
}

// testChangeFeed follows ChangedJobs while submits and updates commit from
// many goroutines, as a scheduler loop does, and checks that the follower
// ends with every job at its latest revision. An engine that hands out
// revisions out of commit order fails it: the follower moves past a
// revision that commits later and never sees that change.
func testChangeFeed(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	start, err := st.Rev(ctx)
	must(t, err)

	var writers sync.WaitGroup
	for range 10 {
		writers.Go(func() {
			for range 10 {
				if _, err := st.SubmitJobs(ctx, []store.Job{job("p"), job("p")}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for w := range 2 {
		writers.Go(func() {
			for i := 1 + w; i <= 200; i += 2 {
				id := strconv.Itoa(i)
				deadline := time.Now().Add(10 * time.Second)
				for {
					_, err := st.UpdateJob(ctx, id, func(j *store.Job) error { j.Held = !j.Held; return nil })
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrNotFound) || time.Now().After(deadline) {
						t.Errorf("update job %s: %v", id, err)
						return
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	seen := map[string]int64{}
	cursor, changes := start, 0
	follow := func() (int, error) {
		page, err := st.ChangedJobs(ctx, cursor, 7)
		for _, j := range page {
			if j.Rev <= cursor {
				return 0, fmt.Errorf("feed went back: job %s at revision %d after %d", j.ID, j.Rev, cursor)
			}
			cursor, seen[j.ID] = j.Rev, j.Rev
			changes++
		}
		return len(page), err
	}
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		n, err := follow()
		if err != nil {
			t.Fatal(err)
		}
		if finished && n == 0 {
			break
		}
	}
	if t.Failed() {
		return
	}
	all, err := st.Jobs(ctx, store.JobFilter{})
	must(t, err)
	want := map[string]int64{}
	for _, j := range all {
		want[j.ID] = j.Rev
	}
	if len(want) != 200 {
		t.Errorf("%d jobs in the store; want 200", len(want))
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("follower's view after %d changes against the store's jobs, ID to revision (-want +got):\n%s", changes, diff)
	}
	if rev, _ := st.Rev(ctx); rev != cursor {
		t.Errorf("Rev() = %d; the feed ended at %d", rev, cursor)
	}
}

func testApply(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	js := submit(t, st, job("p"), job("p"), job("p"))
	lease, ok, err := st.AcquireLease(ctx, "a", 1000, 60_000)
	if err != nil || !ok {
		t.Fatalf("take a free lease: %+v %v %v", lease, ok, err)
	}
	alloc := []store.Alloc{{Node: "n1", Accelerators: 1, CPUs: 4, MemoryMiB: 1024}}
	startOf := func(j store.Job) store.StartJob {
		return store.StartJob{ID: j.ID, Rev: j.Rev, Start: 5, Alloc: alloc}
	}
	must(t, st.SetWaiting(ctx, []store.WaitInfo{{ID: js[0].ID, Reason: "Resources", Priority: 3, EstStart: 70}}))
	held, err := st.UpdateJob(ctx, js[2].ID, func(j *store.Job) error { j.Held = true; return nil })
	must(t, err)
	before, _ := st.Rev(ctx)

	stale := js[1]
	stale.Rev--
	for _, tc := range []struct {
		name string
		d    store.Decisions
	}{
		{"a job seen at an older revision", store.Decisions{Starts: []store.StartJob{startOf(js[0]), startOf(stale)}}},
		{"a held job", store.Decisions{Starts: []store.StartJob{startOf(js[0]), startOf(held)}}},
		{"one job started twice", store.Decisions{Starts: []store.StartJob{startOf(js[0]), startOf(js[0])}}},
		{"a requeue of a pending job", store.Decisions{Starts: []store.StartJob{startOf(js[0])}, Requeues: []store.Requeue{{ID: js[1].ID, Reason: "x"}}}},
	} {
		if out, err := st.Apply(ctx, lease, tc.d); !errors.Is(err, store.ErrConflict) {
			t.Errorf("apply with %s = %+v, %v; want ErrConflict", tc.name, out, err)
		}
	}
	if rev, _ := st.Rev(ctx); rev != before {
		t.Errorf("rejected applies moved the revision from %d to %d", before, rev)
	}
	if j, _ := st.Job(ctx, js[0].ID); j.State != model.JobPending || j.Rev != js[0].Rev {
		t.Errorf("a rejected apply wrote job %s: %+v", j.ID, j)
	}
	if _, err := st.Apply(ctx, store.Lease{Holder: "b", Term: lease.Term}, store.Decisions{Starts: []store.StartJob{startOf(js[0])}}); !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("apply under another holder's name: %v; want ErrNotLeader", err)
	}

	stray := store.Decisions{Time: 5, Starts: []store.StartJob{startOf(js[0])}, Events: []store.Event{{Job: js[1].ID, Kind: "started"}}}
	if _, err := st.Apply(ctx, lease, stray); !errors.Is(err, store.ErrConflict) {
		t.Errorf("apply with an event of a job it decides nothing for: %v; want ErrConflict", err)
	}
	started := store.Event{Job: js[0].ID, Time: 5, Kind: "started", Detail: "on n1"}
	out, err := st.Apply(ctx, lease, store.Decisions{Time: 5, Starts: []store.StartJob{startOf(js[0])}, Events: []store.Event{started}})
	must(t, err)
	if ev, err := st.Events(ctx, js[0].ID, 0, 10); err != nil || len(ev) != 1 || ev[0].Kind != "started" || ev[0].Detail != "on n1" {
		t.Errorf("events after apply = %+v, %v; want the started event committed with the start", ev, err)
	}
	want := js[0]
	want.State, want.Start, want.Alloc, want.Epoch = model.JobRunning, 5, alloc, 1
	want.Priority = 3 // the last pass's priority stays
	if len(out) == 1 {
		want.Rev = out[0].Rev
	}
	if diff := cmp.Diff([]store.Job{want}, out); diff != "" {
		t.Errorf("apply's start: the job runs at epoch 1, its wait reason and estimate cleared (-want +got):\n%s", diff)
	}
	if back, _ := st.Job(ctx, js[0].ID); !cmp.Equal(want, back) {
		t.Errorf("started job read back (-want +got):\n%s", cmp.Diff(want, back))
	}
	if feed, _ := st.ChangedJobs(ctx, before, 10); len(feed) != 1 || feed[0].Rev <= before || feed[0].State != model.JobRunning {
		t.Errorf("change feed after a start = %+v; want the started job", feed)
	}

	running := want
	if _, err := st.Apply(ctx, lease, store.Decisions{Starts: []store.StartJob{startOf(js[0])}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("starting a running job again: %v; want ErrConflict", err)
	}
	// A requeue of the right run and a bad start: neither is written.
	bad := store.Decisions{Requeues: []store.Requeue{{ID: js[0].ID, Epoch: 1, Reason: "Preempted"}}, Starts: []store.StartJob{startOf(stale)}}
	if _, err := st.Apply(ctx, lease, bad); !errors.Is(err, store.ErrConflict) {
		t.Errorf("requeue with a stale start: %v; want ErrConflict", err)
	}
	if back, _ := st.Job(ctx, js[0].ID); back.State != model.JobRunning || back.Rev != running.Rev {
		t.Errorf("the requeue of a rejected apply was written: %+v", back)
	}
	if _, err := st.Apply(ctx, lease, store.Decisions{Requeues: []store.Requeue{{ID: js[0].ID, Epoch: 0, Reason: "Preempted"}}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("requeue of a past run (epoch 0): %v; want ErrConflict", err)
	}

	// Requeue the run and start job 2 in one pass.
	out, err = st.Apply(ctx, lease, store.Decisions{
		Requeues: []store.Requeue{{ID: js[0].ID, Epoch: 1, Reason: "Preempted"}},
		Starts:   []store.StartJob{startOf(js[1])},
	})
	must(t, err)
	if len(out) != 2 {
		t.Fatalf("apply of a requeue and a start returned %d jobs: %+v", len(out), out)
	}
	rq := running
	rq.State, rq.Reason, rq.Requeues, rq.Alloc, rq.Start = model.JobPending, "Preempted", 1, nil, 0
	for _, j := range out {
		if j.ID == rq.ID {
			rq.Rev = j.Rev
		}
	}
	back, _ := st.Job(ctx, js[0].ID)
	if diff := cmp.Diff(rq, back); diff != "" {
		t.Errorf("requeued job: pending again, same epoch, one requeue, nothing held (-want +got):\n%s", diff)
	}
	if out[0].Rev == out[1].Rev || min(out[0].Rev, out[1].Rev) <= running.Rev {
		t.Errorf("apply revisions %d and %d; want two new ones above %d", out[0].Rev, out[1].Rev, running.Rev)
	}
	out, err = st.Apply(ctx, lease, store.Decisions{Starts: []store.StartJob{startOf(back)}})
	if err != nil || len(out) != 1 || out[0].Epoch != 2 {
		t.Errorf("restart of a requeued job = %+v, %v; want epoch 2", out, err)
	}
	if out, err := st.Apply(ctx, lease, store.Decisions{}); err != nil || len(out) != 0 {
		t.Errorf("empty apply = %+v, %v", out, err)
	}
}

func testSetWaiting(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	var specs []store.Job
	for range 2500 {
		specs = append(specs, job("p"))
	}
	js := submit(t, st, specs...)
	running, err := st.UpdateJob(ctx, js[1].ID, func(j *store.Job) error { j.State = model.JobRunning; return nil })
	must(t, err)
	before, _ := st.Rev(ctx)

	var ws []store.WaitInfo
	for i, j := range js {
		ws = append(ws, store.WaitInfo{ID: j.ID, Reason: "Priority", Priority: int64(i), EstStart: int64(1000 + i)})
	}
	ws = append(ws, store.WaitInfo{ID: "99999", Reason: "gone"}, store.WaitInfo{ID: "bogus", Reason: "gone"})
	must(t, st.SetWaiting(ctx, ws))
	// Again with most rows unchanged, and one changed.
	ws[7].Reason = "Resources"
	must(t, st.SetWaiting(ctx, ws))

	for _, i := range []int{0, 7, 2499} {
		got, err := st.Job(ctx, js[i].ID)
		must(t, err)
		want := js[i]
		want.Reason, want.Priority, want.EstStart = ws[i].Reason, ws[i].Priority, ws[i].EstStart
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("waiting job %s (-want +got):\n%s", js[i].ID, diff)
		}
	}
	if got, _ := st.Job(ctx, running.ID); got.Reason != running.Reason || got.Priority != running.Priority {
		t.Errorf("SetWaiting changed a running job: %+v", got)
	}
	// An update sees the recorded reason and keeps it; a later pass's
	// reason replaces it.
	held, err := st.UpdateJob(ctx, js[0].ID, func(j *store.Job) error {
		if j.Reason != "Priority" || j.EstStart != 1000 {
			t.Errorf("UpdateJob's fn sees reason %q, estimate %d; want the recorded Priority, 1000", j.Reason, j.EstStart)
		}
		j.Held = true
		return nil
	})
	must(t, err)
	if got, _ := st.Job(ctx, js[0].ID); got.Reason != "Priority" || got.EstStart != 1000 || !got.Held || got.Rev != held.Rev {
		t.Errorf("after an update: %+v; want it held, its recorded reason kept", got)
	}
	must(t, st.SetWaiting(ctx, []store.WaitInfo{{ID: js[0].ID, Reason: "JobHeldUser"}}))
	if got, _ := st.Job(ctx, js[0].ID); got.Reason != "JobHeldUser" || got.Priority != 0 || got.EstStart != 0 {
		t.Errorf("after the next pass: reason %q, priority %d, estimate %d; want JobHeldUser, 0, 0", got.Reason, got.Priority, got.EstStart)
	}
	if rev, _ := st.Rev(ctx); rev != before+1 { // the update's
		t.Errorf("SetWaiting moved the revision: %d after %d and one update", rev, before)
	}
	if feed, _ := st.ChangedJobs(ctx, before, 10); len(feed) != 1 {
		t.Errorf("SetWaiting shows in the change feed: %d jobs; want the updated one", len(feed))
	}
	must(t, st.SetWaiting(ctx, nil))
}

func testDurable(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t, false)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked []store.Job
	)
	for i := range 50 {
		wg.Go(func() {
			specs := []store.Job{job("p")}
			if i%5 == 0 {
				specs = append(specs, job("q"), job("q"))
			}
			js, err := st.SubmitJobs(ctx, specs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			acked = append(acked, js...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byID := map[string]store.Job{}
	for _, j := range acked {
		if _, dup := byID[j.ID]; dup {
			t.Errorf("job ID %s given twice", j.ID)
		}
		byID[j.ID] = j
	}
	must(t, st.Close())
	st = open(t, true)
	all, err := st.Jobs(ctx, store.JobFilter{})
	must(t, err)
	got := map[string]store.Job{}
	for _, j := range all {
		got[j.ID] = j
	}
	if len(byID) != 70 {
		t.Errorf("%d distinct jobs acknowledged; want 70", len(byID))
	}
	if diff := cmp.Diff(byID, got); diff != "" {
		t.Errorf("acknowledged jobs against the reopened store's (-want +got):\n%s", diff)
	}
}
