package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/pgtest"
)

// TestASecondReplicaTakesOverFromAKilledLeader runs two usine server
// processes on one PostgreSQL store. Exactly one of them holds the
// scheduler lease and schedules, also the jobs submitted through the
// other; killed with SIGKILL, it cannot give the lease up, so the other
// takes it when it expires (the lease lasts 6 s) and starts a job
// submitted after the kill, leaving the job the dead leader started alone.
// The takeover time is logged, not asserted: it is a figure for
// docs/PERFORMANCE.md, and the machine is shared.
func TestASecondReplicaTakesOverFromAKilledLeader(t *testing.T) {
	base := pgtest.Server(t)
	t.Parallel()
	bin := buildUsine(t)
	storeURL := pgtest.Fresh(t, base)
	ctx := context.Background()

	begin := time.Now()
	a := newServerProc(t, bin, "replica-a", storeURL)
	a.start()
	waitLeadership(t, a, true)
	t.Logf("replica-a leads %v after its start", time.Since(begin).Round(time.Millisecond))
	b := newServerProc(t, bin, "replica-b", storeURL)
	b.token = a.token // one store, one admin
	b.start()

	// Exactly one leader, and only it runs passes, also for the jobs
	// submitted to the other.
	first := submitOne(t, b.admin(), "before-the-kill")
	waitStarted(t, b.admin(), first)
	for _, c := range []struct {
		p      *serverProc
		leader bool
	}{{a, true}, {b, false}} {
		var st server.LoopState
		if err := c.p.admin().Do(ctx, "GET", api.Prefix+"/scheduler", nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.Leader != c.leader || (st.Passes > 0) != c.leader || st.Holder != c.p.name {
			t.Errorf("%s: leader %v after %d passes (holder %q); want leader %v, passes only if leader",
				c.p.name, st.Leader, st.Passes, st.Holder, c.leader)
		}
		if got := leads(t, c.p); got != c.leader {
			t.Errorf("%s says in /readyz that it leads: %v; want %v", c.p.name, got, c.leader)
		}
	}

	a.kill()
	killed := time.Now()
	second := submitOne(t, b.admin(), "after-the-kill")
	took := waitLeadership(t, b, true).Sub(killed)
	j := waitStarted(t, b.admin(), second)
	started := time.Since(killed)
	t.Logf("failover: replica-b took the lease %v after replica-a was killed; a job submitted at the kill started after %v",
		took.Round(time.Millisecond), started.Round(time.Millisecond))

	if j.Epoch != 1 {
		t.Errorf("the job submitted after the kill has epoch %d; want 1", j.Epoch)
	}
	f, err := b.admin().Job(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if f.State != model.JobRunning || f.Epoch != 1 {
		t.Errorf("the job the dead leader started is %s at epoch %d; want still running at epoch 1 (not started again)", f.State, f.Epoch)
	}
	for _, id := range []string{first, second} {
		evs, err := b.admin().Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if e.Kind == "started" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("job %s has %d started events; want 1", id, n)
		}
	}
}

// waitLeadership waits until p says in /readyz that it leads (or not),
// and returns when it saw it.
func waitLeadership(t *testing.T, p *serverProc, want bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if leads(t, p) == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: leader is not %v after %v", p.name, want, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leads reads p's /readyz: false while it is not ready.
func leads(t *testing.T, p *serverProc) bool {
	t.Helper()
	resp, err := http.Get(p.url + "/readyz")
	if err != nil {
		t.Fatalf("readyz of %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	var r struct {
		Leader bool `json:"leader"`
	}
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("readyz of %s: %v", p.name, err)
	}
	return r.Leader
}

func submitOne(t *testing.T, c *api.Client, name string) string {
	t.Helper()
	jobs, err := c.Submit(context.Background(), api.JobSpec{Name: name, Project: "default", Accelerators: 1, Limit: 600,
		Task: model.Task{Script: "#!/bin/sh\ntrue\n"}})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("submit %s: %v, %v", name, jobs, err)
	}
	return jobs[0].ID
}

func waitStarted(t *testing.T, c *api.Client, id string) store.Job {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
		if j.State == model.JobRunning {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not start within %v: %s (%s)", id, wait, j.State, j.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
