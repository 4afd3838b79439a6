package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

const wait = 15 * time.Second

// fakeServer speaks the server's side of the agent protocol: the test
// sets the orders, and reads the registrations and reports.
type fakeServer struct {
	t   *testing.T
	url string

	mu       sync.Mutex
	orders   api.Orders
	changed  chan struct{} // closed and replaced when orders change
	regs     int
	lastReg  api.Registration
	ended    []api.RunState
	reports  int
	health   string
	failNext int // answer this many reports with 503
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t, changed: make(chan struct{}), orders: api.Orders{Runs: []api.Run{}, HeartbeatMS: 50}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agents/{node}/register", func(w http.ResponseWriter, r *http.Request) {
		var reg api.Registration
		if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		f.regs++
		f.lastReg = reg
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(store.Node{Node: reg.Node})
	})
	mux.HandleFunc("GET /api/v1/agents/{node}/orders", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for {
			f.mu.Lock()
			o, ch := f.orders, f.changed
			f.mu.Unlock()
			o.Node = r.PathValue("node")
			if json.NewEncoder(w).Encode(o) != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /api/v1/agents/{node}/report", func(w http.ResponseWriter, r *http.Request) {
		var rep api.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failNext > 0 {
			f.failNext--
			http.Error(w, "down for a moment", 503)
			return
		}
		f.reports++
		f.health = rep.Health
		f.ended = append(f.ended, rep.Ended...)
		w.WriteHeader(204)
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

// set replaces the orders every stream sees.
func (f *fakeServer) set(rev int64, runs []api.Run, sigs ...api.SignalOrder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = api.Orders{Runs: runs, Signals: sigs, Rev: rev, HeartbeatMS: 50, LogKey: fakeLogKey}
	if runs == nil {
		f.orders.Runs = []api.Run{}
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitEnd waits for the report of the end of job's rank.
func (f *fakeServer) waitEnd(job string, rank int) api.RunState {
	f.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, e := range f.ended {
			if e.Job == job && e.Rank == rank {
				f.mu.Unlock()
				return e
			}
		}
		f.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	f.t.Fatalf("no end of job %s rank %d reported within %v", job, rank, wait)
	return api.RunState{}
}

func (f *fakeServer) endsOf(job string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.ended {
		if e.Job == job {
			n++
		}
	}
	return n
}

// startAgent runs an agent of 8 emulated H100s until the test ends (or
// stop is called); its runs are stopped with it.
func startAgent(t *testing.T, f *fakeServer, stateDir string) (a *Agent, stop func()) {
	t.Helper()
	return startAgentGrace(t, f, stateDir, 200*time.Millisecond)
}

// startAgentGrace is startAgent with the grace a stopped run gets before
// SIGKILL.
func startAgentGrace(t *testing.T, f *fakeServer, stateDir string, grace time.Duration) (a *Agent, stop func()) {
	t.Helper()
	a, err := New(Config{
		Server: f.url, Token: "t", StateDir: stateDir, Grace: grace, Address: "10.1.1.1", StopOnExit: true,
		Node: model.Node{Name: "n1", CPUs: 4}, Devices: h100(t, 8),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return a, stop
}

// h100 is n emulated H100s.
func h100(t *testing.T, n int) []accel.Device {
	t.Helper()
	devs, err := accel.Emulate(n, "H100")
	if err != nil {
		t.Fatal(err)
	}
	return devs
}

// job makes a run of a shell script on n1, rank rank of nodes.
func job(id string, epoch int64, script string, accels int, nodes ...string) api.Run {
	if len(nodes) == 0 {
		nodes = []string{"n1"}
	}
	rank := slices.Index(nodes, "n1")
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = "addr-" + n
	}
	return api.Run{
		Job:   store.Job{Job: model.Job{ID: id, Project: "p", Limit: 600}, Task: model.Task{Script: "#!/bin/sh\n" + script}, Epoch: epoch, State: model.JobRunning, Start: time.Now().Unix()},
		Epoch: epoch, Rank: rank, Nodes: nodes, Addresses: addrs, Accelerators: accels, Deadline: time.Now().Unix() + 600,
	}
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && strings.HasSuffix(string(b), "\n") {
			return string(b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s was not written within %v", path, wait)
	return ""
}

func TestARunGetsItsEnvironmentAndItsEndIsReported(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	r := job("7", 3, `echo "$NODE_RANK $WORLD_SIZE $MASTER_ADDR $CUDA_VISIBLE_DEVICES $USINE_JOB_ID $SLURM_JOB_ID $SLURM_PROCID"; exit 4`, 2, "n0", "n1")
	r.Job.Task.WorkDir = dir
	f.set(1, []api.Run{r})
	end := f.waitEnd("7", 1)
	if diff := cmp.Diff(api.RunState{Job: "7", Epoch: 3, Rank: 1, Ended: true, ExitCode: 4}, api.RunState{Job: end.Job, Epoch: end.Epoch, Rank: end.Rank, Ended: end.Ended, ExitCode: end.ExitCode, Signal: end.Signal}); diff != "" {
		t.Errorf("reported end (-want +got):\n%s", diff)
	}
	out := waitFile(t, filepath.Join(dir, "usine-7.1.out"))
	if want := "1 2 addr-n0 0,1 7 7 1\n"; out != want {
		t.Errorf("the script printed %q; want %q", out, want)
	}
}

func TestEachRunIsLaunchedOnceEvenAcrossRestarts(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	count := filepath.Join(dir, "count")
	r := job("1", 1, "echo x >> "+count+"\n", 1)
	r.Job.Task.WorkDir = dir
	f.set(1, []api.Run{r})
	_, stop := startAgent(t, f, state)
	f.waitEnd("1", 0)
	f.set(2, []api.Run{r}) // the same orders again, at a newer revision
	stop()
	// A new agent on the same state directory, with the run still ordered
	// (the server has not heard of its end yet).
	startAgent(t, f, state)
	f.set(3, []api.Run{r})
	r2 := job("2", 1, "echo done > "+filepath.Join(dir, "marker")+"\n", 1)
	r2.Job.Task.WorkDir = dir
	f.set(4, []api.Run{r, r2})
	waitFile(t, filepath.Join(dir, "marker"))
	f.waitEnd("2", 0)
	if b, _ := os.ReadFile(count); string(b) != "x\n" {
		t.Errorf("the run ran %d times; want once", strings.Count(string(b), "x"))
	}
}

func TestUnwantedRunsGetTheirSignalThenAreKilled(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	polite := job("1", 1, "trap 'echo got USR1 > "+filepath.Join(dir, "polite")+"; exit 0' USR1\necho up > "+filepath.Join(dir, "up1")+"\nwhile true; do sleep 0.05; done\n", 4)
	polite.Job.Task.Signal = "USR1"
	stubborn := job("2", 1, "trap '' TERM\necho up > "+filepath.Join(dir, "up2")+"\nwhile true; do sleep 0.05; done\n", 4)
	for _, r := range []*api.Run{&polite, &stubborn} {
		r.Job.Task.WorkDir = dir
	}
	f.set(1, []api.Run{polite, stubborn})
	waitFile(t, filepath.Join(dir, "up1"))
	waitFile(t, filepath.Join(dir, "up2"))
	f.set(2, nil)
	if got := waitFile(t, filepath.Join(dir, "polite")); got != "got USR1\n" {
		t.Errorf("the polite job wrote %q", got)
	}
	e1, e2 := f.waitEnd("1", 0), f.waitEnd("2", 0)
	if !e1.Killed || e1.ExitCode != 0 {
		t.Errorf("polite job's end %+v; want killed (stopped by the server) with its own exit code 0", e1)
	}
	if !e2.Killed || e2.Signal != "KILL" {
		t.Errorf("stubborn job's end %+v; want killed by KILL after the grace period", e2)
	}
}

func TestARunWaitsForTheDevicesAStoppingRunHolds(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	// A grace long enough for the trap on a loaded machine: the run must
	// end by itself, not by SIGKILL, for its file to tell the order.
	startAgentGrace(t, f, filepath.Join(dir, "state"), 10*time.Second)
	slow := job("1", 1, "trap 'sleep 0.1; echo > "+filepath.Join(dir, "stopped")+"; exit 0' TERM\necho up > "+filepath.Join(dir, "up")+"\nwhile true; do sleep 0.05; done\n", 8)
	slow.Job.Task.WorkDir = dir
	f.set(1, []api.Run{slow})
	waitFile(t, filepath.Join(dir, "up"))
	next := job("2", 1, "test -e "+filepath.Join(dir, "stopped")+" && echo $CUDA_VISIBLE_DEVICES > "+filepath.Join(dir, "devs")+"\n", 8)
	next.Job.Task.WorkDir = dir
	f.set(2, []api.Run{next})
	if end := f.waitEnd("2", 0); end.ExitCode != 0 {
		t.Fatalf("the next run started before the stopping one had ended (exit %d)", end.ExitCode)
	}
	if got := waitFile(t, filepath.Join(dir, "devs")); got != "0,1,2,3,4,5,6,7\n" {
		t.Errorf("the next run saw devices %q; want all 8", got)
	}
}

func TestTimeLimitAndSignalOrders(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	sigs := filepath.Join(dir, "sigs")
	r := job("1", 1, "trap 'echo USR2 >> "+sigs+"' USR2\necho up > "+filepath.Join(dir, "up")+"\nwhile true; do sleep 0.05; done\n", 1)
	r.Job.Task.WorkDir = dir
	r.Deadline = time.Now().Unix() + 2
	f.set(1, []api.Run{r})
	waitFile(t, filepath.Join(dir, "up"))
	order := api.SignalOrder{Job: "1", Epoch: 1, Signal: "USR2", Seq: 42}
	f.set(2, []api.Run{r}, order)
	waitFile(t, sigs)
	f.set(3, []api.Run{r}, order) // the same order again: carried out once
	end := f.waitEnd("1", 0)
	if !end.TimedOut || end.Signal != "TERM" {
		t.Errorf("end %+v; want timed out by TERM", end)
	}
	if b, _ := os.ReadFile(sigs); string(b) != "USR2\n" {
		t.Errorf("signals received %q; want USR2 once", b)
	}
}

func TestOrdersFromALaggingViewAreIgnored(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	r := job("1", 1, "echo up > "+filepath.Join(dir, "up")+"\nwhile true; do sleep 0.05; done\n", 1)
	r.Job.Task.WorkDir = dir
	f.set(10, []api.Run{r})
	waitFile(t, filepath.Join(dir, "up"))
	f.set(9, nil) // an older view that has not seen the start
	marker := job("2", 1, "echo x > "+filepath.Join(dir, "marker")+"\n", 1)
	marker.Job.Task.WorkDir = dir
	f.set(11, []api.Run{r, marker})
	waitFile(t, filepath.Join(dir, "marker"))
	if n := f.endsOf("1"); n != 0 {
		t.Errorf("orders at revision 9 stopped a run that revision 10 started")
	}
}

func TestEndsAreReportedUntilAcknowledged(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.failNext = 3
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	r := job("1", 1, "exit 0\n", 0)
	r.Job.Task.WorkDir = dir
	f.set(1, []api.Run{r})
	f.waitEnd("1", 0)
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		n := f.reports
		f.mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := f.endsOf("1"); n != 1 {
		t.Errorf("the end was acknowledged %d times; want once (sent until acknowledged, then no more)", n)
	}
}

// fakeLogKey is the fake server's log key for every node.
const fakeLogKey = "node-log-key"

// An agent serves a run's output to whoever shows a ticket the server
// signed for that run and rank with the node's key, and to no one else.
func TestLogsAreServedToTicketHoldersOnly(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	a, _ := startAgent(t, f, filepath.Join(dir, "state"))
	r := job("5", 1, "echo hello; echo world\n", 0)
	r.Job.Task.WorkDir = dir
	f.set(1, []api.Run{r})
	f.waitEnd("5", 0)
	hs := httptest.NewServer(a.Handler())
	defer hs.Close()
	exp := time.Now().Add(time.Minute).Unix()
	ticket := api.TicketScheme + api.LogTicket(fakeLogKey, "5", 1, 0, exp)
	for _, tc := range []struct {
		name, auth, query string
		wantStatus        int
		wantBody          string
	}{
		{"a ticket gets the whole output", ticket, "epoch=1&rank=0", 200, "hello\nworld\n"},
		{"from an offset", ticket, "epoch=1&rank=0&offset=6", 200, "world\n"},
		{"following an ended run stops at its end", ticket, "epoch=1&rank=0&follow=1", 200, "hello\nworld\n"},
		{"a user's token", "Bearer usine_secret", "epoch=1&rank=0", 401, ""},
		{"no credentials", "", "epoch=1&rank=0", 401, ""},
		{"a ticket for another epoch", ticket, "epoch=2&rank=0", 403, ""},
		{"a ticket for another rank", ticket, "epoch=1&rank=1", 403, ""},
		{"a ticket signed with another key", api.TicketScheme + api.LogTicket("other", "5", 1, 0, exp), "epoch=1&rank=0", 403, ""},
		{"an expired ticket", api.TicketScheme + api.LogTicket(fakeLogKey, "5", 1, 0, time.Now().Add(-5*time.Minute).Unix()), "epoch=1&rank=0", 403, ""},
		{"a ticket for a run not here", api.TicketScheme + api.LogTicket(fakeLogKey, "5", 2, 0, exp), "epoch=2&rank=0", 404, ""},
	} {
		req, _ := http.NewRequest("GET", hs.URL+"/logs/5?"+tc.query, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || (tc.wantBody != "" && b.String() != tc.wantBody) {
			t.Errorf("%s: %d %q; want %d %q", tc.name, resp.StatusCode, b.String(), tc.wantStatus, tc.wantBody)
		}
	}
}

func TestARestartedAgentAdoptsItsRunsAndReportsTheirExit(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	gate := filepath.Join(dir, "gate")
	r := job("1", 1, "echo up > "+filepath.Join(dir, "up")+"\nwhile [ ! -e "+gate+" ]; do sleep 0.02; done\nexit 7\n", 2)
	r.Job.Task.WorkDir = dir
	f.set(1, []api.Run{r})
	a, err := New(Config{Server: f.url, Token: "t", StateDir: state, Address: "x", Node: model.Node{Name: "n1"}, Devices: h100(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	waitFile(t, filepath.Join(dir, "up"))
	cancel() // the agent goes away; its run goes on
	<-done
	startAgent(t, f, state)
	// While adopted, the run keeps its devices: a new run gets others.
	other := job("2", 1, "echo $CUDA_VISIBLE_DEVICES > "+filepath.Join(dir, "devs")+"\n", 6)
	other.Job.Task.WorkDir = dir
	f.set(2, []api.Run{r, other})
	if got := waitFile(t, filepath.Join(dir, "devs")); got != "2,3,4,5,6,7\n" {
		t.Errorf("a new run next to the adopted one got devices %q; want 2-7", got)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	end := f.waitEnd("1", 0)
	if end.ExitCode != 7 || end.Error != "" {
		t.Errorf("the adopted run's end %+v; want exit code 7, as the job exited", end)
	}
}

func TestHealthChecksAskForADrainUntilTheyPassAgain(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.set(1, nil)
	var visible atomic.Int64
	visible.Store(8)
	a, err := New(Config{Server: f.url, Token: "t", StateDir: t.TempDir(), Address: "x", Node: model.Node{Name: "n1"}, Devices: h100(t, 8),
		HealthEvery: 10 * time.Millisecond, StopOnExit: true,
		Accelerators: func(context.Context) (int, error) { return int(visible.Load()), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	health := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for {
			f.mu.Lock()
			h, n := f.health, f.reports
			f.mu.Unlock()
			if n > 0 && cond(h) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health %q after %d reports; want %s", h, n, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	health("healthy", func(h string) bool { return h == "" })
	visible.Store(7)
	health("an accelerator lost", func(h string) bool { return h == "accelerator lost: only 7 of 8 are visible" })
	visible.Store(8)
	health("healthy again", func(h string) bool { return h == "" })
}

func TestAFullDiskAsksForADrain(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.set(1, nil)
	state := t.TempDir()
	// Something in use on the state directory's file system, whatever it
	// is: a threshold of a billionth is then crossed.
	if err := os.WriteFile(filepath.Join(state, "ballast"), make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Server: f.url, Token: "t", StateDir: state, Address: "x", Node: model.Node{Name: "n1"}, DiskFull: 1e-9, StopOnExit: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		h := f.health
		f.mu.Unlock()
		if strings.HasPrefix(h, "disk full: the file system of "+state+" is ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health %q; want a full disk", h)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDiskFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		blocks, avail uint64
		want          string
	}{
		{"half used", 100, 50, ""},
		{"just under", 1000, 21, ""},
		{"at the threshold", 100, 2, "disk full: the file system of /s is 98.0% used"},
		{"no space left", 100, 0, "disk full: the file system of /s is 100.0% used"},
		{"a file system that says nothing", 0, 0, ""},
	} {
		if got := diskFull("/s", tc.blocks, tc.avail, 0.98); got != tc.want {
			t.Errorf("%s: %q; want %q", tc.name, got, tc.want)
		}
	}
}

func TestOutputPatternsAreExpandedPerRank(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	startAgent(t, f, filepath.Join(dir, "state"))
	r := job("9", 1, "echo out; echo err >&2\n", 0, "n0", "n1")
	r.Job.Name, r.Job.User, r.Job.ArrayID, r.Job.ArrayIndex = "train", "ada", "7", 2
	r.Job.Task.WorkDir = dir
	r.Job.Task.Stdout = "%x-%j-%A_%a-%u-%N-%n-100%%.out"
	r.Job.Task.Stderr = filepath.Join(dir, "%j.%t.err")
	f.set(1, []api.Run{r})
	f.waitEnd("9", 1)
	if got := waitFile(t, filepath.Join(dir, "train-9-7_2-ada-n1-1-100%.out")); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := waitFile(t, filepath.Join(dir, "9.1.err")); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
}

// TestAStreamedOutputIsTheAgentsAndGoesWithTheRun: a run whose output is
// only streamed (srun outside a job) writes it in the agent's own log
// directory, not in the job's, and the file goes when the run's record
// is forgotten.
func TestAStreamedOutputIsTheAgentsAndGoesWithTheRun(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	a, _ := startAgent(t, f, state)
	r := job("11", 1, "echo streamed\n", 0)
	r.Job.Task.WorkDir, r.Job.Task.StreamOutput = dir, true
	f.set(1, []api.Run{r})
	f.waitEnd("11", 0)
	out := filepath.Join(state, "logs", "stream-11.1.0.out")
	if got := waitFile(t, out); got != "streamed\n" {
		t.Errorf("the streamed output holds %q; want the job's line", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.out")); len(left) > 0 {
		t.Errorf("a streamed output left files in the job's directory: %v", left)
	}
	f.set(2, nil) // the orders forget the run
	k := runKey{"11", 1, 0}
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		a.mu.Lock()
		reported := a.runs[k] != nil && a.runs[k].rec.Reported && len(a.orders.Runs) == 0
		if reported { // ended long ago, as forget sees it
			a.runs[k].rec.End = millis(time.Now().Add(-2 * keepEnded))
		}
		a.mu.Unlock()
		if reported {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run's end was never acknowledged, or the orders still name it")
		}
	}
	a.forget()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the run was forgotten its streamed output is still there (%v)", err)
	}
}
