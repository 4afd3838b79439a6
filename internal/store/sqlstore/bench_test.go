package sqlstore

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usine-project/usine/internal/store"
)

// benchEngines runs bench on a fresh SQLite store and, when
// USINE_TEST_POSTGRES names a server, on a fresh PostgreSQL database.
func benchEngines(b *testing.B, bench func(b *testing.B, st *Store)) {
	urls := []struct{ name, url string }{{"sqlite", "sqlite:" + b.TempDir() + "/usine.db"}}
	if u := os.Getenv("USINE_TEST_POSTGRES"); u != "" {
		urls = append(urls, struct{ name, url string }{"postgres", freshPostgres(b, u)})
	}
	for _, e := range urls {
		b.Run(e.name, func(b *testing.B) {
			st, err := Open(context.Background(), e.url)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			bench(b, st)
		})
	}
}

// BenchmarkSubmit measures durable submits straight into the store from
// 64 concurrent callers, each call one job or ten, with an audit record as
// the API writes. One op is one job.
//
//	scripts/with-postgres go test ./internal/store/sqlstore -run '^$' -bench Submit -benchtime 20000x -count 3
func BenchmarkSubmit(b *testing.B) {
	benchEngines(b, func(b *testing.B, st *Store) {
		for _, per := range []int{1, 10} {
			b.Run(fmt.Sprintf("jobs-per-call=%d", per), func(b *testing.B) {
				jobs := make([]store.Job, per)
				for i := range jobs {
					jobs[i] = testJob("bench")
				}
				audit := store.AuditEntry{Time: 1, Actor: "ann", Action: "POST /api/v1/jobs", Remote: "127.0.0.1:5000", Status: 201}
				b.SetParallelism(32) // × GOMAXPROCS callers
				var done atomic.Int64
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						// pb.Next counts one job; a call takes per of them.
						for i := 1; i < per && pb.Next(); i++ {
						}
						if _, err := st.SubmitJobs(context.Background(), jobs, audit); err != nil {
							b.Error(err)
							return
						}
						done.Add(int64(per))
					}
				})
				b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), "jobs/s")
			})
		}
	})
}

// BenchmarkSetWaiting records the reasons of 20,000 waiting jobs, as a
// full scheduling pass does, all of them changed. One op is one pass.
//
//	scripts/with-postgres go test ./internal/store/sqlstore -run '^$' -bench SetWaiting -benchtime 10x
func BenchmarkSetWaiting(b *testing.B) {
	benchEngines(b, func(b *testing.B, st *Store) {
		ctx := context.Background()
		const n = 20_000
		var ws []store.WaitInfo
		for i := 0; i < n; i += 1000 {
			jobs := make([]store.Job, 1000)
			for k := range jobs {
				jobs[k] = testJob("waiting")
			}
			js, err := st.SubmitJobs(ctx, jobs)
			if err != nil {
				b.Fatal(err)
			}
			for _, j := range js {
				ws = append(ws, store.WaitInfo{ID: j.ID})
			}
		}
		b.ResetTimer()
		for pass := range b.N {
			for i := range ws {
				ws[i].Reason, ws[i].Priority, ws[i].EstStart = "Priority", int64(pass*n+i), int64(pass)
			}
			if err := st.SetWaiting(ctx, ws); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkApply commits passes that start 100 jobs each under the lease.
// One op is one pass.
//
//	scripts/with-postgres go test ./internal/store/sqlstore -run '^$' -bench Apply -benchtime 50x
func BenchmarkApply(b *testing.B) {
	benchEngines(b, func(b *testing.B, st *Store) {
		ctx := context.Background()
		lease, ok, err := st.AcquireLease(ctx, "bench", 0, 1<<50)
		if err != nil || !ok {
			b.Fatalf("lease: %v %v", ok, err)
		}
		jobs := make([]store.Job, 100)
		for i := range jobs {
			jobs[i] = testJob("start")
		}
		alloc := []store.Alloc{{Node: "n1", Accelerators: 8}}
		for range b.N {
			b.StopTimer()
			js, err := st.SubmitJobs(ctx, jobs)
			if err != nil {
				b.Fatal(err)
			}
			var d store.Decisions
			for _, j := range js {
				d.Starts = append(d.Starts, store.StartJob{ID: j.ID, Rev: j.Rev, Start: 1, Alloc: alloc})
			}
			b.StartTimer()
			if out, err := st.Apply(ctx, lease, d); err != nil || len(out) != len(jobs) {
				b.Fatalf("apply: %d jobs, %v", len(out), err)
			}
		}
	})
}
