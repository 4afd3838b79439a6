package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
)

// buildUsine builds the usine binary into a temporary directory.
func buildUsine(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build usine with")
	}
	bin := filepath.Join(t.TempDir(), "usine")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/usine-project/usine/cmd/usine").CombinedOutput()
	if err != nil {
		t.Fatalf("go build usine: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer that a process and the test share.
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

// startAgentProcess runs `usine agent` for node ext1 as an OS process.
func (f *factory) startAgentProcess(bin, state string) (*exec.Cmd, *syncBuffer) {
	f.t.Helper()
	cmd := exec.Command(bin, "agent", "--server", f.url, "--token", f.agentToken, "--node", "ext1",
		"--emulate", "4xH100", "--state", state, "--listen", "127.0.0.1:0", "--address", "127.0.0.9",
		"--partition", "ext", "--block", "bx", "--group", "gx", "--grace", "500ms", "--log-format", "text")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if f.t.Failed() {
			f.t.Logf("usine agent said:\n%s", out.String())
		}
	})
	return cmd, out
}

func TestASeparateAgentProcessRunsJobsAndSurvivesItsOwnRestart(t *testing.T) {
	t.Parallel()
	bin := buildUsine(t)
	f := newFactory(t, 0)
	state := filepath.Join(t.TempDir(), "state")
	agentProc, _ := f.startAgentProcess(bin, state)
	f.waitNode("ext1", func(n api.NodeView) bool { return n.State == model.NodeUp })

	spec := f.job(`echo "$USINE_NODE $CUDA_VISIBLE_DEVICES $MASTER_ADDR"` + "\n")
	spec.Accelerators, spec.Partition = 4, "ext"
	id := f.submit(spec)[0].ID
	if j := f.waitJob(id, "ended", ended); j.State != model.JobCompleted {
		t.Fatalf("job on the agent process: %s (%s)", j.State, j.Reason)
	}
	const want = "ext1 0,1,2,3 127.0.0.9\n"
	if got, err := f.logOf(id, ""); err != nil || got != want {
		t.Errorf("usine logs through the agent process: %q, %v; want %q", got, err, want)
	}

	// A job outlives its agent: kill the agent, start it again, and the
	// job is found, not launched again, and its exit status reported.
	long := f.job("echo $$ >> pids\nwhile [ ! -e gate ]; do sleep 0.02; done\nexit 3\n")
	long.Accelerators, long.Partition = 2, "ext"
	longID := f.submit(long)[0].ID
	waitFile(t, filepath.Join(long.Task.WorkDir, "pids"))
	if err := agentProc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agentProc.Wait()
	_, out := f.startAgentProcess(bin, state)
	deadline := time.Now().Add(wait)
	for !strings.Contains(out.String(), "found a run still going") {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted agent did not adopt the running job:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(long.Task.WorkDir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := f.waitJob(longID, "ended", ended)
	if j.State != model.JobFailed || j.ExitCode != 3 {
		t.Errorf("the adopted job ended %s (%s) exit %d; want failed with its own exit code 3", j.State, j.Reason, j.ExitCode)
	}
	if b, _ := os.ReadFile(filepath.Join(long.Task.WorkDir, "pids")); bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("the job was launched %d times; want once", bytes.Count(b, []byte("\n")))
	}
}
