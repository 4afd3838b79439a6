package launch_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

// launchFromDyingAgent starts s through a separate agent process that
// exits as soon as the job runs, and returns the job's pid.
func launchFromDyingAgent(t *testing.T, stateDir string, s launch.Spec) int {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(os.Args[0], fakeAgentArg, specPath, stateDir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("fake agent: %v: %s", err, stderr)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("fake agent printed %q", out)
	}
	return pid
}

func TestRecoverAfterTheAgentDies(t *testing.T) {
	t.Parallel()
	stateDir, work := t.TempDir(), t.TempDir()
	spec := func(id, script string) launch.Spec {
		return launch.Spec{JobID: id, Epoch: 7, NumNodes: 1, Task: model.Task{Script: script, WorkDir: work}}
	}
	// Each agent process exits as soon as its job runs.
	runs := launchFromDyingAgent(t, stateDir, spec("runs", "while :; do sleep 0.05; done"))
	endsLater := launchFromDyingAgent(t, stateDir, spec("ends-later", "while [ ! -e go ]; do sleep 0.02; done; exit 7"))
	launchFromDyingAgent(t, stateDir, spec("ended", "exit 5"))

	l := newLauncher(t, stateDir)
	var byID map[string]*launch.Proc
	recoverAll := func() {
		procs, err := l.Recover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		byID = map[string]*launch.Proc{}
		for _, p := range procs {
			byID[p.JobID()] = p
		}
	}
	// "ended" ends while no agent watches; its supervisor records it.
	waitFor(t, "the short job to end unwatched", func() bool {
		recoverAll()
		_, ok := byID["ended"].Result()
		return ok
	})
	if len(byID) != 3 {
		t.Fatalf("Recover found %d jobs, want 3", len(byID))
	}
	for _, p := range byID {
		if !p.Adopted() || p.Epoch() != 7 {
			t.Errorf("job %s: adopted %v, epoch %d; want adopted, epoch 7", p.JobID(), p.Adopted(), p.Epoch())
		}
	}
	if r, _ := byID["ended"].Result(); r.ExitCode != 5 || r.Err != "" {
		t.Errorf("job that ended unwatched: %+v, want exit code 5", r)
	}

	// Still running, and ours to watch and stop.
	for id, pid := range map[string]int{"runs": runs, "ends-later": endsLater} {
		p := byID[id]
		if _, ok := p.Result(); ok || p.Pid() != pid || processGone(pid) {
			t.Fatalf("job %s: ended %v, pid %d (launched as %d); want it running", id, ok, p.Pid(), pid)
		}
	}
	touch(t, filepath.Join(work, "go"))
	if r := wait(t, byID["ends-later"]); r.ExitCode != 7 || r.Err != "" || r.Killed {
		t.Errorf("adopted job that ended: %+v, want exit code 7 as recorded by its supervisor", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := byID["runs"].Kill(ctx, time.Second)
	if err != nil || !r.Killed || r.Signal != "TERM" {
		t.Errorf("Kill of an adopted job = %+v, %v; want killed by TERM", r, err)
	}
	waitFor(t, "the killed job's process to end", func() bool { return processGone(runs) })

	// Forgotten jobs are not recovered again.
	for _, p := range byID {
		if err := p.Forget(); err != nil {
			t.Error(err)
		}
	}
	if procs, err := l.Recover(context.Background()); len(procs) != 0 || err != nil {
		t.Errorf("Recover after Forget = %d jobs, %v; want none", len(procs), err)
	}
}

func TestRecoverAfterDroppingTheHandles(t *testing.T) {
	t.Parallel()
	stateDir := t.TempDir()
	s := scriptSpec(t, "dropped", "while [ ! -e stop ]; do sleep 0.02; done; echo done; exit 2")
	first := newLauncher(t, stateDir)
	p, err := first.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Forget(); err == nil {
		t.Error("Forget of a running job succeeded")
	}
	pid := p.Pid()
	// The agent forgets p; the test keeps it only to see the supervisor,
	// its child, gone before the temporary directory is removed.

	procs, err := newLauncher(t, stateDir).Recover(context.Background())
	if err != nil || len(procs) != 1 {
		t.Fatalf("Recover = %d jobs, %v; want 1", len(procs), err)
	}
	q := procs[0]
	if q.Pid() != pid || processGone(pid) {
		t.Fatalf("recovered pid %d, launched %d: want the same, running", q.Pid(), pid)
	}
	if _, ok := q.Result(); ok {
		t.Fatal("the recovered job has a result while it runs")
	}
	touch(t, filepath.Join(s.Task.WorkDir, "stop"))
	if r := wait(t, q); r.ExitCode != 2 {
		t.Errorf("result %+v, want exit code 2", r)
	}
	if got := output(t, q); got != "done\n" {
		t.Errorf("output %q", got)
	}
	wait(t, p)
}
