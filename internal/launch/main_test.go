package launch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/launch"
	"github.com/usine-project/usine/internal/model"
)

// fakeAgentArg makes the test binary a short-lived agent: it starts the
// job spec.json in its first argument describes with a launcher on the
// state directory in its second, prints the job's pid and exits at once,
// as an agent that dies would.
const fakeAgentArg = "__test_agent"

// TestMain lets the test binary be the supervisor (as the usine binary
// is in production) and the fake agent.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case launch.SupervisorArg:
			os.Exit(launch.Supervise(os.Args[2:]))
		case fakeAgentArg:
			os.Exit(fakeAgent(os.Args[2], os.Args[3]))
		}
	}
	os.Exit(m.Run())
}

func fakeAgent(specPath, stateDir string) int {
	b, err := os.ReadFile(specPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var s launch.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := launch.New(launch.Config{StateDir: stateDir, NoCgroup: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, err := l.Start(context.Background(), s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(p.Pid())
	return 0
}

// waitTimeout bounds every wait on a condition: long enough for a loaded
// machine, short enough to fail a hung test.
const waitTimeout = 30 * time.Second

// newLauncher is a launcher on a fresh state directory that checks
// adopted jobs often.
func newLauncher(t *testing.T, dir string) *launch.Launcher {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	l, err := launch.New(launch.Config{StateDir: dir, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// scriptSpec is a one-node job running script in a fresh directory.
func scriptSpec(t *testing.T, id, script string) launch.Spec {
	return launch.Spec{JobID: id, Epoch: 1, NumNodes: 1, Task: model.Task{Script: script, WorkDir: t.TempDir()}}
}

func start(t *testing.T, l *launch.Launcher, s launch.Spec) *launch.Proc {
	t.Helper()
	p, err := l.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, _ = p.Kill(ctx, 0)
	})
	return p
}

func wait(t *testing.T, p *launch.Proc) launch.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("job %s did not end: %v", p.JobID(), err)
	}
	return r
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileHas reports whether the file at path contains s.
func fileHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// output is the job's output file's content.
func output(t *testing.T, p *launch.Proc) string {
	t.Helper()
	b, err := os.ReadFile(p.Stdout())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// processGone reports whether pid no longer runs (a zombie counts as
// gone: it has ended, and only its parent's reaping is left).
func processGone(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// syncBuffer is a bytes buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
