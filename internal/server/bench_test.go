package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/api"
	"github.com/usine-project/usine/internal/model"
	"github.com/usine-project/usine/internal/server"
	"github.com/usine-project/usine/internal/server/servertest"
	"github.com/usine-project/usine/internal/store"
	"github.com/usine-project/usine/internal/store/pgtest"
	"github.com/usine-project/usine/internal/store/sqlstore"
)

// benchStores name the stores a benchmark runs on: SQLite always,
// PostgreSQL when USINE_TEST_POSTGRES names a server.
func benchStores() []string {
	out := []string{"sqlite"}
	if os.Getenv("USINE_TEST_POSTGRES") != "" {
		out = append(out, "postgres")
	}
	return out
}

// benchStore is the URL of a fresh store of the kind named: SQLite in a
// temporary directory (""), or a database of its own on the test server.
func benchStore(b *testing.B, name string) string {
	if name == "sqlite" {
		return ""
	}
	return pgtest.Fresh(b, pgtest.Server(b))
}

// BenchmarkSubmitHTTP measures durable submits through the real HTTP API
// from 256 concurrent clients, one job per request, with the scheduler loop
// running. Each b.N is one acknowledged job.
//
//	go test ./internal/server -run '^$' -bench SubmitHTTP -benchtime 20000x -count 5
func BenchmarkSubmitHTTP(b *testing.B) {
	for _, name := range benchStores() {
		b.Run(name, func(b *testing.B) {
			env := servertest.Start(b, servertest.Options{StoreURL: benchStore(b, name), Config: server.Config{RateLimit: 0}})
			body, _ := json.Marshal(api.JobSpec{Project: "default", Accelerators: 1, Limit: 600, Task: model.Task{Script: "#!/bin/sh\ntrue\n"}})
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
			var failed atomic.Int64
			b.SetParallelism(128) // 256 clients on 2 cores
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", env.URL+api.Prefix+"/jobs", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+env.AdminToken)
					resp, err := hc.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					if resp.StatusCode != http.StatusCreated {
						failed.Add(1)
					}
					io.Copy(io.Discard, resp.Body) // so the connection is reused
					resp.Body.Close()
				}
			})
			el := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d submits failed", n)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "jobs/s")
		})
	}
}

// BenchmarkStartLatency measures the time from a submit's acknowledgement
// to the commit of its start decision, for a job that fits on idle nodes of
// an emulated 100,000-accelerator cluster (gigafactory: 12,500 nodes × 8)
// with 10,000 jobs waiting. Each b.N is one probe job.
//
//	go test ./internal/server -run '^$' -bench StartLatency -benchtime 200x -count 1
func BenchmarkStartLatency(b *testing.B) {
	env := servertest.Start(b, servertest.Options{Cluster: "gigafactory", Config: server.Config{RateLimit: 0, BackfillInterval: 10 * time.Second}})
	ctx := context.Background()
	// 70 % of the nodes busy with one-node jobs for a day.
	busy := make([]api.JobSpec, 8750)
	for i := range busy {
		busy[i] = api.JobSpec{Project: "default", Nodes: 1, AcceleratorsPerNode: 8, Limit: 86400, Task: model.Task{Script: "true"}}
	}
	submitAll(b, env, busy)
	waitCount(b, env, model.JobRunning, len(busy))
	// 10,000 waiting gangs, each larger than what is idle.
	waiting := make([]api.JobSpec, 10000)
	for i := range waiting {
		waiting[i] = api.JobSpec{Project: "default", Nodes: 4000 + i%100, AcceleratorsPerNode: 8, Limit: 86400, Task: model.Task{Script: "true"}}
	}
	submitAll(b, env, waiting)
	env.Server.Loop().Pass(ctx, true)
	t0 := time.Now()
	if err := env.Server.Loop().Pass(ctx, true); err != nil {
		b.Fatal(err)
	}
	full := time.Since(t0)

	var mu sync.Mutex
	started := map[string]time.Time{}
	env.Server.Loop().Watch(func(j store.Job) {
		if j.State == model.JobRunning {
			mu.Lock()
			started[j.ID] = time.Now()
			mu.Unlock()
		}
	})
	probe := api.JobSpec{Project: "default", Nodes: 1, AcceleratorsPerNode: 8, Limit: 600, Task: model.Task{Script: "true"}}
	lat := make([]time.Duration, 0, b.N)
	passes := env.Server.Loop().State().Passes
	b.ResetTimer()
	for range b.N {
		jobs, err := env.Admin.Submit(ctx, probe)
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		id := jobs[0].ID
		for {
			mu.Lock()
			t, ok := started[id]
			mu.Unlock()
			if ok {
				lat = append(lat, t.Sub(acked))
				break
			}
			if time.Since(acked) > 30*time.Second {
				j, _ := env.Admin.Job(ctx, id)
				b.Fatalf("probe %s did not start in 30 s: %+v", id, j)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(env.Server.Loop().State().Passes-passes)/float64(b.N), "passes/op")
	b.ReportMetric(float64(full.Microseconds())/1000, "full_pass_ms")
	b.ReportMetric(0, "ns/op")
}

func submitAll(b *testing.B, env *servertest.Env, specs []api.JobSpec) {
	ctx := context.Background()
	for i := 0; i < len(specs); i += 2000 {
		if _, err := env.Admin.Submit(ctx, specs[i:min(i+2000, len(specs))]...); err != nil {
			b.Fatal(err)
		}
	}
}

func waitCount(b *testing.B, env *servertest.Env, state model.JobState, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := env.Server.Loop().State()
		got := st.Pending
		if state == model.JobRunning {
			got = st.Running
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d jobs %s after 5 minutes; want %d", got, state, n)
		}
		env.Server.Loop().Wake()
		time.Sleep(50 * time.Millisecond)
	}
}

var _ = fmt.Sprint

// BenchmarkServerMemory measures what the server holds with an emulated
// 100,000-accelerator cluster (12,500 nodes), 100,000 live jobs (8,750
// running, the rest waiting) and one million finished ones in its SQLite
// store: the Go heap in use and the process's resident set after a GC, with
// the scheduler's view loaded and a full pass done.
//
//	go test ./internal/server -run '^$' -bench ServerMemory -benchtime 1x
func BenchmarkServerMemory(b *testing.B) {
	ctx := context.Background()
	url := "sqlite:" + b.TempDir() + "/usine.db"
	st, err := sqlstore.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	const finished = 1_000_000
	batch := make([]store.Job, 10_000)
	for i := range batch {
		batch[i] = store.Job{Job: model.Job{ID: "new", Project: "default", User: "admin", Accelerators: 8, Limit: 3600, Submit: 1},
			Task: model.Task{Script: "#!/bin/sh\ntrain.sh\n"}}
	}
	for range finished / len(batch) {
		if _, err := st.SubmitJobs(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	batch = nil
	db, err := sql.Open("sqlite", strings.TrimPrefix(url, "sqlite:"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE jobs SET state = 'completed'`); err != nil {
		b.Fatalf("end the finished jobs: %v", err)
	}
	db.Close()
	st.Close()

	env := servertest.Start(b, servertest.Options{Cluster: "gigafactory", StoreURL: url, Config: server.Config{RateLimit: 0, BackfillInterval: 5 * time.Second}})
	live := func(n, nodes int) []store.Job {
		js := make([]store.Job, n)
		for i := range js {
			js[i] = store.Job{Job: model.Job{ID: "new", Project: "default", User: "admin", Nodes: nodes, AcceleratorsPerNode: 8, Limit: 86400},
				Task: model.Task{Script: "#!/bin/sh\ntrain.sh\n", Env: map[string]string{"RUN": strconv.Itoa(i)}}}
		}
		return js
	}
	const running, waiting = 8750, 91_250
	for _, js := range [][]store.Job{live(running, 1), live(waiting, 4000)} {
		for i := 0; i < len(js); i += 5000 {
			if _, err := env.Store.SubmitJobs(ctx, js[i:min(i+5000, len(js))]); err != nil {
				b.Fatal(err)
			}
		}
		env.Server.Loop().Wake()
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := env.Server.Loop().State()
		if st.Running == running && st.Pending == waiting {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the loop sees %d running and %d waiting; want %d and %d", st.Running, st.Pending, running, waiting)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := env.Server.Loop().Pass(ctx, true); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_MiB")
	b.ReportMetric(float64(rss())/(1<<20), "rss_MiB")
	b.ReportMetric(0, "ns/op")
}

// rss is the process's resident set size in bytes, from /proc (0 where
// there is none).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}
