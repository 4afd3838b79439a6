package launch

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/model"
)

// readySpare waits for s to have a spare ready and returns its process ID.
func readySpare(t *testing.T, s *Spares) int {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; {
		s.mu.Lock()
		sp := s.ready
		s.mu.Unlock()
		if sp != nil {
			return sp.cmd.Process.Pid
		}
		if time.Now().After(end) {
			t.Fatal("no spare supervisor ready within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestASpareSupervisorRunsTheNextJobAndTheOneAfterStartsAnother(t *testing.T) {
	t.Parallel()
	s, err := NewSpares(nil) // the test binary, whose TestMain supervises
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{StateDir: t.TempDir(), NoCgroup: true, Spares: s, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 2 {
		pid := readySpare(t, s)
		work := t.TempDir()
		p, err := l.Start(ctx, Spec{JobID: "s" + strconv.Itoa(i), NumNodes: 1, Task: model.Task{Script: "echo $PPID", WorkDir: work}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Wait(ctx)
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("job %d: %+v, %v", i, r, err)
		}
		if b, _ := os.ReadFile(p.Stdout()); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
			t.Errorf("job %d's parent is %s; want the spare supervisor %d", i, b, pid)
		}
	}
	pid := readySpare(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the spare %d still runs after Close", pid)
		}
	}
	// Closed: a launch starts its own supervisor.
	p, err := l.Start(ctx, Spec{JobID: "after", NumNodes: 1, Task: model.Task{Script: "echo ran", WorkDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := p.Wait(ctx); err != nil || r.ExitCode != 0 {
		t.Errorf("a job after Close: %+v, %v", r, err)
	}
}

func TestASpareThatDiedIsReplacedAtTheLaunch(t *testing.T) {
	t.Parallel()
	s, err := NewSpares(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := New(Config{StateDir: t.TempDir(), NoCgroup: true, Spares: s})
	if err != nil {
		t.Fatal(err)
	}
	pid := readySpare(t, s)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); !zombie(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the killed spare %d has not ended", pid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := l.Start(ctx, Spec{JobID: "j", NumNodes: 1, Task: model.Task{Script: "echo ran", WorkDir: t.TempDir()}})
	if err != nil {
		t.Fatalf("a launch whose spare was killed: %v", err)
	}
	if r, err := p.Wait(ctx); err != nil || r.ExitCode != 0 {
		t.Errorf("result %+v, %v", r, err)
	}
}

// zombie reports whether our child pid has ended, not yet reaped.
func zombie(pid int) bool {
	_, z, err := procStat(pid)
	return err == nil && z
}

func TestASpareThatDiesAfterItsGoAheadIsReplaced(t *testing.T) {
	t.Parallel()
	// A spare that takes the go-ahead, then ends without a word.
	s, err := NewSpares([]string{"/bin/sh", "-c", "head -c 1 <&4 >/dev/null; exit 0", "sh"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := New(Config{StateDir: t.TempDir(), NoCgroup: true, Spares: s})
	if err != nil {
		t.Fatal(err)
	}
	readySpare(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	work := t.TempDir()
	p, err := l.Start(ctx, Spec{JobID: "j", NumNodes: 1, Task: model.Task{Script: "echo ran >> ran", WorkDir: work}})
	if err != nil {
		t.Fatalf("a launch whose spare died after its go-ahead: %v", err)
	}
	if r, err := p.Wait(ctx); err != nil || r.ExitCode != 0 {
		t.Errorf("result %+v, %v", r, err)
	}
	if b, _ := os.ReadFile(work + "/ran"); string(b) != "ran\n" {
		t.Errorf("the job ran %q; want once", b)
	}
}
