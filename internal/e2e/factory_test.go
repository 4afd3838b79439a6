package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/accel"
	"github.com/usine-project/usine/internal/agent"
	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// wait bounds every condition a test waits for. Generous: the machine is
// two shared cores; conditions usually hold within milliseconds.
const wait = 30 * time.Second

// Timings of the factories under test: agents report every 100 ms, a node
// silent for 2 s is lost, stopped jobs get 500 ms before SIGKILL.
const (
	heartbeat   = 100 * time.Millisecond
	nodeTimeout = 2 * time.Second
	grace       = 500 * time.Millisecond
)

// factory is a whole usine on loopback: a server over a SQLite store in a
// temporary directory, and emulated nodes of 8 H100 each, their agents in
// this process.
type factory struct {
	t          testing.TB
	dir        string
	addr       string // the API's address, kept across server restarts
	url        string
	adminToken string
	agentToken string
	admin      *api.Client

	spares *launch.Spares // one spare supervisor for every agent

	mu     sync.Mutex
	srv    *server.Server
	st     store.Store
	stop   context.CancelFunc
	done   chan struct{}
	agents map[string]*node
}

// node is one emulated node and its running agent.
type node struct {
	name, address string
	agent         *agent.Agent
	logs          *httptest.Server
	stop          context.CancelFunc
	done          chan struct{}
}

// newFactory starts a server and n nodes, node1…nodeN, two to a block.
func newFactory(t testing.TB, n int) *factory {
	t.Helper()
	f := &factory{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", agents: map[string]*node{}}
	spares, err := launch.NewSpares(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.spares = spares
	t.Cleanup(func() { _ = spares.Close() })
	f.startServer()
	t.Cleanup(func() {
		f.mu.Lock()
		names := make([]string, 0, len(f.agents))
		for name := range f.agents {
			names = append(names, name)
		}
		f.mu.Unlock()
		for _, name := range names {
			f.stopAgent(name, true)
		}
		f.stopServer()
	})
	ctx := context.Background()
	if err := f.st.PutMember(ctx, store.Member{User: "agents", Role: store.RoleOperator}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := f.srv.IssueToken(ctx, "agents", "e2e", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.agentToken = secret
	for i := range n {
		f.startAgent(fmt.Sprintf("node%d", i+1))
	}
	for i := range n {
		f.waitNode(fmt.Sprintf("node%d", i+1), func(n api.NodeView) bool { return n.State == model.NodeUp })
	}
	return f
}

// startServer opens the store and serves the API, on the same address as
// before when it restarts.
func (f *factory) startServer() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(f.dir, "usine.db"))
	if err != nil {
		cancel()
		f.t.Fatalf("open store: %v", err)
	}
	srv := server.New(st, server.Config{NodeTimeout: nodeTimeout, AgentHeartbeat: heartbeat, BackfillInterval: time.Second})
	if f.adminToken == "" {
		if f.adminToken, err = srv.EnsureAdmin(ctx); err != nil {
			f.t.Fatalf("admin: %v", err)
		}
	}
	var l net.Listener
	for deadline := time.Now().Add(wait); ; {
		if l, err = net.Listen("tcp", f.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener is still closing
	}
	if err != nil {
		cancel()
		f.t.Fatalf("listen: %v", err)
	}
	f.addr = l.Addr().String()
	f.url = "http://" + f.addr
	f.admin = &api.Client{BaseURL: f.url, Token: f.adminToken}
	done := make(chan struct{})
	go func() {
		loop := make(chan struct{})
		go func() { _ = srv.Run(ctx); close(loop) }()
		_ = srv.Serve(ctx, l, "", "")
		<-loop
		_ = st.Close()
		close(done)
	}()
	f.mu.Lock()
	f.srv, f.st, f.stop, f.done = srv, st, cancel, done
	f.mu.Unlock()
}

// stopServer stops the server as a crash would look to the agents: their
// connections break at once.
func (f *factory) stopServer() {
	f.mu.Lock()
	stop, done := f.stop, f.done
	f.stop = nil
	f.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

// startAgent starts the agent of an emulated 8×H100 node; node i gets
// address 127.0.0.i (all loopback) so that tests can tell ranks apart.
func (f *factory) startAgent(name string) *node {
	f.t.Helper()
	return f.startAgentWith(name, nil)
}

// startAgentWith is startAgent with changes to the agent's configuration.
func (f *factory) startAgentWith(name string, change func(*agent.Config)) *node {
	f.t.Helper()
	var i int
	fmt.Sscanf(name, "node%d", &i)
	n := &node{name: name, address: fmt.Sprintf("127.0.0.%d", i+1)}
	mux := http.NewServeMux()
	n.logs = httptest.NewServer(mux)
	cfg := agent.Config{
		Server: f.url, Token: f.agentToken, Address: n.address, AgentURL: n.logs.URL,
		Node:     model.Node{Name: name, CPUs: 16, MemoryMiB: 65536, Partition: "h100", Block: fmt.Sprintf("b%d", (i+1)/2), Group: "g1"},
		Devices:  emulated(f.t, 8, "H100"),
		StateDir: filepath.Join(f.dir, "agents", name), Grace: grace, Heartbeat: heartbeat, Spares: f.spares,
	}
	if change != nil {
		change(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	mux.Handle("/", a.Handler())
	n.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.done = cancel, make(chan struct{})
	go func() { _ = a.Run(ctx); close(n.done) }()
	f.mu.Lock()
	f.agents[name] = n
	f.mu.Unlock()
	return n
}

// emulated is n emulated accelerators of a model.
func emulated(t testing.TB, n int, modelName string) []accel.Device {
	t.Helper()
	devs, err := accel.Emulate(n, modelName)
	if err != nil {
		t.Fatal(err)
	}
	return devs
}

// stopAgent stops a node's agent; with kill, its runs are killed too (the
// node is gone), else they keep running as after an agent crash.
func (f *factory) stopAgent(name string, kill bool) {
	f.mu.Lock()
	n := f.agents[name]
	delete(f.agents, name)
	f.mu.Unlock()
	if n == nil {
		return
	}
	n.stop()
	<-n.done
	if kill {
		n.agent.StopAll()
	}
	n.logs.Close()
}

// job is a spec running script in a fresh working directory.
func (f *factory) job(script string) api.JobSpec {
	return api.JobSpec{Project: "default", Limit: 600, Task: model.Task{Script: "#!/bin/sh\n" + script, WorkDir: f.t.TempDir()}}
}

func (f *factory) submit(spec api.JobSpec) []store.Job {
	f.t.Helper()
	jobs, err := f.admin.Submit(context.Background(), spec)
	if err != nil {
		f.t.Fatalf("submit: %v", err)
	}
	return jobs
}

// waitJob polls a job through the API until cond holds.
func (f *factory) waitJob(id, what string, cond func(store.Job) bool) store.Job {
	f.t.Helper()
	var last store.Job
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		j, err := f.admin.Job(context.Background(), id)
		if err == nil {
			if cond(j) {
				return j
			}
			last = j
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("job %s is not %s within %v; last seen %s (%s) epoch %d exit %d on %v", id, what, wait, last.State, last.Reason, last.Epoch, last.ExitCode, last.Alloc)
	return last
}

func (f *factory) waitNode(name string, cond func(api.NodeView) bool) api.NodeView {
	f.t.Helper()
	var last api.NodeView
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		var n api.NodeView
		if err := f.admin.Do(context.Background(), "GET", api.Prefix+"/nodes/"+name, nil, &n); err == nil {
			if cond(n) {
				return n
			}
			last = n
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("node %s: condition not met within %v; last %+v", name, wait, last)
	return last
}

func is(st model.JobState) func(store.Job) bool {
	return func(j store.Job) bool { return j.State == st }
}

func ended(j store.Job) bool { return j.State.Final() }

// waitFile waits for a file to hold a whole line and returns its content.
func waitFile(t testing.TB, path string) string {
	t.Helper()
	return waitLines(t, path, 1)
}

// waitLines waits for a file to hold n whole lines and returns its content.
func waitLines(t testing.TB, path string, n int) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Count(string(b), "\n") >= n {
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s was not written within %v", path, wait)
	return ""
}

// eventKinds counts a job's events by kind, once they include every kind
// in want, as many times as it is listed there (events are written just
// after the change they record).
func (f *factory) eventKinds(id string, want ...string) map[string]int {
	f.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ev, err := f.admin.Events(context.Background(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		m := map[string]int{}
		for _, e := range ev {
			m[e.Kind]++
		}
		need := map[string]int{}
		for _, k := range want {
			need[k]++
		}
		complete := true
		for k, n := range need {
			complete = complete && m[k] >= n
		}
		if complete || time.Now().After(deadline) {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logOf reads a job's output through the server, as usine logs does.
func (f *factory) logOf(id string, query string) (string, error) {
	req, _ := http.NewRequest("GET", f.url+api.Prefix+"/jobs/"+id+"/log?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+f.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", errors.New(resp.Status + ": " + string(b))
	}
	return string(b), err
}
