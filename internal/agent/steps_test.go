package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/store"
)

// A batch job's steps take its signal when the run is stopped (Slurm's
// --signal without B:): the step's task gets USR1 and may checkpoint for a
// grace period before the script is stopped with TERM; the script itself
// never sees USR1.
func TestAStoppedBatchJobWarnsItsStepsFirst(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	a, _ := startAgentGrace(t, f, filepath.Join(dir, "state"), 5*time.Second)
	scriptSaw := filepath.Join(dir, "script-saw")
	r := job("7", 1, "trap 'echo USR1 >> "+scriptSaw+"' USR1\ntrap 'echo TERM >> "+scriptSaw+"; exit 0' TERM\nwhile :; do sleep 0.05; done\n", 1)
	r.Job.Task.WorkDir, r.Job.Task.BatchHost, r.Job.Task.Signal, r.StepKey = dir, true, "USR1", "key-7"
	f.set(1, []api.Run{r})
	waitFor(t, "the run to start", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		rn := a.runs[runKey{"7", 1, 0}]
		return rn != nil && rn.running()
	})
	hs := httptest.NewServer(a.Handler())
	defer hs.Close()
	// A failing test must not wait in hs.Close for a step that lives on:
	// ending its request ends the step.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	var out strings.Builder
	ready := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		req := StepRequest{Epoch: 1, Argv: []string{"/bin/sh", "-c", "trap 'echo warned; exit 0' USR1; echo ready; while :; do sleep 0.05; done"},
			Tasks: []StepTask{{ProcID: 0, Env: map[string]string{"PATH": os.Getenv("PATH")}}}}
		done <- PostStep(ctx, http.DefaultClient, hs.URL, "7", "key-7", req, func(ev StepEvent) {
			mu.Lock()
			out.Write(ev.Out)
			if strings.Contains(out.String(), "ready") {
				once.Do(func() { close(ready) })
			}
			mu.Unlock()
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the step ended before it was ready: %v", err)
	case <-time.After(wait):
		t.Fatal("the step's task did not start")
	}
	f.set(2, nil) // the server no longer wants the run: preempted, cancelled
	if err := <-done; err != nil {
		t.Fatalf("step: %v", err)
	}
	mu.Lock()
	got := out.String()
	mu.Unlock()
	if !strings.Contains(got, "warned") {
		t.Errorf("the step's task printed %q; want it warned by USR1", got)
	}
	f.waitEnd("7", 0)
	if saw := waitFile(t, scriptSaw); saw != "TERM\n" {
		t.Errorf("the script saw %q; want TERM alone, after its steps were warned", saw)
	}
}

// waitFor waits for cond, failing the test after the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSignalOrdersReachWhomScancelSays: a batch job's signal goes to its
// steps' tasks alone (scancel -s), to its script alone (--batch), or to
// both (--full).
func TestSignalOrdersReachWhomScancelSays(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := t.TempDir()
	a, _ := startAgent(t, f, filepath.Join(dir, "state"))
	scriptSaw := filepath.Join(dir, "script-saw")
	traps := func(file string) string {
		var b strings.Builder
		// USR1 and USR2 only: a shell cannot trap a signal ignored when
		// it started, as HUP is under nohup.
		for _, s := range []string{"USR1", "USR2"} {
			b.WriteString("trap 'echo " + s + " >> " + file + "' " + s + "\n")
		}
		return b.String() + "echo ready >> " + file + "\nwhile :; do sleep 0.05; done\n"
	}
	r := job("8", 1, traps(scriptSaw), 1)
	r.Job.Task.WorkDir, r.Job.Task.BatchHost, r.StepKey = dir, true, "key-8"
	f.set(1, []api.Run{r})
	waitFor(t, "the script to start", func() bool { b, _ := os.ReadFile(scriptSaw); return string(b) == "ready\n" })
	hs := httptest.NewServer(a.Handler())
	defer hs.Close()
	ctx, cancel := context.WithCancel(context.Background()) // ends the step if the test fails
	defer cancel()
	taskSaw := filepath.Join(dir, "task-saw")
	done := make(chan error, 1)
	go func() {
		req := StepRequest{Epoch: 1, Argv: []string{"/bin/sh", "-c", traps(taskSaw)},
			Tasks: []StepTask{{ProcID: 0, Env: map[string]string{"PATH": os.Getenv("PATH")}}}}
		done <- PostStep(ctx, http.DefaultClient, hs.URL, "8", "key-8", req, func(StepEvent) {})
	}()
	waitFor(t, "the step's task to start", func() bool { b, _ := os.ReadFile(taskSaw); return string(b) == "ready\n" })

	var orders []api.SignalOrder
	for i, o := range []struct {
		signal, to string
		want       map[string]string // file → what it holds after
	}{
		{"USR1", "", map[string]string{taskSaw: "ready\nUSR1\n", scriptSaw: "ready\n"}},
		{"USR2", store.SignalBatch, map[string]string{taskSaw: "ready\nUSR1\n", scriptSaw: "ready\nUSR2\n"}},
		{"USR1", store.SignalFull, map[string]string{taskSaw: "ready\nUSR1\nUSR1\n", scriptSaw: "ready\nUSR2\nUSR1\n"}},
	} {
		orders = append(orders, api.SignalOrder{Job: "8", Epoch: 1, Signal: o.signal, To: o.to, Seq: int64(i + 1)})
		f.set(int64(i+2), []api.Run{r}, orders...)
		for file, want := range o.want {
			waitFor(t, filepath.Base(file)+" to hold "+strings.ReplaceAll(want, "\n", " "), func() bool {
				b, _ := os.ReadFile(file)
				return string(b) == want
			})
		}
	}
	f.set(9, nil)
	<-done
	f.waitEnd("8", 0)
}
