package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/store"
)

// BenchmarkLaunchLatency measures, for a job that fits on an idle node,
// the time from the commit of its start decision (seen by a watcher on
// the scheduler loop, right after the store's commit returns) to the
// first instruction of its script, which writes the time. The path in
// between: the loop's watchers, the orders stream, the agent's record of
// the launch (fsynced), internal/launch's plan and records, the go-ahead
// to a supervisor started ahead (launch.Spares), the script's shell.
//
//	go test ./internal/e2e -run '^$' -bench LaunchLatency -benchtime 200x
func BenchmarkLaunchLatency(b *testing.B) {
	f := newFactory(b, 1)
	var mu sync.Mutex
	committed := map[string]time.Time{}
	f.srv.Loop().Watch(func(j store.Job) {
		if j.State == model.JobRunning && j.Epoch == 1 {
			mu.Lock()
			if _, ok := committed[j.ID]; !ok {
				committed[j.ID] = time.Now()
			}
			mu.Unlock()
		}
	})
	dir := b.TempDir()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		out := filepath.Join(dir, strconv.Itoa(i))
		spec := f.job("date +%s%N > " + out + ".tmp && mv " + out + ".tmp " + out + "\n")
		spec.Accelerators = 1
		id := f.submit(spec)[0].ID
		first := waitNanos(b, out)
		mu.Lock()
		c, ok := committed[id]
		mu.Unlock()
		if !ok {
			b.Fatalf("job %s ran but no watcher saw its start", id)
		}
		lat = append(lat, time.Unix(0, first).Sub(c))
		f.waitJob(id, "ended", ended) // one at a time: the node is idle at each start
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(1), "max_ms")
}

// waitNanos waits for a file holding a Unix time in nanoseconds.
func waitNanos(b *testing.B, path string) int64 {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(path); err == nil {
			n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			if err != nil {
				b.Fatalf("%s holds %q: %v", path, raw, err)
			}
			return n
		}
		time.Sleep(200 * time.Microsecond)
	}
	b.Fatalf("%s was not written within %v", path, wait)
	return 0
}
