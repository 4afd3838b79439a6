package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// syncBuffer is a bytes.Buffer that a command and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startUp runs usine up until the returned stop is called, and waits for
// its banner; it returns the API URL and token the banner shows.
func startUp(t *testing.T, args ...string) (url, token string, out *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	var errs syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, append([]string{"usine", "up"}, args...), out, &errs) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	re := regexp.MustCompile(`export USINE_SERVER=(\S+) USINE_TOKEN=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1], m[2], out, stop
		}
		select {
		case err := <-done:
			t.Fatalf("usine up stopped: %v\n%s\n%s", err, out.String(), errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("usine up printed no banner within 30s:\n%s\n%s", out.String(), errs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpRunsAFactoryAndResumesIt(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	work := t.TempDir()
	ctx := context.Background()
	url, token, out, stop := startUp(t, "--emulate", "2x4xH100", "--data", data, "--listen", "127.0.0.1:0", "--grace", "500ms", "--log-format", "text")
	for _, want := range []string{"2 node(s) × 4 H100 (emulated)", "usine submit -N 2", "admin.token"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, out.String())
		}
	}
	c := &api.Client{BaseURL: url, Token: token}
	gang := api.JobSpec{Project: "default", Nodes: 2, AcceleratorsPerNode: 4, Limit: 60,
		Task: model.Task{WorkDir: work, Script: "#!/bin/sh\necho rank $NODE_RANK of $WORLD_SIZE on $USINE_NODE\n"}}
	jobs, err := c.Submit(ctx, gang)
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, c, jobs[0].ID, func(j store.Job) bool { return j.State.Final() })
	if done.State != model.JobCompleted {
		t.Fatalf("the gang ended %s (%s)", done.State, done.Reason)
	}
	long := api.JobSpec{Project: "default", Accelerators: 1, Limit: 60,
		Task: model.Task{WorkDir: work, Script: "#!/bin/sh\necho $USINE_EPOCH >> long\nwhile [ ! -e gate ]; do sleep 0.02; done\n"}}
	if jobs, err = c.Submit(ctx, long); err != nil {
		t.Fatal(err)
	}
	longID := jobs[0].ID
	waitJob(t, c, longID, func(j store.Job) bool { return j.State == model.JobRunning })
	if err := stop(); err != nil {
		t.Fatalf("usine up after Ctrl-C: %v", err)
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("usine up did not say it stopped:\n%s", out.String())
	}

	// The same data directory, no flags: the same factory.
	url2, token2, out2, stop2 := startUp(t, "--data", data, "--listen", "127.0.0.1:0", "--grace", "500ms", "--log-format", "text")
	if token2 != token {
		t.Errorf("the resumed factory shows admin token %q; want the first one", token2)
	}
	if !strings.Contains(out2.String(), "2 node(s) × 4 H100 (emulated)") {
		t.Errorf("the resumed factory is not the emulated one:\n%s", out2.String())
	}
	c = &api.Client{BaseURL: url2, Token: token}
	if j, err := c.Job(ctx, done.ID); err != nil || j.State != model.JobCompleted {
		t.Errorf("the first job after resuming: %v, %v; want completed", j.State, err)
	}
	if err := os.WriteFile(filepath.Join(work, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, longID, func(j store.Job) bool { return j.State.Final() })
	if j.State != model.JobCompleted || j.Epoch != 1 {
		t.Errorf("the job that ran across the restart ended %s (%s) in epoch %d; want completed in epoch 1", j.State, j.Reason, j.Epoch)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "long")); string(b) != "1\n" {
		t.Errorf("the long job started %q; want once, in epoch 1", b)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if _, errs, code := run(t, "up", "--emulate", "4xx", "--data", t.TempDir()); code != ExitUsage || !strings.Contains(errs, "4x8xH100") {
		t.Errorf("a bad --emulate: exit %d, %s", code, errs)
	}
}

func waitJob(t *testing.T, c *api.Client, id string, cond func(store.Job) bool) store.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := c.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met within 30s; last %+v, %v", id, j, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSimLoadRescalesArrivals(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.csv")
	out, errs, code := run(t, "trace", "gen", "--cluster", "laptop", "--jobs", "400", "--seed", "2", "--load", "0.3")
	if code != ExitOK {
		t.Fatalf("trace gen: %s", errs)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	queue := func(load string) float64 {
		t.Helper()
		out, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--policy", "easy", "--json", "--load", load)
		if code != ExitOK {
			t.Fatalf("sim --load %s: exit %d: %s", load, code, errs)
		}
		if !strings.Contains(errs, "arrivals rescaled") {
			t.Errorf("sim --load %s does not say it rescaled arrivals: %s", load, errs)
		}
		var res struct {
			Policies []struct {
				AvgQueue float64 `json:"avg_queue_s"`
			} `json:"policies"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Policies) != 1 {
			t.Fatalf("sim --json: %v\n%s", err, out)
		}
		return res.Policies[0].AvgQueue
	}
	light, heavy := queue("0.2"), queue("1.5")
	if !(heavy > light) {
		t.Errorf("average queueing delay at load 1.5 (%v s) is not above that at load 0.2 (%v s)", heavy, light)
	}
	if _, errs, code := run(t, "sim", "--cluster", "laptop", "--trace", path, "--load", "-1"); code != ExitUsage || !strings.Contains(errs, "--load") {
		t.Errorf("a negative load: exit %d, %s", code, errs)
	}
}
