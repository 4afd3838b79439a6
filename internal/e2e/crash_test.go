package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/pgtest"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// The crash test: the real usine server binary, killed with SIGKILL at
// random moments of a submit storm and restarted on the same store, 20
// times. Clients record every submit they send (under a name no other
// submit has) and every job ID acknowledged; fake agents on the four
// declared nodes take every run the server orders, record it, and report
// it ended a few milliseconds later, so that jobs keep starting across the
// kills. Then the store must hold every acknowledged job once, nothing
// from a submit never sent, each submit all or nothing, and no job started
// twice: one started event per epoch, epochs of at most 1 (nothing here
// requeues or preempts), one launch per job at the agents, and never more
// accelerators ordered on a node than it has.

// kills is how many times the storm's server is killed.
const kills = 20

func TestSIGKILLDuringASubmitStorm(t *testing.T) {
	t.Parallel()
	bin := buildUsine(t)
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		crashStorm(t, bin, "")
	})
	t.Run("postgres", func(t *testing.T) {
		base := pgtest.Server(t)
		t.Parallel()
		crashStorm(t, bin, pgtest.Fresh(t, base))
	})
}

// storm is what the clients and fake agents saw.
type storm struct {
	mu       sync.Mutex
	sent     map[string]int      // submit name → jobs it asked for
	acked    map[string][]string // submit name → IDs acknowledged
	unknown  int                 // submits whose answer never came
	launched map[string]map[int64]bool
	runs     int // (job, epoch, rank) launches
	errs     []string
}

func (s *storm) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func crashStorm(t *testing.T, bin, storeURL string) {
	srv := newServerProc(t, bin, "crash", storeURL)
	url := srv.start()
	admin := srv.admin()
	var cur atomic.Pointer[string]
	cur.Store(&url)

	ctx := context.Background()
	nodes, err := admin.Nodes(ctx)
	if err != nil || len(nodes) == 0 {
		t.Fatalf("nodes of the declared cluster: %v, %v", nodes, err)
	}

	st := &storm{sent: map[string]int{}, acked: map[string][]string{}, launched: map[string]map[int64]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			submitter(st, c, &cur, srv.token, hc, stop)
		}()
	}
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fakeAgent(st, n.Name, n.Accelerators, &cur, srv.token, stop)
		}()
	}

	// Kill at random moments: 50 to 500 ms into each life, so some kills
	// land during the start-up, the first passes, or a burst of submits.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range kills {
		time.Sleep(time.Duration(50+rng.IntN(450)) * time.Millisecond)
		srv.kill()
		if i < kills-1 {
			u := srv.start()
			cur.Store(&u)
		}
	}
	// A last life, at least until a job has run to its end (on a loaded
	// machine the short lives may not have got that far); then the final
	// kill, in the middle of the storm still.
	u := srv.start()
	cur.Store(&u)
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		done, err := srv.admin().Jobs(ctx, api.JobQuery{States: []string{string(model.JobCompleted)}, Limit: 1})
		if err == nil && len(done.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job completed within %v of the last start (%v)", wait, err)
		}
	}
	close(stop)
	srv.kill()
	wg.Wait()

	checkStorm(t, st, srv.storeURL)
}

// submitter sends submits until stop: one job, an array of 2 to 4 or a
// batch of two, each submit named uniquely, recording what was sent and what was acknowledged.
func submitter(st *storm, c int, cur *atomic.Pointer[string], token string, hc *http.Client, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		name := fmt.Sprintf("c%d-%d", c, seq)
		spec := api.JobSpec{Name: name, Project: "default", Accelerators: 1 + rng.IntN(4), Limit: 600,
			Task: model.Task{Script: "#!/bin/sh\ntrue\n"}}
		specs := []api.JobSpec{spec}
		n := 1
		switch rng.IntN(6) {
		case 0, 1: // an array
			n = 2 + rng.IntN(3)
			specs[0].Array = fmt.Sprintf("0-%d", n-1)
		case 2: // a batch of two, one transaction
			n = 2
			specs = append(specs, spec)
		}
		st.mu.Lock()
		st.sent[name] = n
		st.mu.Unlock()
		cl := &api.Client{BaseURL: *cur.Load(), Token: token, HTTP: hc}
		jobs, err := cl.Submit(context.Background(), specs...)
		var apiErr *api.Error
		switch {
		case err == nil:
			ids := make([]string, len(jobs))
			for i, j := range jobs {
				ids[i] = j.ID
			}
			st.mu.Lock()
			st.acked[name] = ids
			st.mu.Unlock()
			if len(jobs) != n {
				st.fail("submit %s acknowledged %d jobs; it asked for %d", name, len(jobs), n)
			}
		case errors.As(err, &apiErr) && apiErr.Status/100 == 4:
			st.fail("submit %s refused: %v", name, err) // the test's own mistake
			return
		default: // the server died under it, or is not up yet
			st.mu.Lock()
			st.unknown++
			st.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// fakeAgent holds node's orders stream, reconnecting across the server's
// lives; it records each run once and reports it ended 0 to 50 ms later.
func fakeAgent(st *storm, node string, capacity int, cur *atomic.Pointer[string], token string, stop chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	var mu sync.Mutex
	seen := map[api.RunState]bool{}
	var due []api.RunState // ends not yet acknowledged
	var dueAt []time.Time
	hc := &http.Client{Timeout: 5 * time.Second}

	reporterDone := make(chan struct{})
	go func() { // reports ends (and serves as the heartbeat)
		defer close(reporterDone)
		for ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			var ended []api.RunState
			now := time.Now()
			for i, r := range due {
				if now.After(dueAt[i]) {
					ended = append(ended, r)
				}
			}
			mu.Unlock()
			cl := &api.Client{BaseURL: *cur.Load(), Token: token, HTTP: hc}
			if err := cl.Do(ctx, "POST", api.Prefix+"/agents/"+node+"/report", api.Report{Ended: ended}, nil); err != nil {
				var apiErr *api.Error
				if errors.As(err, &apiErr) && apiErr.Status/100 == 4 {
					st.fail("report of %s refused: %v", node, err)
				}
				continue
			}
			mu.Lock()
			for _, r := range ended {
				for i := range due {
					if due[i] == r {
						due, dueAt = append(due[:i], due[i+1:]...), append(dueAt[:i], dueAt[i+1:]...)
						break
					}
				}
			}
			mu.Unlock()
		}
	}()

	stream := &http.Client{} // no timeout: the stream lasts
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", *cur.Load()+api.Prefix+"/agents/"+node+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := stream.Do(req)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			st.fail("orders of %s: HTTP %d", node, resp.StatusCode)
			resp.Body.Close()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		dec := json.NewDecoder(bufio.NewReader(resp.Body))
		for {
			var o api.Orders
			if err := dec.Decode(&o); err != nil {
				break // the server died, or the test ends
			}
			held := 0
			for _, r := range o.Runs {
				held += r.Accelerators
				key := api.RunState{Job: r.Job.ID, Epoch: r.Epoch, Rank: r.Rank}
				mu.Lock()
				fresh := !seen[key]
				if fresh {
					seen[key] = true
					end := key
					end.Ended, end.End = true, time.Now().Unix()
					due, dueAt = append(due, end), append(dueAt, time.Now().Add(time.Duration(rand.IntN(50))*time.Millisecond))
				}
				mu.Unlock()
				if fresh {
					st.mu.Lock()
					if st.launched[r.Job.ID] == nil {
						st.launched[r.Job.ID] = map[int64]bool{}
					}
					st.launched[r.Job.ID][r.Epoch] = true
					st.runs++
					st.mu.Unlock()
				}
			}
			if held > capacity {
				st.fail("node %s was ordered to run %d accelerators' worth of jobs; it has %d", node, held, capacity)
			}
		}
		resp.Body.Close()
	}
	<-reporterDone
}

// checkStorm opens the store the server left and checks it against what
// the clients and agents saw.
func checkStorm(t *testing.T, st *storm, storeURL string) {
	t.Helper()
	for _, e := range st.errs {
		t.Error(e)
	}
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, storeURL)
	if err != nil {
		t.Fatalf("reopen the store after the last kill: %v", err)
	}
	defer s.Close()
	var all []store.Job
	for after := ""; ; {
		page, err := s.Jobs(ctx, store.JobFilter{After: after, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 5000 {
			break
		}
		after = page[len(page)-1].ID
	}

	byName := map[string][]string{}
	ids := map[string]bool{}
	started, completed := 0, 0
	use := map[string]int{} // accelerators held by running jobs, per node
	for _, j := range all {
		if ids[j.ID] {
			t.Errorf("job %s is in the store twice", j.ID)
		}
		ids[j.ID] = true
		byName[j.Name] = append(byName[j.Name], j.ID)
		if _, ok := st.sent[j.Name]; !ok {
			t.Errorf("job %s (%q) comes from no submit the clients sent", j.ID, j.Name)
		}
		if j.Epoch > 1 {
			t.Errorf("job %s has epoch %d: it was started %d times", j.ID, j.Epoch, j.Epoch)
		}
		evs, err := s.Events(ctx, j.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		starts := 0
		for _, e := range evs {
			if e.Kind == "started" {
				starts++
			}
		}
		if int64(starts) != j.Epoch {
			t.Errorf("job %s has %d started events and epoch %d; want one per epoch", j.ID, starts, j.Epoch)
		}
		if ep := st.launched[j.ID]; len(ep) > 1 || (len(ep) == 1 && !ep[j.Epoch]) {
			t.Errorf("job %s (epoch %d in the store) was launched at the agents with epochs %v", j.ID, j.Epoch, ep)
		}
		if j.Epoch > 0 {
			started++
		}
		if j.State == model.JobCompleted {
			completed++
		}
		if j.State == model.JobRunning {
			for _, a := range j.Alloc {
				use[a.Node] += a.Accelerators
			}
		}
	}
	for id := range st.launched {
		if !ids[id] {
			t.Errorf("the agents launched job %s, which the store does not hold", id)
		}
	}
	nodes, err := s.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if use[n.Name] > n.Accelerators {
			t.Errorf("node %s: its running jobs hold %d accelerators; it has %d", n.Name, use[n.Name], n.Accelerators)
		}
	}
	committedUnanswered := 0
	for name, want := range st.sent {
		got := byName[name]
		acked, ok := st.acked[name]
		if !ok && len(got) == want {
			committedUnanswered++
		}
		switch {
		case ok && !sameIDs(got, acked):
			t.Errorf("submit %s was acknowledged with jobs %v; the store holds %v", name, acked, got)
		case !ok && len(got) != 0 && len(got) != want:
			t.Errorf("submit %s (no answer) left %d of its %d jobs: a submit is all or nothing", name, len(got), want)
		}
	}

	ackedJobs := 0
	for _, a := range st.acked {
		ackedJobs += len(a)
	}
	t.Logf("%s, %d kills: %d submits sent, %d acknowledged (%d jobs), %d unanswered (%d of them committed all the same); %d jobs in the store, %d started, %d completed, %d runs launched at the agents",
		t.Name(), kills, len(st.sent), len(st.acked), ackedJobs, st.unknown, committedUnanswered, len(all), started, completed, st.runs)
	// The storm must have been one: submits acknowledged in most lives,
	// jobs started and ended across the kills.
	if len(st.acked) < kills || started == 0 || completed == 0 || st.unknown == 0 {
		t.Errorf("too quiet a storm to prove anything: %d submits acknowledged, %d unanswered, %d jobs started, %d completed",
			len(st.acked), st.unknown, started, completed)
	}
}

func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// serverProc is `usine server` as a child process, started again on the
// same store after each kill.
type serverProc struct {
	t        *testing.T
	bin      string
	name     string
	dataDir  string
	storeURL string // as the test opens it
	args     []string
	out      *syncBuffer // what every life printed
	cmd      *exec.Cmd
	exited   chan error
	url      string
	token    string // the admin token the first life made
}

// newServerProc prepares a server on storeURL ("" = SQLite in its data
// directory) declaring the laptop cluster, named name in the election.
func newServerProc(t *testing.T, bin, name, storeURL string) *serverProc {
	p := &serverProc{t: t, bin: bin, name: name, dataDir: t.TempDir(), out: &syncBuffer{}}
	p.args = []string{"server", "--data", p.dataDir, "--listen", "127.0.0.1:0", "--cluster", "laptop",
		"--name", name, "--log-format", "text", "--rate-limit", "0"}
	p.storeURL = storeURL
	if storeURL == "" {
		p.storeURL = "sqlite:" + filepath.Join(p.dataDir, "usine.db")
	} else {
		p.args = append(p.args, "--store", storeURL)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			out := p.out.String()
			if len(out) > 8000 {
				out = "…" + out[len(out)-8000:]
			}
			t.Logf("usine server %s said:\n%s", name, out)
		}
	})
	return p
}

// urlWriter passes a child's output on and catches the line that says
// where it serves.
type urlWriter struct {
	out  *syncBuffer
	mu   sync.Mutex
	line []byte
	url  chan string
}

func (w *urlWriter) Write(b []byte) (int, error) {
	w.out.Write(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.line = append(w.line, b...)
	for {
		i := strings.IndexByte(string(w.line), '\n')
		if i < 0 {
			return len(b), nil
		}
		if u, ok := strings.CutPrefix(string(w.line[:i]), "usine server on "); ok {
			select {
			case w.url <- u:
			default:
			}
		}
		w.line = w.line[i+1:]
	}
}

// start starts a life of the server and returns its URL once it listens.
func (p *serverProc) start() string {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	w := &urlWriter{out: p.out, url: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = w, p.out
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start usine server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case p.url = <-w.url:
	case err := <-exited:
		p.t.Fatalf("usine server %s exited before serving: %v\n%s", p.name, err, p.out.String())
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		p.t.Fatalf("usine server %s did not say where it serves within %v\n%s", p.name, wait, p.out.String())
	}
	p.cmd, p.exited = cmd, exited
	if p.token == "" {
		b, err := os.ReadFile(filepath.Join(p.dataDir, "admin.token"))
		if err != nil {
			p.t.Fatalf("the first start wrote no admin token: %v", err)
		}
		p.token = strings.TrimSpace(string(b))
	}
	return p.url
}

// kill ends the current life with SIGKILL and waits for it to be gone.
func (p *serverProc) kill() {
	if p.cmd == nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("kill usine server %s: %v", p.name, err)
	}
	<-p.exited
	p.cmd = nil
}

// admin is an API client of the current life, as the admin.
func (p *serverProc) admin() *api.Client { return &api.Client{BaseURL: p.url, Token: p.token} }
