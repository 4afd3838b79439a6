package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/server/servertest"
	"github.com/usine-project/usine/internal/store"
)

// fakeAgent speaks the agent protocol by hand, so that tests choose what
// each rank reports.
type fakeAgent struct {
	env    *servertest.Env
	node   string
	c      *api.Client
	orders chan api.Orders
	cancel context.CancelFunc
}

// agentEnv starts a server whose agents report every 50 ms and whose
// nodes are lost after a second of silence.
func agentEnv(t *testing.T) *servertest.Env {
	return servertest.Start(t, servertest.Options{Config: server.Config{
		NodeTimeout: time.Second, AgentHeartbeat: 50 * time.Millisecond,
	}})
}

// connect registers node (one of the laptop's node1…node4) with address
// addr and opens its orders stream.
func connect(t *testing.T, env *servertest.Env, node, addr string) *fakeAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := &fakeAgent{env: env, node: node, c: env.Admin, orders: make(chan api.Orders, 64), cancel: cancel}
	a.register(t, addr)
	a.follow(t, ctx)
	return a
}

// follow opens the node's orders stream, as its agent does after
// registering (with any replica).
func (a *fakeAgent) follow(t *testing.T, ctx context.Context) {
	t.Helper()
	env, node := a.env, a.node
	req, _ := http.NewRequestWithContext(ctx, "GET", env.URL+api.Prefix+"/agents/"+node+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+env.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open the orders of %s: %v", node, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("open the orders of %s: HTTP %d", node, resp.StatusCode)
	}
	go func() {
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var o api.Orders
			if dec.Decode(&o) != nil {
				return
			}
			select {
			case a.orders <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (a *fakeAgent) register(t *testing.T, addr string) {
	t.Helper()
	reg := api.Registration{Address: addr, Node: model.Node{Name: a.node, Accelerators: 8, Model: "H100", CPUs: 16, MemoryMiB: 65536}}
	if err := a.c.Do(context.Background(), "POST", api.Prefix+"/agents/"+a.node+"/register", reg, nil); err != nil {
		t.Fatalf("register %s: %v", a.node, err)
	}
}

// waitOrders reads the node's orders until one satisfies cond.
func (a *fakeAgent) waitOrders(t *testing.T, what string, cond func(api.Orders) bool) api.Orders {
	t.Helper()
	deadline := time.After(wait)
	var last api.Orders
	for {
		select {
		case o := <-a.orders:
			if cond(o) {
				return o
			}
			last = o
		case <-deadline:
			t.Fatalf("%s: no orders where %s within %v; last %+v", a.node, what, wait, last)
		}
	}
}

func (a *fakeAgent) report(t *testing.T, rep api.Report) {
	t.Helper()
	if err := a.c.Do(context.Background(), "POST", api.Prefix+"/agents/"+a.node+"/report", rep, nil); err != nil {
		t.Fatalf("report from %s: %v", a.node, err)
	}
}

// heartbeat reports every 50 ms until the test ends or stop is called.
func (a *fakeAgent) heartbeat(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = a.c.Do(ctx, "POST", api.Prefix+"/agents/"+a.node+"/report", api.Report{}, nil)
			}
		}
	}()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

func runOf(o api.Orders, job string) (api.Run, bool) {
	for _, r := range o.Runs {
		if r.Job.ID == job {
			return r, true
		}
	}
	return api.Run{}, false
}

func gang(nodes int) api.JobSpec {
	s := spec("default", 0)
	s.Nodes, s.AcceleratorsPerNode = nodes, 8
	return s
}

func submit(t *testing.T, env *servertest.Env, s api.JobSpec) store.Job {
	t.Helper()
	jobs, err := env.Admin.Submit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return env.WaitJob(t, jobs[0].ID, wait, running)
}

// drainAllBut leaves only the named nodes open to new work.
func drainAllBut(t *testing.T, env *servertest.Env, open ...string) {
	t.Helper()
	for _, n := range []string{"node1", "node2", "node3", "node4"} {
		if !slices.Contains(open, n) {
			if _, err := env.Admin.Drain(context.Background(), n, "kept out of this test"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOrdersCarryEveryRankOfAGang(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	drainAllBut(t, env, "node1", "node2")
	a1 := connect(t, env, "node1", "10.0.0.1")
	a2 := connect(t, env, "node2", "10.0.0.2")
	a1.heartbeat(t) // silent for a second, a node is lost with its jobs
	a2.heartbeat(t)
	j := submit(t, env, gang(2))
	type seen struct {
		Rank, Accelerators int
		Epoch, Deadline    int64
		Nodes, Addresses   []string
	}
	want := func(rank int) seen {
		return seen{Rank: rank, Accelerators: 8, Epoch: 1, Deadline: j.Start + j.Limit,
			Nodes: []string{j.Alloc[0].Node, j.Alloc[1].Node}, Addresses: []string{"10.0.0." + j.Alloc[0].Node[4:], "10.0.0." + j.Alloc[1].Node[4:]}}
	}
	for _, a := range []*fakeAgent{a1, a2} {
		o := a.waitOrders(t, "the gang runs", func(o api.Orders) bool { _, ok := runOf(o, j.ID); return ok })
		r, _ := runOf(o, j.ID)
		rank := slices.Index(r.Nodes, a.node)
		if diff := cmp.Diff(want(rank), seen{r.Rank, r.Accelerators, r.Epoch, r.Deadline, r.Nodes, r.Addresses}); diff != "" {
			t.Errorf("%s's run (-want +got):\n%s", a.node, diff)
		}
		if r.Job.Task.Script == "" || o.HeartbeatMS != 50 || o.Rev < j.Rev {
			t.Errorf("%s's orders lack the script, the heartbeat or the revision: %+v", a.node, o)
		}
	}
}

func TestRankEndsSettleTheJob(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	drainAllBut(t, env, "node1", "node2")
	a1 := connect(t, env, "node1", "")
	a2 := connect(t, env, "node2", "")
	a1.heartbeat(t) // silent for a second, a node is lost with its jobs
	a2.heartbeat(t)
	agents := map[string]*fakeAgent{"node1": a1, "node2": a2}
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		rank1      api.RunState // what rank 1 reports first
		rank0      *api.RunState
		wantState  model.JobState
		wantExit   int
		wantSignal string
		wantReason string
	}{
		{name: "every rank exits 0", rank1: api.RunState{}, rank0: &api.RunState{},
			wantState: model.JobCompleted},
		{name: "one rank failing fails the gang at once", rank1: api.RunState{ExitCode: 3},
			wantState: model.JobFailed, wantExit: 3, wantReason: "rank 1 on"},
		{name: "a rank killed by a signal", rank1: api.RunState{Signal: "KILL", ExitCode: -1},
			wantState: model.JobFailed, wantExit: -1, wantSignal: "KILL", wantReason: "killed by signal KILL"},
		{name: "the time limit", rank1: api.RunState{Signal: "TERM", TimedOut: true, ExitCode: -1},
			wantState: model.JobTimeout, wantExit: -1, wantSignal: "TERM", wantReason: "TimeLimit"},
		{name: "a rank that could not start", rank1: api.RunState{Error: "no such interpreter /bin/nope", ExitCode: -1},
			wantState: model.JobFailed, wantExit: -1, wantReason: "could not start rank 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := submit(t, env, gang(2))
			end := func(rank int, rs api.RunState) {
				rs.Job, rs.Epoch, rs.Rank, rs.Ended = j.ID, j.Epoch, rank, true
				agents[j.Alloc[rank].Node].report(t, api.Report{Ended: []api.RunState{rs}})
			}
			end(1, tc.rank1)
			if tc.rank0 != nil {
				if got, _ := env.Admin.Job(ctx, j.ID); got.State != model.JobRunning {
					t.Fatalf("after one of two ranks exited 0 the job is %s; want running", got.State)
				}
				end(0, *tc.rank0)
			}
			got, err := env.Admin.Job(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tc.wantState || got.ExitCode != tc.wantExit || got.Signal != tc.wantSignal || !strings.Contains(got.Reason, tc.wantReason) {
				t.Errorf("job %s, exit %d, signal %q, reason %q; want %s, exit %d, signal %q, a reason with %q",
					got.State, got.ExitCode, got.Signal, got.Reason, tc.wantState, tc.wantExit, tc.wantSignal, tc.wantReason)
			}
			// Both nodes stop being asked to run it.
			for _, a := range agents {
				a.waitOrders(t, "the job is gone", func(o api.Orders) bool { _, ok := runOf(o, j.ID); return !ok })
			}
			ev, _ := env.Admin.Events(ctx, j.ID)
			ended := 0
			for _, e := range ev {
				if e.Kind == "ended" {
					ended++
				}
			}
			if ended != 1 {
				t.Errorf("%d ended events; want 1: %+v", ended, ev)
			}
		})
	}
}

func TestReportsForAnOldEpochChangeNothing(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	drainAllBut(t, env, "node1")
	a := connect(t, env, "node1", "")
	a.heartbeat(t) // silent for a second, a node is lost with its jobs
	ctx := context.Background()
	j := submit(t, env, spec("default", 8))
	if _, err := env.Admin.JobAction(ctx, j.ID, "requeue", nil); err != nil {
		t.Fatal(err)
	}
	j2 := env.WaitJob(t, j.ID, wait, func(j store.Job) bool { return j.State == model.JobRunning && j.Epoch == 2 })
	a.waitOrders(t, "epoch 2 runs", func(o api.Orders) bool { r, ok := runOf(o, j.ID); return ok && r.Epoch == 2 })

	for _, tc := range []struct {
		name string
		rs   api.RunState
	}{
		{"the first run's end", api.RunState{Job: j.ID, Epoch: 1, Ended: true, ExitCode: 1}},
		{"a rank the job does not have", api.RunState{Job: j.ID, Epoch: 2, Rank: 1, Ended: true, ExitCode: 1}},
		{"a job that does not exist", api.RunState{Job: "999999", Epoch: 1, Ended: true}},
	} {
		a.report(t, api.Report{Ended: []api.RunState{tc.rs}})
		got, _ := env.Admin.Job(ctx, j.ID)
		if got.State != model.JobRunning || got.Epoch != 2 || got.Rev != j2.Rev {
			t.Errorf("%s: the job became %s epoch %d rev %d; want it untouched (running, epoch 2, rev %d)", tc.name, got.State, got.Epoch, got.Rev, j2.Rev)
		}
	}
	// The same report for the live epoch, sent twice, ends it once.
	for range 2 {
		a.report(t, api.Report{Ended: []api.RunState{{Job: j.ID, Epoch: 2, Ended: true}}})
	}
	got, _ := env.Admin.Job(ctx, j.ID)
	if got.State != model.JobCompleted {
		t.Errorf("after the live epoch's end: %s; want completed", got.State)
	}
}

func TestSilentNodesAreLostAndComeBack(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	ctx := context.Background()
	drainAllBut(t, env, "node1")
	a1 := connect(t, env, "node1", "")
	a2 := connect(t, env, "node2", "") // drained, alive: never lost
	stop1 := a1.heartbeat(t)
	a2.heartbeat(t)

	requeued := spec("default", 4)
	requeued.Task.Requeue = true
	jr := submit(t, env, requeued)
	jf := submit(t, env, spec("default", 4))
	stop1()

	n := waitNode(t, env, "node1", func(n store.Node) bool { return n.State == model.NodeDown })
	if !strings.HasPrefix(n.Reason, "NodeFail") {
		t.Errorf("lost node's reason %q; want it to start with NodeFail", n.Reason)
	}
	gotR := env.WaitJob(t, jr.ID, wait, func(j store.Job) bool { return j.State != model.JobRunning })
	gotF := env.WaitJob(t, jf.ID, wait, func(j store.Job) bool { return j.State != model.JobRunning })
	if gotR.State != model.JobPending || gotR.Requeues != 1 {
		t.Errorf("the job that asked for requeue is %s with %d requeues; want pending, 1", gotR.State, gotR.Requeues)
	}
	if gotF.State != model.JobFailed || gotF.Reason != "NodeFail" {
		t.Errorf("the other job is %s (%q); want failed, NodeFail", gotF.State, gotF.Reason)
	}
	if n, _ := env.Store.Node(ctx, "node2"); n.State != model.NodeDrain || n.Reason != "kept out of this test" {
		t.Errorf("the drained node that kept speaking is %s (%q); want still drained by the operator", n.State, n.Reason)
	}
	// The old run's late end is fenced off.
	a1.report(t, api.Report{Ended: []api.RunState{{Job: jr.ID, Epoch: jr.Epoch, Ended: true}}})
	if j, _ := env.Admin.Job(ctx, jr.ID); j.State.Final() {
		t.Errorf("a late report of the lost run ended the requeued job: %s", j.State)
	}

	// The agent comes back: the node is up again and the requeued job
	// starts anew, with a new epoch.
	a1.register(t, "")
	a1.heartbeat(t)
	waitNode(t, env, "node1", func(n store.Node) bool { return n.State == model.NodeUp })
	j := env.WaitJob(t, jr.ID, wait, running)
	if j.Epoch != 2 {
		t.Errorf("restarted job has epoch %d; want 2", j.Epoch)
	}
	a1.waitOrders(t, "the requeued job runs again", func(o api.Orders) bool { r, ok := runOf(o, jr.ID); return ok && r.Epoch == 2 })

	// Registering again keeps an operator's drain.
	a2.register(t, "")
	if n, _ := env.Store.Node(ctx, "node2"); n.State != model.NodeDrain {
		t.Errorf("node2 after re-registration: %s; want the operator's drain kept", n.State)
	}
}

func waitNode(t *testing.T, env *servertest.Env, name string, cond func(store.Node) bool) store.Node {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n, err := env.Store.Node(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: condition not met within %v; last %+v", name, wait, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHealthDrainsAndResumesANode(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	a := connect(t, env, "node3", "")
	a.report(t, api.Report{Health: "data disk 99% full"})
	n := waitNode(t, env, "node3", func(n store.Node) bool { return n.State != model.NodeUp })
	if diff := cmp.Diff([]string{"drain", "health: data disk 99% full"}, []string{string(n.State), n.Reason}); diff != "" {
		t.Errorf("sick node (-want +got):\n%s", diff)
	}
	a.report(t, api.Report{})
	waitNode(t, env, "node3", func(n store.Node) bool { return n.State == model.NodeUp && n.Reason == "" })
}

func TestSignalsReachTheNodesOfTheJob(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	drainAllBut(t, env, "node4")
	a := connect(t, env, "node4", "")
	a.heartbeat(t) // silent for a second, a node is lost with its jobs
	j := submit(t, env, spec("default", 2))
	if _, err := env.Admin.JobAction(context.Background(), j.ID, "cancel", api.CancelRequest{Signal: "USR1"}); err != nil {
		t.Fatal(err)
	}
	o := a.waitOrders(t, "a signal order", func(o api.Orders) bool { return len(o.Signals) > 0 })
	if s := o.Signals[0]; s.Job != j.ID || s.Epoch != j.Epoch || s.Signal != "USR1" || s.Seq == 0 {
		t.Errorf("signal order %+v; want USR1 to job %s epoch %d with a sequence number", s, j.ID, j.Epoch)
	}
}

// twoReplicas starts two servers on one SQLite store, as agentEnv does one.
func twoReplicas(t *testing.T) (first, second *servertest.Env) {
	cfg := server.Config{NodeTimeout: time.Second, AgentHeartbeat: 50 * time.Millisecond}
	url := "sqlite:" + t.TempDir() + "/usine.db"
	cfg.Name = "first" // replicas in one process need names of their own for the lease
	first = servertest.Start(t, servertest.Options{Config: cfg, StoreURL: url})
	cfg.Name = "second"
	return first, servertest.Start(t, servertest.Options{Config: cfg, StoreURL: url})
}

// A signal asked of one replica reaches the agents connected to another:
// it is part of the job, which every replica follows.
func TestSignalsReachAgentsOfAnotherReplica(t *testing.T) {
	t.Parallel()
	first, second := twoReplicas(t)
	drainAllBut(t, first, "node4")
	a := connect(t, first, "node4", "")
	a.heartbeat(t) // silent for a second, a node is lost with its jobs
	j := submit(t, first, spec("default", 2))
	viaSecond := &api.Client{BaseURL: second.URL, Token: first.AdminToken} // one admin, two replicas
	for _, sig := range []string{"USR1", "USR2"} {
		if _, err := viaSecond.JobAction(context.Background(), j.ID, "cancel", api.CancelRequest{Signal: sig}); err != nil {
			t.Fatal(err)
		}
	}
	o := a.waitOrders(t, "two signal orders", func(o api.Orders) bool { return len(o.Signals) == 2 })
	if s := o.Signals; s[0].Signal != "USR1" || s[1].Signal != "USR2" || s[0].Seq == s[1].Seq || s[0].Epoch != j.Epoch {
		t.Errorf("signal orders %+v; want USR1 then USR2 to epoch %d, each with its own sequence number", s, j.Epoch)
	}
}

// Every replica gives a run the same step key, from the secret they share
// through the store, so srun works whichever replica an agent follows.
func TestReplicasGiveARunOneStepKey(t *testing.T) {
	t.Parallel()
	first, second := twoReplicas(t)
	drainAllBut(t, first, "node4")
	a := connect(t, first, "node4", "")
	defer a.heartbeat(t)()
	j := submit(t, first, spec("default", 2))
	var keys []string
	for _, env := range []*servertest.Env{first, second} {
		// The same agent's orders stream, from each replica in turn.
		ctx, cancel := context.WithCancel(context.Background())
		s := &fakeAgent{env: &servertest.Env{URL: env.URL, AdminToken: first.AdminToken}, node: "node4", c: first.Admin,
			orders: make(chan api.Orders, 64), cancel: cancel}
		s.follow(t, ctx)
		o := s.waitOrders(t, "the run", func(o api.Orders) bool { _, ok := runOf(o, j.ID); return ok })
		cancel()
		r, _ := runOf(o, j.ID)
		keys = append(keys, r.StepKey)
	}
	if keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("step keys %q from two replicas; want one non-empty key", keys)
	}
}

// A node's token is its agent's alone: it acts for that node and for no
// other, and holds no role whatever its user's; only operators and admins
// make one.
func TestANodesTokenActsForItsNodeAlone(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	ctx := context.Background()
	nt, err := env.Admin.CreateToken(ctx, api.TokenRequest{Name: "node4 agent", Node: "node4"})
	if err != nil {
		t.Fatal(err)
	}
	if nt.Node != "node4" {
		t.Errorf("token %+v; want it bound to node4", nt.Token)
	}
	agent := env.Client(nt.Secret)
	own := &fakeAgent{env: env, node: "node4", c: agent}
	own.register(t, "") // allowed, or it fails the test
	if err := agent.Do(ctx, "POST", api.Prefix+"/agents/node4/report", api.Report{}, nil); err != nil {
		t.Errorf("report for its own node: %v", err)
	}
	j := submit(t, env, spec("default", 1))
	for _, c := range []struct {
		what, method, path string
		body               any
	}{
		{"register another node", "POST", "/agents/node3/register", api.Registration{Node: model.Node{Name: "node3", Accelerators: 8, Model: "H100"}}},
		{"report for another node", "POST", "/agents/node3/report", api.Report{}},
		{"drain its own node", "POST", "/nodes/node4/drain", map[string]string{"reason": "mine"}},
		{"cancel a job", "POST", "/jobs/" + j.ID + "/cancel", nil},
		{"make a token for another node", "POST", "/tokens", api.TokenRequest{Node: "node3"}},
	} {
		err := agent.Do(ctx, c.method, api.Prefix+c.path, c.body, nil)
		var e *api.Error
		if !errors.As(err, &e) || (e.Status != http.StatusForbidden && e.Status != http.StatusNotFound) {
			t.Errorf("a node's token may %s: %v; want 403 or 404", c.what, err)
		}
	}
	member := env.User(t, "mo", store.Member{Project: "default", Role: store.RoleManager})
	if _, err := member.CreateToken(ctx, api.TokenRequest{Node: "node4"}); !strings.Contains(fmt.Sprint(err), "only operators and admins") {
		t.Errorf("a manager making a node's token: %v; want refused", err)
	}
}

func TestAgentsNeedAnOperator(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	env.Project(t, "p", "")
	member := env.User(t, "alice", store.Member{Project: "p", Role: store.RoleMember})
	err := member.Do(context.Background(), "POST", api.Prefix+"/agents/node1/register", api.Registration{Node: model.Node{Name: "node1"}}, nil)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeForbidden {
		t.Errorf("a member registering a node: %v; want forbidden", err)
	}
	status, body := rawDo(t, env, "POST", api.Prefix+"/agents/ghost/report", env.AdminToken, `{}`)
	if status != http.StatusNotFound || body.Field != "node" {
		t.Errorf("a report from an unregistered node: %d %+v; want 404 naming the node", status, body)
	}
	operator := env.User(t, "ops", store.Member{Role: store.RoleOperator})
	reg := api.Registration{Node: model.Node{Accelerators: 8, Model: "MI300X"}}
	err = operator.Do(context.Background(), "POST", api.Prefix+"/agents/node1/register", reg, nil)
	if !errors.As(err, &e) || e.Field != "node.partition" {
		t.Errorf("an MI300X node registering into the H100 partition: %v; want an error on node.partition", err)
	}
	reg.Node.Partition = "mi300x"
	if err := operator.Do(context.Background(), "POST", api.Prefix+"/agents/amd1/register", reg, nil); err != nil {
		t.Errorf("a new node in a new partition: %v", err)
	}
	n, err := env.Store.Node(context.Background(), "amd1")
	if err != nil || n.Partition != "mi300x" || n.Block == "" || n.Group == "" || n.State != model.NodeUp {
		t.Errorf("registered node %+v, %v; want it up in partition mi300x with a block and group", n, err)
	}
}

func TestHeartbeatsAreNotAudited(t *testing.T) {
	t.Parallel()
	env := agentEnv(t)
	a := connect(t, env, "node1", "")
	for range 3 {
		a.report(t, api.Report{})
	}
	var out api.Audit
	if err := env.Admin.Do(context.Background(), "GET", api.Prefix+"/audit", nil, &out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range out.Items {
		got = append(got, e.Action)
	}
	if diff := cmp.Diff([]string{"POST /api/v1/agents/node1/register"}, got); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}
