package sqlstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/store"
)

// TestCrashKeepsAcknowledgedJobs runs a submit storm in a child process
// (this test binary again), kills it with SIGKILL once it has acknowledged
// a few hundred jobs, and checks that the SQLite store, reopened, holds
// every job the child acknowledged before it died.
func TestCrashKeepsAcknowledgedJobs(t *testing.T) {
	if url := os.Getenv("USINE_CRASH_CHILD"); url != "" {
		crashChild(url)
		return
	}
	t.Parallel()
	url := sqliteURL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledgedJobs$")
	cmd.Env = append(os.Environ(), "USINE_CRASH_CHILD="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	acked := map[string]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() && len(acked) < 300 {
		acked[lines.Text()] = true
	}
	cmd.Process.Kill()
	for lines.Scan() { // what the child acknowledged before it died
		acked[lines.Text()] = true
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("the child acknowledged %d jobs before it ended; want 300 (its output ended: %v)", len(acked), lines.Err())
	}

	st, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer st.Close()
	all, err := st.Jobs(context.Background(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, j := range all {
		if kept[j.ID] {
			t.Errorf("job %s is in the store twice", j.ID)
		}
		kept[j.ID] = true
	}
	for id := range acked {
		if !kept[id] {
			t.Errorf("job %s was acknowledged, then lost in the crash", id)
		}
	}
	t.Logf("%d jobs acknowledged, %d in the store after the crash", len(acked), len(kept))
}

// crashChild submits jobs from 16 goroutines until it is killed, writing
// each acknowledged ID on its own line.
func crashChild(url string) {
	st, err := Open(context.Background(), url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for range 16 {
		go func() {
			for {
				js, err := st.SubmitJobs(context.Background(), []store.Job{testJob("crash"), testJob("crash")})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				for _, j := range js {
					fmt.Fprintln(w, j.ID)
				}
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute) // killed long before
	os.Exit(1)
}
