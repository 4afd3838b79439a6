// Package storetest is the conformance suite every store.Store engine must
// pass. The SQLite and PostgreSQL engines both run it (internal/store/sqlstore).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// Opener opens the store under test; reopen=true opens the same one again
// (after Close), to check durability.
type Opener func(t *testing.T, reopen bool) store.Store

func job(project string) store.Job {
	return store.Job{Job: model.Job{ID: "new", Project: project, User: "u", Accelerators: 1, Limit: 60}, Task: model.Task{Script: "true"}}
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	t.Run("submit assigns IDs, arrays and revisions", func(t *testing.T) {
		st := open(t, false)
		a := job("p")
		a.ArrayID = "new"
		jobs, err := st.SubmitJobs(ctx, []store.Job{job("p"), a, a, job("q")})
		if err != nil {
			t.Fatal(err)
		}
		var ids, arrays []string
		for _, j := range jobs {
			ids = append(ids, j.ID)
			arrays = append(arrays, j.ArrayID)
			if j.State != model.JobPending || j.Rev == 0 {
				t.Errorf("job %s: state %s rev %d; want pending with a revision", j.ID, j.State, j.Rev)
			}
		}
		if diff := cmp.Diff([]string{"1", "2", "3", "4"}, ids); diff != "" {
			t.Errorf("IDs (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"", "2", "2", ""}, arrays); diff != "" {
			t.Errorf("array IDs (-want +got):\n%s", diff)
		}
		got, err := st.Job(ctx, "3")
		if err != nil || got.ArrayID != "2" || got.Task.Script != "true" {
			t.Errorf("Job(3) = %+v, %v", got, err)
		}
		for _, id := range []string{"99", "x", "", "-1"} {
			if _, err := st.Job(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Job(%q): %v; want ErrNotFound", id, err)
			}
		}
	})
	t.Run("filters and pages", func(t *testing.T) {
		st := open(t, false)
		var specs []store.Job
		for i := range 10 {
			j := job([]string{"p", "q"}[i%2])
			j.Name = fmt.Sprint("n", i%3)
			specs = append(specs, j)
		}
		if _, err := st.SubmitJobs(ctx, specs); err != nil {
			t.Fatal(err)
		}
		ids := func(f store.JobFilter) []string {
			js, err := st.Jobs(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			out := []string{}
			for _, j := range js {
				out = append(out, j.ID)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    store.JobFilter
			want []string
		}{
			{"project", store.JobFilter{Projects: []string{"q"}}, []string{"2", "4", "6", "8", "10"}},
			{"page", store.JobFilter{After: "3", Limit: 3}, []string{"4", "5", "6"}},
			{"name", store.JobFilter{Name: "n0"}, []string{"1", "4", "7", "10"}},
			{"ids", store.JobFilter{IDs: []string{"9", "2", "bogus"}}, []string{"2", "9"}},
			{"state", store.JobFilter{States: []model.JobState{model.JobRunning}}, []string{}},
			{"user", store.JobFilter{User: "nobody"}, []string{}},
		} {
			if diff := cmp.Diff(tc.want, ids(tc.f)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.name, diff)
			}
		}
	})
	t.Run("change feed misses nothing under concurrent writes", func(t *testing.T) {
		st := open(t, false)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for range 5 {
					if _, err := st.SubmitJobs(ctx, []store.Job{job("p"), job("p")}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for i := 1; i <= 50; i++ {
				st.UpdateJob(ctx, fmt.Sprint(i), func(j *store.Job) error { j.Held = true; return nil })
			}
		})
		wg.Wait()
		seen := map[string]int64{}
		var rev int64
		for {
			page, err := st.ChangedJobs(ctx, rev, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range page {
				if j.Rev <= rev {
					t.Fatalf("feed went back: rev %d after %d", j.Rev, rev)
				}
				rev = j.Rev
				seen[j.ID] = j.Rev
			}
			if len(page) < 7 {
				break
			}
		}
		if len(seen) != 200 {
			t.Errorf("feed shows %d jobs; want 200", len(seen))
		}
		if last, _ := st.Rev(ctx); last != rev {
			t.Errorf("Rev() = %d; the feed ended at %d", last, rev)
		}
	})
	t.Run("apply is optimistic, atomic and fenced", func(t *testing.T) {
		st := open(t, false)
		jobs, _ := st.SubmitJobs(ctx, []store.Job{job("p"), job("p")})
		lease, ok, err := st.AcquireLease(ctx, "a", 1000, 5000)
		if err != nil || !ok || lease.Term != 1 {
			t.Fatalf("first lease = %+v %v %v", lease, ok, err)
		}
		alloc := []store.Alloc{{Node: "n1", Accelerators: 1}}
		stale := store.Decisions{Starts: []store.StartJob{
			{ID: jobs[0].ID, Rev: jobs[0].Rev, Start: 5, Alloc: alloc},
			{ID: jobs[1].ID, Rev: jobs[1].Rev - 1, Start: 5, Alloc: alloc},
		}}
		if _, err := st.Apply(ctx, lease, stale); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("apply with a stale revision: %v; want ErrConflict", err)
		}
		if j, _ := st.Job(ctx, jobs[0].ID); j.State != model.JobPending {
			t.Errorf("a rejected apply started job %s", j.ID)
		}
		good := store.Decisions{Starts: []store.StartJob{{ID: jobs[0].ID, Rev: jobs[0].Rev, Start: 5, Alloc: alloc}}}
		if _, err := st.Apply(ctx, store.Lease{Holder: "b", Term: 1}, good); !errors.Is(err, store.ErrNotLeader) {
			t.Fatalf("apply under someone else's lease: %v; want ErrNotLeader", err)
		}
		out, err := st.Apply(ctx, lease, good)
		if err != nil || len(out) != 1 || out[0].Epoch != 1 || out[0].State != model.JobRunning {
			t.Fatalf("apply = %+v, %v; want job running at epoch 1", out, err)
		}
		if _, err := st.Apply(ctx, lease, good); !errors.Is(err, store.ErrConflict) {
			t.Errorf("starting a running job again: %v; want ErrConflict", err)
		}
		rq := store.Decisions{Requeues: []store.Requeue{{ID: jobs[0].ID, Epoch: 0, Reason: "x"}}}
		if _, err := st.Apply(ctx, lease, rq); !errors.Is(err, store.ErrConflict) {
			t.Errorf("requeue with an old epoch: %v; want ErrConflict", err)
		}
		rq.Requeues[0].Epoch = 1
		if out, err := st.Apply(ctx, lease, rq); err != nil || out[0].State != model.JobPending || out[0].Requeues != 1 {
			t.Errorf("requeue = %+v, %v", out, err)
		}
		if err := st.SetWaiting(ctx, []store.WaitInfo{{ID: jobs[1].ID, Reason: "Priority", Priority: 7, EstStart: 99}}); err != nil {
			t.Fatal(err)
		}
		if j, _ := st.Job(ctx, jobs[1].ID); j.Reason != "Priority" || j.Priority != 7 || j.EstStart != 99 || j.Rev != jobs[1].Rev {
			t.Errorf("after SetWaiting: %+v; want the reason recorded and the revision unchanged", j)
		}
	})
	t.Run("lease: one holder, takeover after expiry, give up", func(t *testing.T) {
		st := open(t, false)
		if _, ok, _ := st.AcquireLease(ctx, "a", 0, 100); !ok {
			t.Fatal("a could not take a free lease")
		}
		if l, ok, _ := st.AcquireLease(ctx, "b", 50, 100); ok || l.Holder != "a" {
			t.Errorf("b took a running lease: %+v", l)
		}
		if l, ok, _ := st.AcquireLease(ctx, "a", 60, 100); !ok || l.Term != 1 || l.Expires != 160 {
			t.Errorf("a's renewal = %+v %v; want term 1 until 160", l, ok)
		}
		if l, ok, _ := st.AcquireLease(ctx, "b", 200, 100); !ok || l.Term != 2 {
			t.Errorf("b's takeover after expiry = %+v %v; want term 2", l, ok)
		}
		if _, ok, _ := st.AcquireLease(ctx, "b", 210, 0); ok {
			t.Error("giving up reported ok")
		}
		if l, ok, _ := st.AcquireLease(ctx, "a", 211, 100); !ok || l.Term != 3 {
			t.Errorf("a after b gave up = %+v %v; want term 3", l, ok)
		}
	})
	t.Run("objects, members, tokens, audit, events", func(t *testing.T) {
		st := open(t, false)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(st.PutSite(ctx, model.Site{Name: "s", Country: "FR"}))
		must(st.PutPartition(ctx, model.Partition{Name: "gpu", Site: "s", Model: "H100"}))
		n, err := st.PutNode(ctx, store.Node{Node: model.Node{Name: "n1", Site: "s", Partition: "gpu", Accelerators: 8, Model: "H100", State: model.NodeUp}})
		must(err)
		n2, err := st.UpdateNode(ctx, "n1", func(n *store.Node) error { n.State = model.NodeDrain; return nil })
		must(err)
		if n2.State != model.NodeDrain || n2.Rev <= n.Rev {
			t.Errorf("UpdateNode = %+v", n2)
		}
		must(st.Heartbeats(ctx, []string{"n1", "ghost"}, 42))
		if n3, _ := st.Node(ctx, "n1"); n3.Heartbeat != 42 || n3.State != model.NodeDrain {
			t.Errorf("after heartbeat: %+v", n3)
		}
		if _, err := st.UpdateNode(ctx, "ghost", func(*store.Node) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateNode(ghost): %v", err)
		}
		must(st.PutProject(ctx, model.Project{Name: "c", Shares: 1}))
		must(st.PutProject(ctx, model.Project{Name: "t", Parent: "c", Shares: 2}))
		ps, _ := st.Projects(ctx)
		if len(ps) != 2 || ps[1].Parent != "c" {
			t.Errorf("projects = %+v", ps)
		}
		must(st.PutMember(ctx, store.Member{Project: "t", User: "ann", Role: store.RoleMember}))
		must(st.PutMember(ctx, store.Member{Project: "t", User: "ann", Role: store.RoleManager}))
		must(st.PutMember(ctx, store.Member{Project: "", User: "ann", Role: store.RoleOperator}))
		if ms, _ := st.Members(ctx, "", "ann"); len(ms) != 2 || ms[1].Role != store.RoleManager {
			t.Errorf("ann's roles = %+v", ms)
		}
		if err := st.DeleteMember(ctx, "t", "bob"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteMember(bob): %v", err)
		}
		must(st.PutToken(ctx, store.Token{ID: "k1", User: "ann", Hash: []byte{1, 2, 3}, Created: 5}))
		if tk, err := st.TokenByHash(ctx, []byte{1, 2, 3}); err != nil || tk.User != "ann" {
			t.Errorf("TokenByHash = %+v %v", tk, err)
		}
		must(st.DeleteToken(ctx, "k1"))
		if _, err := st.TokenByHash(ctx, []byte{1, 2, 3}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted token still found: %v", err)
		}
		must(st.Audit(ctx, store.AuditEntry{Time: 1, Actor: "ann", Action: "POST /x", Status: 201}))
		if es, _ := st.AuditLog(ctx, 0, 10); len(es) != 1 || es[0].Actor != "ann" {
			t.Errorf("audit log = %+v", es)
		}
		must(st.AddEvents(ctx, []store.Event{{Job: "1", Time: 3, Kind: "started"}, {Job: "1", Time: 4, Kind: "ended"}}))
		if ev, _ := st.Events(ctx, "1", 0, 10); len(ev) != 2 || ev[1].Kind != "ended" {
			t.Errorf("events = %+v", ev)
		}
	})
	t.Run("acknowledged jobs survive a reopen", func(t *testing.T) {
		st := open(t, false)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var acked []string
		for range 50 {
			wg.Go(func() {
				js, err := st.SubmitJobs(ctx, []store.Job{job("p")})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, js[0].ID)
				mu.Unlock()
			})
		}
		wg.Wait()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		st = open(t, true)
		js, err := st.Jobs(ctx, store.JobFilter{IDs: acked})
		if err != nil || len(js) != 50 {
			t.Fatalf("after reopen %d of 50 acknowledged jobs found (%v)", len(js), err)
		}
	})
}
