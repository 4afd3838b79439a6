package server_test

import (
	"context"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/ledger/usage"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
)

// The agents' measured energy becomes the job's usage: measured when
// every rank with accelerators reported it, estimated otherwise.
func TestMeasuredEnergyFromRankEndsEntersUsage(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	for _, p := range []string{"metered", "partial", "unmetered"} {
		env.Project(t, p, "") // before the first request: the server caches a caller's view of the projects
	}
	drainAllBut(t, env, "node1", "node2")
	agents := map[string]*fakeAgent{"node1": connect(t, env, "node1", ""), "node2": connect(t, env, "node2", "")}
	ctx := context.Background()
	end := func(j store.Job, rank int, rs api.RunState) {
		t.Helper()
		rs.Job, rs.Epoch, rs.Rank, rs.Ended = j.ID, j.Epoch, rank, true
		agents[j.Alloc[rank].Node].report(t, api.Report{Ended: []api.RunState{rs}})
	}
	finished := func(j store.Job) { env.WaitJob(t, j.ID, wait, func(j store.Job) bool { return j.State.Final() }) }

	// A gang whose two ranks each measured 1.8 MJ: 1 kWh in all.
	g := gang(2)
	g.Project = "metered"
	j := submit(t, env, g)
	end(j, 0, api.RunState{EnergyJ: 1.8e6})
	end(j, 1, api.RunState{EnergyJ: 1.8e6})
	finished(j)
	// A gang that one failing rank ended before the other reported.
	g.Project = "partial"
	j = submit(t, env, g)
	end(j, 1, api.RunState{ExitCode: 1, EnergyJ: 1.8e6})
	finished(j)
	// A job whose agent measured nothing.
	s := spec("unmetered", 8)
	j = submit(t, env, s)
	end(j, 0, api.RunState{})
	finished(j)

	var rep server.UsageReport
	if err := env.Admin.Do(ctx, http.MethodGet, api.Prefix+"/usage?by=project", nil, &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Rows {
		p := r.Labels[usage.ByProject]
		got[p] = r.EnergyMethod()
		if p == "metered" && math.Abs(r.MeasuredKWh-1) > 1e-9 {
			t.Errorf("metered: %g kWh measured; want the 1 kWh its ranks reported", r.MeasuredKWh)
		}
		if p != "metered" && r.MeasuredKWh != 0 {
			t.Errorf("%s: %g kWh measured; want none (estimated)", p, r.MeasuredKWh)
		}
	}
	// Estimated energy needs run time; jobs that ended within the second they
	// started have none, and show "none".
	for p, want := range map[string][]string{"metered": {"measured"}, "partial": {"estimated", "none"}, "unmetered": {"estimated", "none"}} {
		if m := got[p]; !strings.Contains(strings.Join(want, ","), m) || m == "" {
			t.Errorf("project %s: energy %q; want one of %v (all rows: %v)", p, m, want, got)
		}
	}
	if !strings.Contains(rep.EnergyNote, "measured") {
		t.Errorf("energy note %q does not say some energy was measured", rep.EnergyNote)
	}

	// A negative energy is an agent's bug, refused with the field named.
	j = submit(t, env, spec("unmetered", 8))
	err := agents[j.Alloc[0].Node].c.Do(ctx, "POST", api.Prefix+"/agents/"+j.Alloc[0].Node+"/report",
		api.Report{Ended: []api.RunState{{Job: j.ID, Epoch: j.Epoch, Ended: true, EnergyJ: -1}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "ended[0].energy_j") {
		t.Errorf("a negative energy: %v; want a refusal naming ended[0].energy_j", err)
	}
	if got, _ := env.Admin.Job(ctx, j.ID); got.State != model.JobRunning {
		t.Errorf("after a refused report the job is %s; want still running", got.State)
	}
}

// The registration's cgroup limits and power source reach the node.
func TestRegistrationCarriesLimitsAndPower(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	ctx := context.Background()
	reg := func(node string, limits *store.NodeLimits, power string) error {
		return env.Admin.Do(ctx, "POST", api.Prefix+"/agents/"+node+"/register", api.Registration{
			Node: model.Node{Name: node, Accelerators: 8, Model: "H100", CPUs: 16, MemoryMiB: 65536}, Limits: limits, Power: power}, nil)
	}
	if err := reg("node1", &store.NodeLimits{Reason: "controllers cpu and memory are not delegated"}, "emulated"); err != nil {
		t.Fatal(err)
	}
	if err := reg("node2", &store.NodeLimits{Enforced: true}, "nvidia-smi"); err != nil {
		t.Fatal(err)
	}
	nodes, err := env.Admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range nodes {
		if n.Limits != nil {
			got[n.Name] = strings.Join([]string{n.Power, map[bool]string{true: "enforced", false: "not"}[n.Limits.Enforced], n.Limits.Reason}, "|")
		}
	}
	want := map[string]string{"node1": "emulated|not|controllers cpu and memory are not delegated", "node2": "nvidia-smi|enforced|"}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("node %s: %q; want %q", n, got[n], w)
		}
	}
	if _, ok := got["node3"]; ok {
		t.Errorf("node3 never registered but has limits: %q", got["node3"])
	}
	if err := reg("node3", &store.NodeLimits{Enforced: true, Reason: "x"}, ""); err == nil || !strings.Contains(err.Error(), "limits.reason") {
		t.Errorf("limits enforced with a reason why not: %v; want a refusal naming limits.reason", err)
	}
}
